//! `vgpu bench guest-display`: the same guest workload (N full-screen 1024x768 updates through
//! DIRTYFB, guests/programs/vgpu-kms.c) against QEMU's built-in virtio-gpu-pci, QEMU's own
//! vhost-user-gpu backend and ours, in one run; prints updates/s and host CPU time per update
//! (QEMU plus backend, summed over all their threads from /proc/<pid>/task/*/schedstat) with
//! ratios against both QEMU baselines. One more row, where libvirt is installed: the same guest
//! as a libvirt domain whose `<driver name='vhostuser'/>` video libvirt itself gives to our
//! installed backend (a private session libvirtd, [`crate::libvirt`]), on its default renderer.
//!
//! The guest image comes from guests/build-image.sh; QEMU 10 runs it under TCG.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use clap::Args;

#[derive(Debug, Args)]
pub struct GuestDisplayArgs {
    /// Full-screen updates per run.
    #[arg(long, default_value_t = 2000)]
    pub frames: u32,
    /// Runs per device (the best is reported).
    #[arg(long, default_value_t = 2)]
    pub runs: u32,
    /// Our backend's renderers to measure, comma-separated (software, vulkan, rutabaga).
    #[arg(
        long,
        default_value = "software,vulkan,rutabaga",
        value_delimiter = ','
    )]
    pub backends: Vec<String>,
    /// What each update changes: `sparse` (a 16x16 block, whole screen marked dirty) or `full`
    /// (every pixel), the worst case for a device that forwards pixels to another process.
    #[arg(long, value_enum, default_value_t = Workload::Sparse)]
    pub workload: Workload,
    /// Leave out the libvirt-started row.
    #[arg(long)]
    pub no_libvirt: bool,
    /// Directory holding vmlinuz and vgpu.cpio.gz.
    #[arg(long, default_value = "guests/out")]
    pub image_dir: PathBuf,
}

/// What the guest changes between updates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    Sparse,
    Full,
}

