//! `vgpu run`: boots a Linux guest (or, with `--raw`, runs a flat real-mode binary), serial
//! console on stdout, optional virtio-gpu, screenshots on request.

use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use gpu_interface::DisplayMode;
use virtio_gpu::backend::BackendKind;

use crate::boot::{self, mptable::MAX_CPUS, BootError};
use crate::cmos::{Cmos, CMOS_LEN, CMOS_PORT};
use crate::hypervisor::kvm::KvmHypervisor;
use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::raw::{self, RawError};
use crate::serial::{self, SerialDevice, COM1_IRQ, COM1_LEN, COM1_PORT};
use crate::vcpu::{VcpuError, VcpuRunner, VcpuThreads, VmExit};
use crate::vhost_user_frontend::attach::{self, VhostUserSpec};
use crate::vm::{GpuSpec, Vm, VmError};

const DEFAULT_CMDLINE: &str =
    "console=ttyS0 reboot=k panic=1 i8042.noaux i8042.nomux i8042.nopnp i8042.dumbkbd";
const DEFAULT_LINUX_MEMORY: u64 = 512 << 20;

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// Run a flat binary at guest address 0 in real mode (the seed's minimal VMM): port 0xf1
    /// goes to stdout and HLT ends the run with status 0.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["kernel", "initrd", "cmdline", "cpus", "disk", "fs"])]
    pub raw: Option<PathBuf>,
    /// Linux bzImage to boot.
    #[arg(long, value_name = "FILE", required_unless_present = "raw")]
    pub kernel: Option<PathBuf>,
    /// initramfs (cpio, optionally compressed).
    #[arg(long, value_name = "FILE")]
    pub initrd: Option<PathBuf>,
    /// Kernel command line.
    #[arg(long, default_value = DEFAULT_CMDLINE)]
    pub cmdline: Option<String>,
    /// Guest memory: bytes, or with a K/M/G suffix (default 512M; 2M with --raw).
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    pub mem: Option<u64>,
    /// Number of vCPUs.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=MAX_CPUS as i64))]
    pub cpus: u8,
    /// virtio-gpu: `virtio[,backend=software|vulkan|rutabaga][,width=W][,height=H][,scanouts=N][,edid=on|off]`,
    /// or `vhost-user,socket=S[,width=W][,height=H][,scanouts=N]` for one a vhost-user GPU
    /// backend serves (`vgpu vhost-user-gpu`, QEMU's vhost-user-gpu); at most one of these.
    /// A host GPU passed through: `vfio,host=DDDD:BB:SS.F[,rom=FILE|rombar=off][,mmap=off[:B+B]][,vga=on]` (bound to
    /// vfio-pci: `vgpu vfio bind`) or `vfio,sysfsdev=/sys/bus/mdev/devices/UUID`. Repeatable.
    #[arg(long, value_name = "SPEC", value_parser = parse_gpu_arg)]
    pub gpu: Vec<GpuArg>,
    /// A vhost-user-blk disk: `socket=S` (a backend listening there) or `path=FILE` (the VMM
    /// runs qemu-storage-daemon on it), with `[,format=raw|qcow2][,readonly=on]` for path=
    /// and `[,queues=N][,queue-size=Q]` for either. Repeatable.
    #[arg(long, value_name = "SPEC", value_parser = attach::parse_disk)]
    pub disk: Vec<VhostUserSpec>,
    /// A virtio-fs share: `tag=T,socket=S` (virtiofsd listening there) or `tag=T,dir=DIR`
    /// (the VMM runs virtiofsd on DIR), `[,queue-size=Q]`; the guest mounts it with
    /// `mount -t virtiofs T /mnt`. Repeatable.
    #[arg(long, value_name = "SPEC", value_parser = attach::parse_fs)]
    pub fs: Vec<VhostUserSpec>,
    /// Write a PNG of a scanout when the guest stops (or at --screenshot-after), and whenever
    /// the VMM receives SIGUSR1 (`kill -USR1 <pid>`).
    #[arg(long, value_name = "PNG", requires = "gpu")]
    pub screenshot: Option<PathBuf>,
    /// Which scanout --screenshot captures.
    #[arg(long, default_value_t = 0, requires = "screenshot")]
    pub scanout: u32,
    /// Take the screenshot after this many seconds, then stop the guest.
    #[arg(long, value_name = "SECONDS", requires = "screenshot")]
    pub screenshot_after: Option<f64>,
}

