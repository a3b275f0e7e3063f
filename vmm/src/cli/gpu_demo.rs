//! `vgpu gpu-demo --backend B --png FILE`: drives a virtio-gpu device the way a guest driver does
//! (real split virtqueues in in-process guest memory, no VM): creates a resource, attaches guest
//! pages as backing, draws a test pattern in guest memory, transfers it, sets the scanout,
//! flushes, sets an alpha-blended cursor, and saves the composed scanout as PNG.

use std::path::PathBuf;

use gpu_interface::screenshot::{save_png, ScreenshotError};
use gpu_interface::{DisplayMode, GpuError};
use virtio_gpu::backend::{create_backend, BackendError, BackendKind};
use virtio_gpu::guest_driver::{requests, DriverError, GuestDriver};
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, GpuDevice};

#[derive(Debug, clap::Args)]
pub struct GpuDemoArgs {
    /// Backend serving the device: software, vulkan or rutabaga.
    #[arg(long, default_value = "software")]
    backend: String,
    /// Where to save the scanout.
    #[arg(long)]
    png: PathBuf,
    #[arg(long, default_value_t = 640)]
    width: u32,
    #[arg(long, default_value_t = 480)]
    height: u32,
}

#[derive(Debug, thiserror::Error)]
pub enum GpuDemoError {
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error("guest driver: {0}")]
    Driver(#[from] DriverError),
    #[error("{command} failed with response {response:#x}")]
    Command {
        command: &'static str,
        response: u32,
    },
    #[error("screenshot: {0}")]
    Screenshot(#[from] GpuError),
    #[error(transparent)]
    Png(#[from] ScreenshotError),
    #[error("size {0}x{1} out of range (16..=4096)")]
    Size(u32, u32),
}

const SCREEN: u32 = 1;
const CURSOR: u32 = 2;

fn ok(resp: Vec<u8>, command: &'static str) -> Result<(), GpuDemoError> {
    match requests::response_type(&resp) {
        VIRTIO_GPU_RESP_OK_NODATA => Ok(()),
        response => Err(GpuDemoError::Command { command, response }),
    }
}

pub fn run(args: GpuDemoArgs) -> Result<(), GpuDemoError> {
    let (w, h) = (args.width, args.height);
    if !(16..=4096).contains(&w) || !(16..=4096).contains(&h) {
        return Err(GpuDemoError::Size(w, h));
    }
    let kind: BackendKind = args.backend.parse()?;
    let backend = create_backend(kind)?;
    let config = GpuConfig {
        scanouts: vec![DisplayMode::new(w, h)],
        edid: true,
    };
    let mut dev = GpuDevice::new(backend, config);
    let features = dev.device_features();
    dev.ack_features(features);
    let mut g = GuestDriver::new(((w * h * 4) as usize + (8 << 20)).next_power_of_two())?;

    let info = g.send(&mut dev, &requests::get_display_info())?;
    tracing::info!(
        backend = dev.backend_name(),
        "display info response {:#x}",
        requests::response_type(&info)
    );

    // The screen: guest pages (4 KiB entries, as Linux sends them) holding a test pattern.
    let bytes = (w * h * 4) as usize;
    let pages = g.alloc(bytes)?;
    g.write(pages, &test_pattern(w, h))?;
    let entries: Vec<(u64, u32)> = (0..bytes as u64)
        .step_by(4096)
        .map(|o| (pages.0 + o, (bytes as u64 - o).min(4096) as u32))
        .collect();
    let full = requests::rect(0, 0, w, h);
    let format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;
    ok(
        g.send(&mut dev, &requests::create_2d(SCREEN, format, w, h))?,
        "RESOURCE_CREATE_2D",
    )?;
    ok(
        g.send(&mut dev, &requests::attach_backing(SCREEN, &entries))?,
        "ATTACH_BACKING",
    )?;
    ok(
        g.send(&mut dev, &requests::transfer_to_host_2d(SCREEN, full, 0))?,
        "TRANSFER_TO_HOST_2D",
    )?;
    ok(
        g.send(&mut dev, &requests::set_scanout(0, SCREEN, full))?,
        "SET_SCANOUT",
    )?;
    ok(
        g.send(&mut dev, &requests::resource_flush(SCREEN, full))?,
        "RESOURCE_FLUSH",
    )?;

    // The cursor: a 64x64 ARGB arrow with a soft shadow.
    let cursor = g.alloc(64 * 64 * 4)?;
    g.write(cursor, &cursor_image())?;
    let argb = VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM;
    ok(
        g.send(&mut dev, &requests::create_2d(CURSOR, argb, 64, 64))?,
        "RESOURCE_CREATE_2D",
    )?;
    ok(
        g.send(
            &mut dev,
            &requests::attach_backing(CURSOR, &[(cursor.0, 64 * 64 * 4)]),
        )?,
        "ATTACH",
    )?;
    let r64 = requests::rect(0, 0, 64, 64);
    ok(
        g.send(&mut dev, &requests::transfer_to_host_2d(CURSOR, r64, 0))?,
        "TRANSFER_TO_HOST_2D",
    )?;
    let update = requests::cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        0,
        w / 2,
        h / 2,
        CURSOR,
        (2, 2),
    );
    g.send_cursor(&mut dev, &update)?;

    let frame = dev.screenshot(0)?;
    save_png(&frame, &args.png)?;
    println!(
        "{}: {}x{} scanout saved to {} (cursor at {}, {})",
        dev.backend_name(),
        frame.width,
        frame.height,
        args.png.display(),
        w / 2,
        h / 2
    );
    Ok(())
}

/// XRGB8888 (bytes B, G, R, X): colour bars on top, a grey ramp, and a checkerboard with a
/// one-pixel white border, so that offsets, strides and channel order are all visible.
fn test_pattern(w: u32, h: u32) -> Vec<u8> {
    const BARS: [[u8; 3]; 8] = [
        [255, 255, 255],
        [255, 255, 0],
        [0, 255, 255],
        [0, 255, 0],
        [255, 0, 255],
        [255, 0, 0],
        [0, 0, 255],
        [0, 0, 0],
    ];
    let mut data = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let rgb = if x == 0 || y == 0 || x == w - 1 || y == h - 1 {
                [255, 255, 255]
            } else if y < h / 2 {
                BARS[(x * 8 / w) as usize]
            } else if y < h * 3 / 4 {
                let v = (x * 255 / (w - 1)) as u8;
                [v, v, v]
            } else if ((x / 16) + (y / 16)) % 2 == 0 {
                [40, 40, 200]
            } else {
                [230, 160, 30]
            };
            let o = ((y * w + x) * 4) as usize;
            data[o..o + 4].copy_from_slice(&[rgb[2], rgb[1], rgb[0], 0xff]);
        }
    }
    data
}

/// A 64x64 ARGB8888 arrow: opaque white with a black outline and a half-transparent shadow.
fn cursor_image() -> Vec<u8> {
    let mut data = vec![0u8; 64 * 64 * 4];
    let inside = |x: i32, y: i32| (0..40).contains(&y) && x >= 0 && x <= y / 2 + 1;
    for y in 0..64i32 {
        for x in 0..64i32 {
            let argb: [u8; 4] = if inside(x - 2, y - 2) {
                if inside(x - 3, y - 3) && inside(x - 1, y - 1) && x > 3 {
                    [255, 255, 255, 255]
                } else {
                    [0, 0, 0, 255]
                }
            } else if inside(x - 5, y - 5) {
                [0, 0, 0, 100]
            } else {
                [0, 0, 0, 0]
            };
            let o = ((y * 64 + x) * 4) as usize;
            // B8G8R8A8 in memory.
            data[o..o + 4].copy_from_slice(&[argb[2], argb[1], argb[0], argb[3]]);
        }
    }
    data
}