#[derive(Debug, thiserror::Error)]
pub enum GuestDisplayError {
    #[error("guest image {0} missing: run guests/build-image.sh")]
    NoImage(PathBuf),
    #[error("starting {what}: {source}")]
    Spawn {
        what: String,
        source: std::io::Error,
    },
    #[error("{device}: {reason}")]
    Run { device: String, reason: String },
    #[error("libvirt: {0}")]
    Libvirt(#[from] crate::libvirt::LibvirtError),
    #[error("installing vgpu for libvirt: {0}")]
    Install(#[from] super::install::InstallError),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Device {
    QemuBuiltin,
    QemuVhostUser,
    Ours,
    Libvirt,
}

impl Device {
    fn label(self, backend: &str) -> String {
        match self {
            Device::QemuBuiltin => "QEMU virtio-gpu-pci (built-in)".into(),
            Device::QemuVhostUser => "QEMU vhost-user-gpu".into(),
            Device::Ours => format!("vgpu vhost-user-gpu ({backend})"),
            Device::Libvirt => "libvirt-started vgpu (default)".into(),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Measure {
    updates_per_s: f64,
    /// QEMU plus backend.
    cpu_ms_per_update: f64,
    /// The backend process alone (0 for QEMU's built-in device).
    backend_ms_per_update: f64,
}

/// Nanoseconds on CPU of every thread of `pid` (threads alive now).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| {
            s.split_whitespace()
                .next()
                .and_then(|n| n.parse::<u64>().ok())
        })
        .sum()
}

struct Procs {
    qemu: Child,
    backend: Option<Child>,
    dir: PathBuf,
}

impl Drop for Procs {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        if let Some(b) = self.backend.as_mut() {
            let _ = b.kill();
            let _ = b.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn(cmd: &mut Command, what: &str) -> Result<Child, GuestDisplayError> {
    cmd.spawn().map_err(|source| GuestDisplayError::Spawn {
        what: what.into(),
        source,
    })
}

fn run_once(
    device: Device,
    args: &GuestDisplayArgs,
    backend: &str,
    n: u32,
) -> Result<Measure, GuestDisplayError> {
    let label = device.label(backend);
    let fail = |reason: String| GuestDisplayError::Run {
        device: label.clone(),
        reason,
    };
    let dir = std::env::temp_dir().join(format!("vgpu-bench-{}-{n}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let sock = dir.join("gpu.sock");
    let backend_child = match device {
        // libvirt starts its backend itself (run_libvirt).
        Device::QemuBuiltin | Device::Libvirt => None,
        Device::QemuVhostUser => Some(spawn(
            Command::new("/usr/lib/qemu/vhost-user-gpu")
                .arg("--socket-path")
                .arg(&sock)
                .stderr(Stdio::null()),
            "QEMU's vhost-user-gpu",
        )?),
        Device::Ours => {
            let exe = std::env::current_exe().map_err(|source| GuestDisplayError::Spawn {
                what: "vgpu".into(),
                source,
            })?;
            Some(spawn(
                Command::new(exe)
                    .args(["vhost-user-gpu", "--backend", backend, "--socket-path"])
                    .arg(&sock)
                    .env("RUST_LOG", "warn")
                    .stderr(Stdio::null()),
                "vgpu vhost-user-gpu",
            )?)
        }
    };
    if backend_child.is_some() {
        let start = Instant::now();
        while !sock.exists() && start.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    let mut qemu = Command::new("qemu-system-x86_64");
    qemu.args([
        "-M",
        "pc",
        "-cpu",
        "max",
        "-m",
        "512M",
        "-nodefaults",
        "-no-reboot",
        "-display",
        "none",
    ]);
    qemu.arg("-kernel").arg(args.image_dir.join("vmlinuz"));
    qemu.arg("-initrd").arg(args.image_dir.join("vgpu.cpio.gz"));
    qemu.arg("-append").arg(guest_cmdline(args));
    qemu.args(["-serial", "stdio", "-monitor", "none"]);
    if device == Device::QemuBuiltin {
        qemu.args(["-device", "virtio-gpu-pci,xres=1024,yres=768"]);
    } else {
        qemu.args([
            "-object",
            "memory-backend-memfd,id=mem,size=512M,share=on",
            "-numa",
            "node,memdev=mem",
        ]);
        qemu.arg("-chardev")
            .arg(format!("socket,id=gpu,path={}", sock.display()));
        qemu.args([
            "-device",
            "vhost-user-gpu-pci,chardev=gpu,xres=1024,yres=768",
        ]);
    }
    qemu.stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut procs = Procs {
        qemu: spawn(&mut qemu, "qemu-system-x86_64")?,
        backend: backend_child,
        dir,
    };
    let stdout = procs
        .qemu
        .stdout
        .take()
        .ok_or_else(|| fail("no QEMU stdout".into()))?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let pids = (procs.qemu.id(), procs.backend.as_ref().map(Child::id));
    measure(&rx, pids, args.frames, fail)
}

/// The guest command line that runs the workload.
fn guest_cmdline(args: &GuestDisplayArgs) -> String {
    let full = if args.workload == Workload::Full {
        "+--full"
    } else {
        ""
    };
    let run = format!("vgpu-kms+--mode+1024x768+--frames+{}{full}", args.frames);
    format!("console=ttyS0 quiet panic=-1 vgpu_run={run}")
}

/// Times the guest's updates from its start marker to its result line on the serial `lines`,
/// with the CPU time QEMU (`pids.0`) and the backend spent meanwhile.
fn measure(
    lines: &mpsc::Receiver<String>,
    pids: (u32, Option<u32>),
    frames: u32,
    fail: impl Fn(String) -> GuestDisplayError,
) -> Result<Measure, GuestDisplayError> {
    let cpu = || (cpu_ns(pids.0), pids.1.map_or(0, cpu_ns));
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut start: Option<(Instant, (u64, u64))> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .map_err(|_| fail("guest did not finish in 120 s".into()))?;
        if line.contains("VGPU-RUN vgpu-kms") {
            start = Some((Instant::now(), cpu()));
        } else if line.contains("VGPU-TEST kms-frames") {
            let (t0, (q0, b0)) = start.ok_or_else(|| fail("no start marker".into()))?;
            let secs = t0.elapsed().as_secs_f64();
            let (q1, b1) = cpu();
            if !line.contains(" PASS ") {
                return Err(fail(line));
            }
            let frames = f64::from(frames);
            let (qemu_ns, backend_ns) = (q1.saturating_sub(q0), b1.saturating_sub(b0));
            return Ok(Measure {
                updates_per_s: frames / secs,
                cpu_ms_per_update: (qemu_ns + backend_ns) as f64 / 1e6 / frames,
                backend_ms_per_update: backend_ns as f64 / 1e6 / frames,
            });
        } else if line.contains("VGPU-TEST") && line.contains(" FAIL ") {
            return Err(fail(line));
        }
    }
}

/// The workload as a libvirt domain: our binary installed into a private session libvirt,
/// which starts it as the domain's vhost-user GPU backend.
fn run_libvirt(args: &GuestDisplayArgs, n: u32) -> Result<Measure, GuestDisplayError> {
    use crate::libvirt::{follow_lines, DomainSpec, LibvirtSession};
    const NAME: &str = "vgpu-bench";
    let fail = |reason: String| GuestDisplayError::Run {
        device: Device::Libvirt.label(""),
        reason,
    };
    let dir = std::env::temp_dir().join(format!("vgpu-bench-lv-{}-{n}", std::process::id()));
    let mut session = LibvirtSession::start(&dir)?;
    let layout = super::install::Layout::new(&dir.join("prefix"), &session.vhost_user_dir());
    let exe = std::env::current_exe().map_err(|source| GuestDisplayError::Spawn {
        what: "vgpu".into(),
        source,
    })?;
    super::install::install(&layout, &exe)?;
    session.give_to_user(&dir)?;
    let spec = DomainSpec {
        name: NAME.into(),
        kernel: session.stage(&args.image_dir.join("vmlinuz"))?,
        initrd: session.stage(&args.image_dir.join("vgpu.cpio.gz"))?,
        cmdline: guest_cmdline(args),
        memory_mib: 512,
        serial: dir.join("serial.log"),
        resolution: (1024, 768),
    };
    let lines = follow_lines(spec.serial.clone());
    session.create(&spec)?;
    let qemu = session
        .qemu_pid(NAME)
        .ok_or_else(|| fail("no QEMU pidfile".into()))?;
    let backend = session.vhost_user_gpu_pid(NAME);
    measure(&lines, (qemu, backend), args.frames, fail)
}

pub fn run(args: GuestDisplayArgs) -> Result<(), GuestDisplayError> {
    for file in ["vmlinuz", "vgpu.cpio.gz"] {
        let path = args.image_dir.join(file);
        if !Path::new(&path).exists() {
            return Err(GuestDisplayError::NoImage(path));
        }
    }
    let mut rows = vec![
        (Device::QemuBuiltin, String::new()),
        (Device::QemuVhostUser, String::new()),
    ];
    rows.extend(args.backends.iter().map(|b| (Device::Ours, b.clone())));
    if !args.no_libvirt {
        match crate::libvirt::missing() {
            None => rows.push((Device::Libvirt, String::new())),
            Some(bin) => eprintln!(
                "bench guest-display: no libvirt row ({bin} missing; scripts/setup.sh installs it)"
            ),
        }
    }
    let mut results = Vec::new();
    let mut n = 0;
    for (device, backend) in rows {
        let mut best: Option<Measure> = None;
        for run in 0..args.runs {
            n += 1;
            eprintln!(
                "bench guest-display: {} run {}/{}",
                device.label(&backend),
                run + 1,
                args.runs
            );
            let m = match device {
                Device::Libvirt => run_libvirt(&args, n)?,
                _ => run_once(device, &args, &backend, n)?,
            };
            if best.is_none_or(|b| m.updates_per_s > b.updates_per_s) {
                best = Some(m);
            }
        }
        results.push((device.label(&backend), best.expect("runs >= 1")));
    }
    let (builtin, qemu_vu) = (results[0].1, results[1].1);
    println!(
        "guest-display: {} full-screen 1024x768 XRGB8888 updates (DIRTYFB) per run, {:?} workload, best of {}",
        args.frames, args.workload, args.runs
    );
    println!(
        "{:<34} {:>9} {:>10} {:>10} {:>10} {:>10} {:>10} {:>10}",
        "device",
        "updates/s",
        "CPU ms/up",
        "backend",
        "rate/built",
        "rate/vu",
        "CPU/built",
        "CPU/vu"
    );
    for (label, m) in &results {
        println!(
            "{:<34} {:>9.0} {:>10.3} {:>10.3} {:>9.2}x {:>9.2}x {:>9.2}x {:>9.2}x",
            label,
            m.updates_per_s,
            m.cpu_ms_per_update,
            m.backend_ms_per_update,
            m.updates_per_s / builtin.updates_per_s,
            m.updates_per_s / qemu_vu.updates_per_s,
            builtin.cpu_ms_per_update / m.cpu_ms_per_update,
            qemu_vu.cpu_ms_per_update / m.cpu_ms_per_update,
        );
    }
    println!(
        "CPU ms/up: QEMU (incl. the TCG guest) plus backend CPU per update; backend: the backend \
         process alone; rate/x: updates/s over x's; CPU/x: x's CPU per update over this row's \
         (higher is better for both)"
    );
    Ok(())
}