/// Why `vgpu run` failed.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(transparent)]
    Raw(#[from] RawError),
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Boot(#[from] BootError),
    #[error(transparent)]
    Vcpu(#[from] VcpuError),
    #[error(transparent)]
    Serial(#[from] serial::SerialError),
    #[error("the guest stopped: {0}")]
    Guest(String),
    #[error("installing the SIGUSR1 screenshot handler failed")]
    Signal(#[source] std::io::Error),
    #[error("{0} virtio-gpu devices asked for: a VM has one `--gpu virtio` or `--gpu vhost-user` (and any number of `--gpu vfio`)")]
    SecondVirtioGpu(usize),
    #[error("no display device to take a screenshot of")]
    NoDisplay,
    #[error("screenshot of scanout {scanout} failed: {reason}")]
    Screenshot { scanout: u32, reason: String },
}

/// `512M`, `1G`, `65536K`, or plain bytes.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, shift) = match s.char_indices().last() {
        Some((i, 'k' | 'K')) => (&s[..i], 10),
        Some((i, 'm' | 'M')) => (&s[..i], 20),
        Some((i, 'g' | 'G')) => (&s[..i], 30),
        _ => (s, 0),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 512M, 1G or a byte count"))?;
    n.checked_mul(1 << shift)
        .filter(|&b| b > 0)
        .ok_or_else(|| format!("size {s:?} is zero or too large"))
}

/// One `--gpu`: a virtio-gpu (served here or over vhost-user) or a passed-through function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuArg {
    Virtio(GpuSpec),
    Vfio(crate::vfio::VfioSpec),
}

/// Parses one `--gpu` value.
pub fn parse_gpu_arg(s: &str) -> Result<GpuArg, String> {
    match s.strip_prefix("vfio") {
        Some(rest) if rest.is_empty() || rest.starts_with(',') => {
            Ok(GpuArg::Vfio(crate::vfio::parse_vfio_spec(rest)?))
        }
        _ => Ok(GpuArg::Virtio(parse_gpu(s)?)),
    }
}

impl RunArgs {
    /// The virtio-gpu, if one was asked for.
    pub fn virtio_gpu(&self) -> Option<&GpuSpec> {
        self.gpu.iter().find_map(|g| match g {
            GpuArg::Virtio(spec) => Some(spec),
            GpuArg::Vfio(_) => None,
        })
    }

    fn vfio(&self) -> impl Iterator<Item = &crate::vfio::VfioSpec> {
        self.gpu.iter().filter_map(|g| match g {
            GpuArg::Vfio(spec) => Some(spec),
            GpuArg::Virtio(_) => None,
        })
    }
}

/// Parses the `--gpu` value of a virtio-gpu.
pub fn parse_gpu(s: &str) -> Result<GpuSpec, String> {
    let mut parts = s.split(',');
    let vhost_user = match parts.next() {
        Some("virtio") => false,
        Some("vhost-user") => true,
        other => {
            return Err(format!(
                "unknown GPU kind {:?}: `virtio`, `vhost-user` or `vfio`",
                other.unwrap_or("")
            ))
        }
    };
    let (mut backend, mut width, mut height, mut count, mut edid) =
        (BackendKind::Software, 1024u32, 768u32, 1usize, true);
    let mut socket = None;
    for part in parts {
        let (key, value) = part
            .split_once('=')
            .ok_or_else(|| format!("GPU option {part:?} is not key=value"))?;
        let number = |v: &str| {
            v.parse::<u32>()
                .map_err(|_| format!("GPU option {key}={v:?} is not a number"))
        };
        match key {
            "backend" if !vhost_user => backend = value.parse().map_err(|e| format!("{e}"))?,
            "socket" if vhost_user => socket = Some(PathBuf::from(value)),
            "width" => width = number(value)?,
            "height" => height = number(value)?,
            "scanouts" => count = number(value)? as usize,
            "edid" if !vhost_user => edid = attach::on_off(key, value)?,
            _ => return Err(format!("unknown GPU option {key:?} for this kind")),
        }
    }
    if vhost_user && socket.is_none() {
        return Err("a vhost-user GPU needs socket=S".into());
    }
    if !(1..=16).contains(&count) {
        return Err(format!("scanouts={count}: virtio-gpu has 1 to 16"));
    }
    if !(1..=16384).contains(&width) || !(1..=16384).contains(&height) {
        return Err(format!("{width}x{height} is not a usable display mode"));
    }
    Ok(GpuSpec {
        backend,
        vhost_user: socket,
        scanouts: vec![DisplayMode::new(width, height); count],
        edid,
    })
}

fn read_file(path: &PathBuf) -> Result<Vec<u8>, RunError> {
    std::fs::read(path).map_err(|source| RunError::Read {
        path: path.clone(),
        source,
    })
}

fn open_file(path: &PathBuf) -> Result<File, RunError> {
    File::open(path).map_err(|source| RunError::Read {
        path: path.clone(),
        source,
    })
}

pub fn run(args: RunArgs) -> Result<(), RunError> {
    let virtio_gpus = args
        .gpu
        .iter()
        .filter(|g| matches!(g, GpuArg::Virtio(_)))
        .count();
    if virtio_gpus > 1 {
        return Err(RunError::SecondVirtioGpu(virtio_gpus));
    }
    // Open the inputs first so a bad path is reported before anything about KVM.
    let reason = match &args.raw {
        Some(path) => {
            let image = read_file(path)?;
            run_raw(&KvmHypervisor::new()?, &image, &args)?
        }
        None => {
            let kernel_path = args
                .kernel
                .as_ref()
                .expect("clap requires --kernel without --raw");
            let kernel = open_file(kernel_path)?;
            let initrd = args.initrd.as_ref().map(open_file).transpose()?;
            run_linux(&KvmHypervisor::new()?, kernel, initrd, &args)?
        }
    };
    match reason {
        VmExit::Halted | VmExit::Reset | VmExit::PowerOff | VmExit::Stopped => Ok(()),
        VmExit::Error(e) => Err(RunError::Guest(e)),
    }
}

fn run_raw(hv: &dyn Hypervisor, image: &[u8], args: &RunArgs) -> Result<VmExit, RunError> {
    let memory = args.mem.unwrap_or(raw::DEFAULT_MEMORY);
    let (mut vm, output) = raw::build_raw_vm(hv, image, memory, Box::new(std::io::stdout()))?;
    if let Some(gpu) = args.virtio_gpu() {
        vm.add_gpu(gpu)?;
    }
    let reason = raw::run_raw_vm(&vm, &output)?;
    tracing::debug!("raw guest stopped: {reason:?}");
    if let Some(path) = &args.screenshot {
        screenshot(&vm, args.scanout, path)?;
    }
    Ok(reason)
}

fn run_linux(
    hv: &dyn Hypervisor,
    mut kernel: File,
    mut initrd: Option<File>,
    args: &RunArgs,
) -> Result<VmExit, RunError> {
    let memory = args.mem.unwrap_or(DEFAULT_LINUX_MEMORY);
    let cmdline = args.cmdline.as_deref().unwrap_or(DEFAULT_CMDLINE);

    let setup_started = Instant::now();
    let mut vm = Vm::new(hv, memory, true)?;
    let (serial, serial_irq) = SerialDevice::new(Box::new(std::io::stdout()))?;
    let serial = Arc::new(Mutex::new(serial));
    vm.pio
        .insert(serial.clone(), COM1_PORT, COM1_LEN)
        .map_err(VmError::from)?;
    vm.hv.register_irqfd(&serial_irq, COM1_IRQ)?;
    serial::forward_stdin(serial);
    vm.add_reset_device()?;
    vm.pio
        .insert(Arc::new(Mutex::new(Cmos::new())), CMOS_PORT, CMOS_LEN)
        .map_err(VmError::from)?;
    vm.pci_root()?;
    if let Some(gpu) = args.virtio_gpu() {
        vm.add_gpu(gpu)?;
    }
    for spec in args.vfio() {
        vm.add_vfio(spec)?;
    }
    for spec in args.disk.iter().chain(&args.fs) {
        vm.add_vhost_user(spec)?;
    }

    let entry = boot::load_linux(
        &vm.memory.ram,
        &mut kernel,
        initrd.as_mut(),
        cmdline,
        args.cpus,
    )?;
    let mut runners = Vec::new();
    for id in 0..args.cpus {
        let vcpu = vm.hv.create_vcpu(id)?;
        vcpu.setup_cpuid(args.cpus)?;
        vcpu.set_msrs(&boot::x86::boot_msrs())?;
        vcpu.setup_lapic()?;
        if id == 0 {
            boot::x86::setup_boot_vcpu(vcpu.as_ref(), entry.entry, entry.zero_page)
                .map_err(BootError::from)?;
        }
        runners.push(VcpuRunner {
            vcpu,
            id,
            pio: vm.pio.clone(),
            mmio: vm.mmio.clone(),
            hlt_stops: false,
            exit: vm.exit.clone(),
        });
    }
    let threads = VcpuThreads::spawn(runners, vm.exit.clone())?;
    tracing::info!(
        "guest started: {} vCPUs, {} MiB, set up in {} ms",
        args.cpus,
        memory >> 20,
        setup_started.elapsed().as_millis()
    );

    // Screenshots: at --screenshot-after (then stop), whenever SIGUSR1 asks, and at the end.
    let requested = screenshot_requests()?;
    let deadline = args
        .screenshot_after
        .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0)));
    let mut failure = None;
    let reason = threads.wait_with(|exit| {
        let Some(path) = &args.screenshot else { return };
        let timed = deadline.is_some_and(|d| Instant::now() >= d);
        if timed {
            failure = screenshot(&vm, args.scanout, path).err();
            exit.request(VmExit::Stopped);
        } else if requested.swap(false, Ordering::AcqRel) {
            // A request while the guest runs; the guest goes on either way.
            if let Err(e) = screenshot(&vm, args.scanout, path) {
                tracing::warn!("requested screenshot: {e}");
            }
        }
    });
    tracing::info!("guest stopped: {reason:?}");
    if let Some(e) = failure {
        return Err(e);
    }
    if let (Some(path), None) = (&args.screenshot, args.screenshot_after) {
        screenshot(&vm, args.scanout, path)?;
    }
    Ok(reason)
}

