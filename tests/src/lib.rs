//! Helpers for the end-to-end tests: real Linux guests under QEMU 10 (TCG) driving a virtio-gpu
//! device, either QEMU's built-in one, QEMU's own vhost-user-gpu backend, or ours
//! (`vgpu vhost-user-gpu`).
//!
//! The guest image comes from `guests/build-image.sh` (scripts/test.sh builds it first). The guest
//! reports on its serial console in lines `VGPU-TEST <name> PASS|FAIL|SKIP <detail>`; [`Guest`]
//! collects them as they arrive, takes screenshots through QMP and through our backend's scanout
//! export, and cleans up every process it started.

mod image;
pub mod nested;
pub mod slices;
pub mod venus;
pub mod vmm;

pub use image::{Image, BARS};

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Why an end-to-end test cannot run or failed to set up.
#[derive(Debug, thiserror::Error)]
pub enum E2eError {
    #[error("skipped: {0}")]
    Skip(String),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("timed out after {secs} s waiting for {what}; serial tail:\n{tail}")]
    Timeout {
        what: String,
        secs: u64,
        tail: String,
    },
    #[error("QMP: {0}")]
    Qmp(String),
    #[error("image: {0}")]
    Image(String),
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> E2eError {
    let what = what.into();
    move |source| E2eError::Io { what, source }
}

/// The repository root (tests/ is one level below it).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// The `vgpu` binary: `$VGPU_BIN`, or `target/debug/vgpu` (scripts/test.sh builds it first).
pub fn vgpu_bin() -> Result<PathBuf, E2eError> {
    let path = match std::env::var_os("VGPU_BIN") {
        Some(p) => PathBuf::from(p),
        None => repo_root().join("target/debug/vgpu"),
    };
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::Skip(format!(
            "{} not built (run `cargo build -p vmm` or scripts/test.sh)",
            path.display()
        )))
    }
}

/// QEMU 10 or newer (`qemu-system-x86_64`), or why not.
pub fn qemu10() -> Result<PathBuf, E2eError> {
    let qemu = PathBuf::from("qemu-system-x86_64");
    let out = Command::new(&qemu).arg("--version").output().map_err(|e| {
        E2eError::Skip(format!(
            "qemu-system-x86_64 not runnable ({e}); scripts/setup.sh installs it"
        ))
    })?;
    let text = String::from_utf8_lossy(&out.stdout);
    let major: u32 = text
        .split("version ")
        .nth(1)
        .and_then(|v| v.split('.').next())
        .and_then(|m| m.trim().parse().ok())
        .unwrap_or(0);
    if major >= 10 {
        Ok(qemu)
    } else {
        Err(E2eError::Skip(format!(
            "need QEMU 10 (vhost-user-gpu without KVM), found: {}",
            text.trim()
        )))
    }
}

/// Kernel and initramfs built by `guests/build-image.sh`.
pub fn guest_image() -> Result<(PathBuf, PathBuf), E2eError> {
    let out = repo_root().join("guests/out");
    let (kernel, initrd) = (out.join("vmlinuz"), out.join("vgpu.cpio.gz"));
    if kernel.is_file() && initrd.is_file() {
        Ok((kernel, initrd))
    } else {
        Err(E2eError::Skip(
            "guest image missing: run guests/build-image.sh".into(),
        ))
    }
}

/// Prints why a test skipped and returns true, or panics when `VGPU_E2E_REQUIRED=1` (CI) because
/// there the e2e tests must run.
pub fn skipped(test: &str, err: &E2eError) -> bool {
    if let E2eError::Skip(reason) = err {
        if std::env::var("VGPU_E2E_REQUIRED").is_ok_and(|v| v == "1") {
            panic!("{test}: cannot run but VGPU_E2E_REQUIRED=1: {reason}");
        }
        eprintln!("SKIPPED {test}: {reason}");
        return true;
    }
    false
}

