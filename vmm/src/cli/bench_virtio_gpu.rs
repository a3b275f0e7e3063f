//! `vgpu bench virtio-gpu`: the virtio-gpu device driven through real split virtqueues in guest
//! memory by an in-process guest driver, for each backend that can start here.
//!
//! Prints small-command throughput (GET_DISPLAY_INFO on the control queue, MOVE_CURSOR on the
//! cursor queue) and TRANSFER_TO_HOST_2D bandwidth for a 1920x1080 XRGB8888 frame, next to a
//! plain memcpy of the same bytes measured in the same run (ratio column).

use std::time::{Duration, Instant};

use virtio_gpu::backend::{create_backend, BackendKind};
use virtio_gpu::guest_driver::{requests, DriverError, GuestDriver};
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, GpuDevice, QueueKind};
use vm_memory::GuestAddress;

const WIDTH: u32 = 1920;
const HEIGHT: u32 = 1080;
const FRAME_BYTES: usize = (WIDTH * HEIGHT * 4) as usize;
/// Chains posted per kick in the small-command measurements.
const BATCH: usize = 128;

#[derive(Debug, clap::Args)]
pub struct VirtioGpuBenchArgs {
    /// Seconds per measurement.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Backends to measure (software, vulkan, rutabaga); all of them by default.
    #[arg(long = "backend")]
    backends: Vec<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VirtioGpuBenchError {
    #[error("guest driver: {0}")]
    Driver(#[from] DriverError),
    #[error(transparent)]
    Backend(#[from] virtio_gpu::backend::BackendError),
    #[error("{command} failed with response {response:#x}")]
    Command {
        command: &'static str,
        response: u32,
    },
    #[error("--seconds must be positive")]
    BadDuration,
}

struct Row {
    backend: String,
    what: &'static str,
    rate: String,
    baseline: String,
    ratio: String,
}

pub fn run(args: VirtioGpuBenchArgs) -> Result<(), VirtioGpuBenchError> {
    if args.seconds.is_nan() || args.seconds <= 0.0 {
        return Err(VirtioGpuBenchError::BadDuration);
    }
    let duration = Duration::from_secs_f64(args.seconds);
    let kinds: Vec<BackendKind> = if args.backends.is_empty() {
        vec![
            BackendKind::Software,
            BackendKind::Vulkan,
            BackendKind::Rutabaga,
        ]
    } else {
        args.backends
            .iter()
            .map(|b| b.parse())
            .collect::<Result<_, _>>()?
    };
    let mut rows = Vec::new();
    for kind in kinds {
        let name = format!("{kind:?}").to_lowercase();
        let backend = match create_backend(kind) {
            Ok(b) => b,
            Err(e) => {
                println!("{name}: not measured: {e}");
                continue;
            }
        };
        tracing::info!(backend = %name, "measuring");
        let mut dev = GpuDevice::new(backend, GpuConfig::default());
        let features = dev.device_features();
        dev.ack_features(features);
        let mut guest = GuestDriver::new(64 << 20)?;
        rows.extend(measure(&name, &mut dev, &mut guest, duration)?);
    }
    print_table(&rows);
    Ok(())
}

fn measure(
    name: &str,
    dev: &mut GpuDevice,
    guest: &mut GuestDriver,
    duration: Duration,
) -> Result<Vec<Row>, VirtioGpuBenchError> {
    let mut rows = Vec::new();
    let info = commands_per_second(
        dev,
        guest,
        QueueKind::Control,
        &requests::get_display_info(),
        duration,
    )?;
    rows.push(Row {
        backend: name.into(),
        what: "GET_DISPLAY_INFO (control queue)",
        rate: format!("{:.0} cmd/s", info),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    let mv = requests::cursor(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 10, 10, 0, (0, 0));
    let cursor = commands_per_second(dev, guest, QueueKind::Cursor, &mv, duration)?;
    rows.push(Row {
        backend: name.into(),
        what: "MOVE_CURSOR (cursor queue)",
        rate: format!("{:.0} cmd/s", cursor),
        baseline: "-".into(),
        ratio: "-".into(),
    });
    for (id, what, page_entries, frames) in [
        (1, "TRANSFER_TO_HOST_2D 1920x1080 (1 entry)", false, 1),
        (2, "TRANSFER_TO_HOST_2D 1920x1080 (4 KiB entries)", true, 1),
        (
            3,
            "TRANSFER_TO_HOST_2D 1920x1080 (1 entry, all pixels new)",
            false,
            2,
        ),
    ] {
        let (transfer, memcpy) =
            transfer_vs_memcpy(dev, guest, id, page_entries, frames, duration)?;
        rows.push(Row {
            backend: name.into(),
            what,
            rate: format!("{:.2} GB/s", transfer / 1e9),
            baseline: format!("{:.2} GB/s", memcpy / 1e9),
            ratio: format!("{:.2}x", transfer / memcpy),
        });
    }
    Ok(rows)
}

/// Posts `request` in batches of [`BATCH`] chains and kicks, for `duration`.
fn commands_per_second(
    dev: &mut GpuDevice,
    guest: &mut GuestDriver,
    kind: QueueKind,
    request: &[u8],
    duration: Duration,
) -> Result<f64, VirtioGpuBenchError> {
    let req = guest.alloc(request.len())?;
    guest.write(req, request)?;
    let resp = guest.alloc(4096)?;
    let chain: Vec<(GuestAddress, u32, bool)> = match kind {
        QueueKind::Control => vec![(req, request.len() as u32, false), (resp, 4096, true)],
        QueueKind::Cursor => vec![(req, request.len() as u32, false)],
    };
    let start = Instant::now();
    let mut done = 0usize;
    while start.elapsed() < duration {
        for _ in 0..BATCH {
            guest.post(kind, &chain)?;
        }
        guest.kick(dev, kind)?;
        done += guest.take_used(kind)?.len();
    }
    Ok(done as f64 / start.elapsed().as_secs_f64())
}

fn check(resp: &[u8], command: &'static str) -> Result<(), VirtioGpuBenchError> {
    match requests::response_type(resp) {
        VIRTIO_GPU_RESP_OK_NODATA => Ok(()),
        response => Err(VirtioGpuBenchError::Command { command, response }),
    }
}

/// Full-frame TRANSFER_TO_HOST_2D of resource `id`, interleaved one for one with a plain memcpy
/// of the same bytes between two host buffers (so both see the same machine load); returns both
/// rates (bytes per second, from the median iteration). With `frames` 2 the backing holds two
/// frames that differ in every byte and the transfers alternate between them (offset 0 and one
/// frame), so each transfer changes every pixel; with 1 the guest re-sends the same frame.
fn transfer_vs_memcpy(
    dev: &mut GpuDevice,
    guest: &mut GuestDriver,
    id: u32,
    page_entries: bool,
    frames: usize,
    duration: Duration,
) -> Result<(f64, f64), VirtioGpuBenchError> {
    let backing_bytes = FRAME_BYTES * frames;
    let frame = guest.alloc(backing_bytes)?;
    let pattern: Vec<u8> = (0..FRAME_BYTES).map(|i| (i * 7) as u8).collect();
    // The memcpy baseline copies from as many host frames as the guest has, the same bytes.
    let sources: Vec<Vec<u8>> = (0..frames)
        .map(|n| pattern.iter().map(|b| b ^ (n as u8 * 0xff)).collect())
        .collect();
    for (n, source) in sources.iter().enumerate() {
        guest.write(GuestAddress(frame.0 + (n * FRAME_BYTES) as u64), source)?;
    }
    let format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
    let create = requests::create_2d(id, format, WIDTH, HEIGHT);
    check(&guest.send(dev, &create)?, "RESOURCE_CREATE_2D")?;
    let entries: Vec<(u64, u32)> = if page_entries {
        (0..backing_bytes as u64)
            .step_by(4096)
            .map(|o| (frame.0 + o, 4096))
            .collect()
    } else {
        vec![(frame.0, backing_bytes as u32)]
    };
    check(
        &guest.send(dev, &requests::attach_backing(id, &entries))?,
        "ATTACH_BACKING",
    )?;
    let resp = guest.alloc(4096)?;
    let mut chains = Vec::new();
    for n in 0..frames {
        let offset = (n * FRAME_BYTES) as u64;
        let request =
            requests::transfer_to_host_2d(id, requests::rect(0, 0, WIDTH, HEIGHT), offset);
        let req = guest.alloc(request.len())?;
        guest.write(req, &request)?;
        chains.push([(req, request.len() as u32, false), (resp, 4096, true)]);
    }
    let mut dst = vec![0u8; FRAME_BYTES];
    let mut sent = 0usize;
    let mut transfer = || -> Result<Duration, VirtioGpuBenchError> {
        let chain = &chains[sent % chains.len()];
        sent += 1;
        let t = Instant::now();
        guest.post(QueueKind::Control, chain)?;
        guest.kick(dev, QueueKind::Control)?;
        let used = guest.take_used(QueueKind::Control)?.len();
        let elapsed = t.elapsed();
        check(&guest.read(resp, 24)?, "TRANSFER_TO_HOST_2D")?;
        if used != 1 {
            return Err(VirtioGpuBenchError::Command {
                command: "TRANSFER",
                response: 0,
            });
        }
        Ok(elapsed)
    };
    let mut copied = 0usize;
    let mut memcpy = || {
        let source = &sources[copied % sources.len()];
        copied += 1;
        let t = Instant::now();
        dst.copy_from_slice(std::hint::black_box(source));
        std::hint::black_box(&mut dst);
        t.elapsed()
    };
    // Warm-up: first touches of the backend's storage and of `dst`, caches, frequency.
    for _ in 0..3 {
        transfer()?;
        memcpy();
    }
    let (mut t_transfer, mut t_memcpy) = (Vec::new(), Vec::new());
    let start = Instant::now();
    while start.elapsed() < duration || t_transfer.len() < 5 {
        t_transfer.push(transfer()?);
        t_memcpy.push(memcpy());
    }
    // Medians: other processes on a shared machine disturb single iterations, not the middle.
    let rate = |times: &mut Vec<Duration>| {
        times.sort();
        FRAME_BYTES as f64 / times[times.len() / 2].as_secs_f64()
    };
    Ok((rate(&mut t_transfer), rate(&mut t_memcpy)))
}

fn print_table(rows: &[Row]) {
    let w = |f: &dyn Fn(&Row) -> usize, title: &str| {
        rows.iter().map(f).max().unwrap_or(0).max(title.len())
    };
    let (wb, ww, wr, wm) = (
        w(&|r| r.backend.len(), "backend"),
        w(&|r| r.what.len(), "measurement"),
        w(&|r| r.rate.len(), "rate"),
        w(&|r| r.baseline.len(), "memcpy"),
    );
    println!(
        "{:wb$}  {:ww$}  {:>wr$}  {:>wm$}  {:>6}",
        "backend", "measurement", "rate", "memcpy", "ratio"
    );
    for r in rows {
        println!(
            "{:wb$}  {:ww$}  {:>wr$}  {:>wm$}  {:>6}",
            r.backend, r.what, r.rate, r.baseline, r.ratio
        );
    }
}