static SCREENSHOT_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_sigusr1(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {
    SCREENSHOT_REQUESTED.store(true, Ordering::Release);
}

/// Makes SIGUSR1 request a screenshot; returns the flag it sets.
fn screenshot_requests() -> Result<&'static AtomicBool, RunError> {
    vmm_sys_util::signal::register_signal_handler(libc::SIGUSR1, on_sigusr1)
        .map_err(|e| RunError::Signal(std::io::Error::from_raw_os_error(e.errno())))?;
    Ok(&SCREENSHOT_REQUESTED)
}

fn screenshot(vm: &Vm, scanout: u32, path: &std::path::Path) -> Result<(), RunError> {
    let display = vm.display().ok_or(RunError::NoDisplay)?;
    let frame = display
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .screenshot(scanout)
        .map_err(|e| RunError::Screenshot {
            scanout,
            reason: e.to_string(),
        })?;
    gpu_interface::screenshot::save_png(&frame, path).map_err(|e| RunError::Screenshot {
        scanout,
        reason: e.to_string(),
    })?;
    tracing::info!("scanout {scanout} saved to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::mock::{MockExit, MockHypervisor};
    use clap::Parser;

    #[derive(Parser)]
    struct TestCli {
        #[command(flatten)]
        run: RunArgs,
    }

    #[test]
    fn linux_vm_is_assembled_and_started_at_the_64_bit_entry() {
        let dir = std::env::temp_dir().join(format!("vgpu-run-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let kernel_path = dir.join("bzImage");
        std::fs::write(&kernel_path, crate::boot::tests::fake_bzimage(0x020f, 3)).unwrap();
        let args = TestCli::parse_from([
            "vgpu",
            "--kernel",
            kernel_path.to_str().unwrap(),
            "--mem",
            "64M",
            "--cpus",
            "2",
        ])
        .run;

        let hv = MockHypervisor::new();
        // vCPU 0 probes the CMOS, pulses the i8042 reset line; vCPU 1 idles.
        hv.state.lock().unwrap().vcpu_scripts.insert(
            0,
            vec![
                MockExit::IoOut {
                    port: 0x70,
                    data: vec![0x0a],
                },
                MockExit::IoIn { port: 0x71, len: 1 },
                MockExit::IoOut {
                    port: 0x64,
                    data: vec![0xfe],
                },
            ],
        );
        hv.state.lock().unwrap().idle_when_done = true;
        let kernel = File::open(&kernel_path).unwrap();
        let reason = run_linux(&hv, kernel, None, &args).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();

        assert_eq!(reason, VmExit::Reset);
        let s = hv.state.lock().unwrap();
        assert!(s.irqchip);
        assert_eq!(s.memory_slots[&0].1, 64 << 20);
        assert!(s.irqfd(COM1_IRQ).is_some(), "serial interrupt not wired");
        // Only the boot vCPU gets the 64-bit entry state; both get the boot MSRs.
        assert_eq!(s.regs[&0].rip, 0x10_0200);
        assert_eq!(s.regs[&0].rsi, crate::boot::layout::ZERO_PAGE_START);
        assert!(!s.regs.contains_key(&1));
        assert_eq!(s.msrs[&1], crate::boot::x86::boot_msrs());
        // The CMOS answered status register A without "update in progress".
        assert_eq!(s.read_results[&0], vec![vec![0x26]]);
    }

    #[test]
    fn sizes_take_suffixes_and_reject_nonsense() {
        assert_eq!(parse_size("512M"), Ok(512 << 20));
        assert_eq!(parse_size("1g"), Ok(1 << 30));
        assert_eq!(parse_size("64K"), Ok(64 << 10));
        assert_eq!(parse_size("4096"), Ok(4096));
        for bad in ["", "M", "12X", "0", "-1M", "99999999999G"] {
            assert!(parse_size(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn gpu_spec_parses_backend_modes_and_rejects_unknowns() {
        let spec = parse_gpu("virtio").unwrap();
        assert_eq!(spec.backend, BackendKind::Software);
        assert_eq!(spec.scanouts, vec![DisplayMode::new(1024, 768)]);
        let spec =
            parse_gpu("virtio,backend=vulkan,width=640,height=480,scanouts=2,edid=off").unwrap();
        assert_eq!(spec.backend, BackendKind::Vulkan);
        assert_eq!(spec.scanouts, vec![DisplayMode::new(640, 480); 2]);
        assert!(!spec.edid);
        let spec = parse_gpu("vhost-user,socket=/run/gpu.sock,width=800,height=600").unwrap();
        assert_eq!(spec.vhost_user, Some(PathBuf::from("/run/gpu.sock")));
        assert_eq!(spec.scanouts, vec![DisplayMode::new(800, 600)]);
        for bad in [
            "vfio",
            "vhost-user",
            "vhost-user,socket=s,backend=vulkan",
            "virtio,socket=s",
            "virtio,backend=opengl",
            "virtio,width",
            "virtio,width=wide",
            "virtio,scanouts=17",
            "virtio,height=0",
            "virtio,colour=blue",
        ] {
            assert!(parse_gpu(bad).is_err(), "{bad:?} accepted");
        }
    }
}