/// Which virtio-gpu device the guest gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GpuDevice {
    /// QEMU's built-in `virtio-gpu-pci`.
    QemuBuiltin,
    /// `vhost-user-gpu-pci` served by QEMU's `/usr/lib/qemu/vhost-user-gpu`.
    QemuVhostUser,
    /// `vhost-user-gpu-pci` served by `vgpu vhost-user-gpu --backend <backend>`.
    Ours { backend: String },
    /// `vhost-user-gpu-pci` connected to a backend the test started itself (see
    /// [`OurBackend`]), which outlives the guest.
    External { socket: PathBuf },
    /// `vgpu vhost-user-gpu --fd 3` on one end of a socket pair, QEMU's `-chardev socket,fd=3`
    /// on the other: how libvirt starts vhost-user GPU backends.
    OursInheritedFd { backend: String },
}

/// Makes `fd` the child's descriptor 3 (inherited across exec) when `cmd` spawns.
fn pass_as_fd3(cmd: &mut Command, fd: std::os::fd::RawFd) {
    use std::os::unix::process::CommandExt;
    // SAFETY: the closure runs in the forked child before exec and only calls dup2/fcntl, which
    // are async-signal-safe; `fd` stays open in the parent until the spawn has returned.
    unsafe {
        cmd.pre_exec(move || make_fd3(fd));
    }
}

/// In the child: `fd` becomes descriptor 3, without close-on-exec.
fn make_fd3(fd: std::os::fd::RawFd) -> std::io::Result<()> {
    if fd != 3 {
        // SAFETY: dup2 on descriptors this process owns; it clears close-on-exec on 3.
        let rc = unsafe { libc::dup2(fd, 3) };
        return if rc < 0 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(())
        };
    }
    // SAFETY: querying the flags of descriptor 3, which this process owns.
    let flags = unsafe { libc::fcntl(3, libc::F_GETFD) };
    // SAFETY: clearing close-on-exec on descriptor 3, which this process owns.
    if flags < 0 || unsafe { libc::fcntl(3, libc::F_SETFD, flags & !libc::FD_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

/// How to boot a guest.
#[derive(Debug, Clone)]
pub struct GuestSpec {
    pub device: GpuDevice,
    /// Commands for the guest init (`vgpu_run`), each a program and its arguments.
    pub run: Vec<String>,
    /// Keep the guest alive after the commands (screenshots are taken meanwhile).
    pub hold: bool,
    pub memory_mib: u32,
    /// Scanout size QEMU configures (xres/yres).
    pub resolution: (u32, u32),
    /// Another initramfs of guests/out than vgpu.cpio.gz (same kernel).
    pub initrd: Option<PathBuf>,
    /// QEMU's machine type.
    pub machine: String,
    /// More QEMU arguments (devices) and kernel command line words.
    pub qemu_args: Vec<String>,
    pub append: String,
}

impl GuestSpec {
    pub fn new(device: GpuDevice, run: &[&str]) -> Self {
        GuestSpec {
            device,
            run: run.iter().map(|s| s.to_string()).collect(),
            hold: false,
            memory_mib: 512,
            resolution: (1024, 768),
            initrd: None,
            machine: "pc".into(),
            qemu_args: Vec::new(),
            append: String::new(),
        }
    }
}

#[derive(Default)]
struct Serial {
    lines: Vec<String>,
    closed: bool,
}

/// A running guest and the processes serving it; dropping it stops them all.
pub struct Guest {
    qemu: Child,
    backend: Option<Child>,
    serial: Arc<(Mutex<Serial>, Condvar)>,
    qmp: UnixStream,
    pub dir: PathBuf,
}

static NEXT_DIR: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

fn scratch_dir() -> Result<PathBuf, E2eError> {
    let n = NEXT_DIR.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("vgpu-e2e-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(io("creating scratch dir"))?;
    Ok(dir)
}

fn wait_for_path(path: &Path, timeout: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if path.exists() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    false
}

impl Guest {
    /// Boots a guest as `spec` says. Fails with [`E2eError::Skip`] when QEMU 10, the guest image or
    /// (for our backend) the `vgpu` binary is missing.
    pub fn boot(spec: &GuestSpec) -> Result<Guest, E2eError> {
        let qemu = qemu10()?;
        let (kernel, mut initrd) = guest_image()?;
        if let Some(other) = &spec.initrd {
            if !other.is_file() {
                return Err(E2eError::Skip(format!("{} missing", other.display())));
            }
            initrd = other.clone();
        }
        let dir = scratch_dir()?;
        let sock = dir.join("gpu.sock");
        let backend = match &spec.device {
            GpuDevice::QemuBuiltin => None,
            GpuDevice::QemuVhostUser => {
                let bin = Path::new("/usr/lib/qemu/vhost-user-gpu");
                if !bin.exists() {
                    return Err(E2eError::Skip(
                        "/usr/lib/qemu/vhost-user-gpu missing".into(),
                    ));
                }
                let mut cmd = Command::new(bin);
                cmd.arg("--socket-path").arg(&sock);
                Some(cmd)
            }
            GpuDevice::Ours { backend } => {
                let mut cmd = Command::new(vgpu_bin()?);
                cmd.arg("vhost-user-gpu").arg("--socket-path").arg(&sock);
                cmd.arg("--backend")
                    .arg(backend)
                    .arg("--screenshot-dir")
                    .arg(dir.join("shots"));
                Some(cmd)
            }
            GpuDevice::External { .. } => None,
            GpuDevice::OursInheritedFd { .. } => None,
        };
        let sock = match &spec.device {
            GpuDevice::External { socket } => socket.clone(),
            _ => sock,
        };
        let backend = match backend {
            Some(mut cmd) => {
                let log =
                    std::fs::File::create(dir.join("backend.log")).map_err(io("backend log"))?;
                cmd.stdout(Stdio::null()).stderr(log);
                let child = cmd.spawn().map_err(io("starting the vhost-user backend"))?;
                if !wait_for_path(&sock, Duration::from_secs(10)) {
                    let mut child = child;
                    let _ = child.kill();
                    let _ = child.wait();
                    let log = std::fs::read_to_string(dir.join("backend.log")).unwrap_or_default();
                    return Err(E2eError::Timeout {
                        what: "backend socket".into(),
                        secs: 10,
                        tail: log,
                    });
                }
                Some(child)
            }
            None => None,
        };
        // The libvirt way: a connected pair, one end for each process, no socket path.
        let (backend, qemu_end) = match &spec.device {
            GpuDevice::OursInheritedFd { backend: kind } => {
                use std::os::fd::AsRawFd;
                let (ours, theirs) =
                    std::os::unix::net::UnixStream::pair().map_err(io("socketpair"))?;
                let log =
                    std::fs::File::create(dir.join("backend.log")).map_err(io("backend log"))?;
                let mut cmd = Command::new(vgpu_bin()?);
                cmd.args([
                    "vhost-user-gpu",
                    "--fd",
                    "3",
                    "--backend",
                    kind,
                    "--screenshot-dir",
                ]);
                cmd.arg(dir.join("shots")).stdout(Stdio::null()).stderr(log);
                pass_as_fd3(&mut cmd, ours.as_raw_fd());
                let child = cmd.spawn().map_err(io("starting the vhost-user backend"))?;
                (Some(child), Some(theirs))
            }
            _ => (backend, None),
        };
        let mut cmdline = String::from("console=ttyS0 quiet panic=-1");
        if !spec.append.is_empty() {
            cmdline.push(' ');
            cmdline.push_str(&spec.append);
        }
        if !spec.run.is_empty() {
            let run: Vec<String> = spec.run.iter().map(|c| c.replace(' ', "+")).collect();
            cmdline.push_str(&format!(" vgpu_run={}", run.join(",")));
        }
        if spec.hold {
            cmdline.push_str(" vgpu_hold");
        }
        let qmp_path = dir.join("qmp.sock");
        let mut cmd = Command::new(qemu);
        cmd.args([
            "-M",
            &spec.machine,
            "-cpu",
            "max",
            "-nodefaults",
            "-no-reboot",
            "-display",
            "none",
        ]);
        cmd.args(["-m", &format!("{}M", spec.memory_mib)]);
        cmd.arg("-kernel")
            .arg(kernel)
            .arg("-initrd")
            .arg(initrd)
            .arg("-append")
            .arg(cmdline);
        cmd.args(["-serial", "stdio", "-monitor", "none"]);
        cmd.arg("-qmp")
            .arg(format!("unix:{},server=on,wait=off", qmp_path.display()));
        let (xres, yres) = spec.resolution;
        match &spec.device {
            GpuDevice::QemuBuiltin => {
                cmd.args([
                    "-device",
                    &format!("virtio-gpu-pci,xres={xres},yres={yres}"),
                ]);
            }
            _ => {
                let mem = format!(
                    "memory-backend-memfd,id=mem,size={}M,share=on",
                    spec.memory_mib
                );
                cmd.args(["-object", &mem, "-numa", "node,memdev=mem"]);
                match &qemu_end {
                    Some(end) => {
                        use std::os::fd::AsRawFd;
                        pass_as_fd3(&mut cmd, end.as_raw_fd());
                        cmd.args(["-chardev", "socket,id=gpu,fd=3"]);
                    }
                    None => {
                        cmd.arg("-chardev")
                            .arg(format!("socket,id=gpu,path={}", sock.display()));
                    }
                }
                cmd.args([
                    "-device",
                    &format!("vhost-user-gpu-pci,chardev=gpu,xres={xres},yres={yres}"),
                ]);
            }
        }
        cmd.args(&spec.qemu_args);
        cmd.stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut qemu = cmd.spawn().map_err(io("starting QEMU"))?;
        // Only QEMU may hold its end: the backend sees the hang-up when QEMU goes.
        drop(qemu_end);
        let serial = Arc::new((Mutex::new(Serial::default()), Condvar::new()));
        spawn_reader(qemu.stdout.take().expect("piped"), serial.clone(), "");
        spawn_reader(
            qemu.stderr.take().expect("piped"),
            serial.clone(),
            "QEMU-STDERR ",
        );
        let qmp = match connect_qmp(&qmp_path) {
            Ok(q) => q,
            Err(e) => {
                let _ = qemu.kill();
                let _ = qemu.wait();
                return Err(e);
            }
        };
        Ok(Guest {
            qemu,
            backend,
            serial,
            qmp,
            dir,
        })
    }

    /// Process ids of QEMU and the backend (if any), for CPU accounting.
    pub fn pids(&self) -> (u32, Option<u32>) {
        (self.qemu.id(), self.backend.as_ref().map(Child::id))
    }

    /// Waits until a serial line satisfies `pred`, returning it.
    pub fn wait_line(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&str) -> bool,
    ) -> Result<String, E2eError> {
        let (lock, cvar) = &*self.serial;
        let start = Instant::now();
        let mut serial = lock.lock().expect("serial lock");
        let mut seen = 0;
        loop {
            if let Some(line) = serial.lines[seen..].iter().find(|l| pred(l)) {
                return Ok(line.clone());
            }
            seen = serial.lines.len();
            let left = timeout.checked_sub(start.elapsed());
            match left {
                Some(left) if !serial.closed => {
                    serial = cvar.wait_timeout(serial, left).expect("serial lock").0;
                }
                _ => {
                    let tail = serial
                        .lines
                        .iter()
                        .rev()
                        .take(40)
                        .rev()
                        .cloned()
                        .collect::<Vec<_>>();
                    return Err(E2eError::Timeout {
                        what: what.into(),
                        secs: timeout.as_secs(),
                        tail: tail.join("\n"),
                    });
                }
            }
        }
    }

    /// Waits for the guest init to finish its commands ("VGPU-INIT done").
    pub fn wait_done(&self, timeout: Duration) -> Result<(), E2eError> {
        self.wait_line("VGPU-INIT done", timeout, |l| {
            l.starts_with("VGPU-INIT done")
        })
        .map(|_| ())
    }

    /// Every serial line so far.
    pub fn lines(&self) -> Vec<String> {
        self.serial.0.lock().expect("serial lock").lines.clone()
    }

    /// The guest's test results so far: (name, status, detail).
    pub fn results(&self) -> Vec<(String, String, String)> {
        self.lines()
            .iter()
            .filter_map(|l| parse_result(l))
            .collect()
    }

    /// The status of test `name` (PASS/FAIL/SKIP), if reported.
    pub fn result(&self, name: &str) -> Option<(String, String)> {
        self.results()
            .into_iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, s, d)| (s, d))
    }

    /// Screenshot through QMP `screendump` (what QEMU's display shows).
    pub fn qmp_screendump(&mut self) -> Result<Image, E2eError> {
        let path = self.dir.join("screendump.ppm");
        let _ = std::fs::remove_file(&path);
        let cmd = serde_json::json!({"execute": "screendump", "arguments": {"filename": path}});
        qmp_command(&mut self.qmp, &cmd)?;
        Image::read_ppm(&path)
    }

    /// QMP screendumps until one shows the colour bars (the display may lag the guest by a few
    /// frames: the guest driver waits only 50 ms for a flush), or the last one's mismatch.
    pub fn screendump_bars(&mut self, timeout: Duration) -> Result<Image, String> {
        let start = Instant::now();
        loop {
            let shot = self.qmp_screendump().map_err(|e| e.to_string())?;
            match shot.check_bars() {
                Ok(()) => return Ok(shot),
                Err(e) if start.elapsed() >= timeout => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Our backend's screenshots until one shows the colour bars, or the last one's mismatch.
    pub fn backend_screenshot_bars(&mut self, timeout: Duration) -> Result<Image, String> {
        let start = Instant::now();
        loop {
            let shot = self.backend_screenshot().map_err(|e| e.to_string())?;
            match shot.check_bars() {
                Ok(()) => return Ok(shot),
                Err(e) if start.elapsed() >= timeout => return Err(e),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Screenshot through our backend's scanout export (SIGUSR1 writes `shots/scanout0.png`).
    pub fn backend_screenshot(&mut self) -> Result<Image, E2eError> {
        let backend = self
            .backend
            .as_ref()
            .ok_or_else(|| E2eError::Image("no backend process".into()))?;
        let path = self.dir.join("shots/scanout0.png");
        let _ = std::fs::remove_file(&path);
        // SAFETY: kill(2) with a pid we spawned and still own (not yet reaped) and a valid signal.
        let rc = unsafe { libc::kill(backend.id() as libc::pid_t, libc::SIGUSR1) };
        if rc != 0 {
            return Err(io("signalling the backend")(std::io::Error::last_os_error()));
        }
        if !wait_for_path(&path, Duration::from_secs(10)) {
            return Err(E2eError::Image(format!(
                "{} did not appear",
                path.display()
            )));
        }
        Image::read_png(&path)
    }

    /// Asks QEMU to quit through QMP and waits for it and the backend.
    pub fn quit(mut self) -> Result<Option<std::process::ExitStatus>, E2eError> {
        let _ = qmp_command(&mut self.qmp, &serde_json::json!({"execute": "quit"}));
        let _ = self.qemu.wait();
        // Our backend keeps serving the next connection; stop it here.
        Ok(self.stop_backend())
    }

    fn stop_backend(&mut self) -> Option<std::process::ExitStatus> {
        let mut backend = self.backend.take()?;
        // SAFETY: kill(2) on a child we spawned and have not reaped.
        unsafe { libc::kill(backend.id() as libc::pid_t, libc::SIGTERM) };
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(status)) = backend.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = backend.kill();
        backend.wait().ok()
    }

    /// The backend's log so far (stderr).
    pub fn backend_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("backend.log")).unwrap_or_default()
    }
}

impl Drop for Guest {
    fn drop(&mut self) {
        let _ = self.qemu.kill();
        let _ = self.qemu.wait();
        self.stop_backend();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn spawn_reader(
    pipe: impl Read + Send + 'static,
    serial: Arc<(Mutex<Serial>, Condvar)>,
    prefix: &'static str,
) {
    std::thread::spawn(move || {
        let mut reader = BufReader::new(pipe);
        let mut buf = Vec::new();
        loop {
            buf.clear();
            let n = reader.read_until(b'\n', &mut buf).unwrap_or(0);
            let (lock, cvar) = &*serial;
            let mut s = lock.lock().expect("serial lock");
            if n == 0 {
                s.closed = true;
                cvar.notify_all();
                return;
            }
            let line = String::from_utf8_lossy(&buf).trim_end().to_string();
            if std::env::var_os("VGPU_E2E_SERIAL").is_some() {
                eprintln!("serial: {prefix}{line}");
            }
            s.lines.push(format!("{prefix}{line}"));
            cvar.notify_all();
        }
    });
}

/// Parses `VGPU-TEST name STATUS detail` (the line may carry a console prefix).
pub fn parse_result(line: &str) -> Option<(String, String, String)> {
    let rest = &line[line.find("VGPU-TEST ")? + "VGPU-TEST ".len()..];
    let mut parts = rest.splitn(3, ' ');
    let name = parts.next()?.to_string();
    let status = parts.next()?.to_string();
    Some((name, status, parts.next().unwrap_or("").to_string()))
}

fn connect_qmp(path: &Path) -> Result<UnixStream, E2eError> {
    if !wait_for_path(path, Duration::from_secs(10)) {
        return Err(E2eError::Qmp(format!("{} did not appear", path.display())));
    }
    // The socket file appears at bind(), a moment before QEMU listens on it: a refused
    // connection then is retried for a while.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut stream = loop {
        match UnixStream::connect(path) {
            Ok(stream) => break stream,
            Err(e)
                if e.kind() == std::io::ErrorKind::ConnectionRefused
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(Duration::from_millis(50))
            }
            Err(e) => return Err(io("connecting to QMP")(e)),
        }
    };
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(io("QMP timeout"))?;
    read_qmp(&mut stream)?; // greeting
    qmp_command(
        &mut stream,
        &serde_json::json!({"execute": "qmp_capabilities"}),
    )?;
    Ok(stream)
}

fn read_qmp(stream: &mut UnixStream) -> Result<serde_json::Value, E2eError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        let n = stream.read(&mut byte).map_err(io("reading QMP"))?;
        if n == 0 {
            return Err(E2eError::Qmp("connection closed".into()));
        }
        if byte[0] == b'\n' {
            break;
        }
        line.push(byte[0]);
    }
    serde_json::from_slice(&line).map_err(|e| E2eError::Qmp(format!("bad JSON: {e}")))
}

fn qmp_command(
    stream: &mut UnixStream,
    cmd: &serde_json::Value,
) -> Result<serde_json::Value, E2eError> {
    let mut text = cmd.to_string();
    text.push('\n');
    stream
        .write_all(text.as_bytes())
        .map_err(io("writing QMP"))?;
    loop {
        let reply = read_qmp(stream)?;
        if let Some(err) = reply.get("error") {
            return Err(E2eError::Qmp(err.to_string()));
        }
        if let Some(ret) = reply.get("return") {
            return Ok(ret.clone());
        }
        // Asynchronous events ("event": ...) are skipped.
    }
}

/// Our backend started by a test and serving several guests in turn.
pub struct OurBackend {
    child: Child,
    pub socket: PathBuf,
    pub dir: PathBuf,
}

impl OurBackend {
    /// Starts `vgpu vhost-user-gpu` with `extra` arguments and waits for its socket.
    pub fn start(backend: &str, extra: &[&str]) -> Result<OurBackend, E2eError> {
        qemu10()?;
        guest_image()?;
        let dir = scratch_dir()?;
        let socket = dir.join("gpu.sock");
        let log = std::fs::File::create(dir.join("backend.log")).map_err(io("backend log"))?;
        let child = Command::new(vgpu_bin()?)
            .args(["vhost-user-gpu", "--backend", backend, "--socket-path"])
            .arg(&socket)
            .arg("--screenshot-dir")
            .arg(dir.join("shots"))
            .args(extra)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("starting vgpu vhost-user-gpu"))?;
        let mut me = OurBackend { child, socket, dir };
        if !wait_for_path(&me.socket, Duration::from_secs(10)) {
            let _ = me.child.kill();
            return Err(E2eError::Timeout {
                what: "backend socket".into(),
                secs: 10,
                tail: me.log(),
            });
        }
        Ok(me)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Open file descriptors of the backend process.
    pub fn open_fds(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    /// Threads of the backend process.
    pub fn threads(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/task", self.child.id()))
            .map(|d| d.count())
            .unwrap_or(0)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("backend.log")).unwrap_or_default()
    }

    /// Waits for the backend to exit on its own (e.g. after `--max-connections`).
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let start = Instant::now();
        while start.elapsed() < timeout {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }
}

impl Drop for OurBackend {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
