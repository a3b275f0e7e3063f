//! A private libvirt for tests and benchmarks: a session-mode `libvirtd` whose configuration,
//! runtime, cache and state directories all live in one scratch directory, driven with `virsh`.
//! Nothing of the host's libvirt is used or touched, but the daemon is the stock one and reads
//! the same vhost-user descriptors a user's session libvirt reads
//! (`$XDG_CONFIG_HOME/qemu/vhost-user`, `/etc/qemu/vhost-user`, `/usr/share/qemu/vhost-user`).
//!
//! libvirt runs a daemon as root in system mode only, so as root the session belongs to
//! `nobody` (the scratch directory is handed over to it); otherwise to the calling user.

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const LIBVIRTD: &str = "/usr/sbin/libvirtd";
const VIRSH: &str = "/usr/bin/virsh";
/// `nobody`/`nogroup` on Debian.
const NOBODY: u32 = 65534;

#[derive(Debug, thiserror::Error)]
pub enum LibvirtError {
    #[error("libvirt is not installed ({0} missing; scripts/setup.sh installs it)")]
    Missing(&'static str),
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
    #[error("libvirtd did not open its socket in 20 s; its log:\n{0}")]
    NoSocket(String),
    #[error("virsh {args}: {stderr}")]
    Virsh { args: String, stderr: String },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> LibvirtError {
    let what = what.into();
    move |source| LibvirtError::Io { what, source }
}

/// A running private `libvirtd`; dropping it destroys its domains, stops it and removes its
/// directory.
pub struct LibvirtSession {
    dir: PathBuf,
    daemon: Child,
    /// The user the session runs as, when it is not ours (we are root).
    user: Option<u32>,
    domains: Vec<String>,
}

/// Which of libvirtd and virsh is missing, if either is.
pub fn missing() -> Option<&'static str> {
    [LIBVIRTD, VIRSH]
        .into_iter()
        .find(|bin| !Path::new(bin).exists())
}

impl LibvirtSession {
    /// Starts a session daemon in `dir` (created; removed again on drop).
    pub fn start(dir: &Path) -> Result<Self, LibvirtError> {
        if let Some(bin) = missing() {
            return Err(LibvirtError::Missing(bin));
        }
        let _ = std::fs::remove_dir_all(dir);
        for sub in [
            "config/libvirt",
            "config/qemu/vhost-user",
            "run",
            "cache",
            "files",
        ] {
            std::fs::create_dir_all(dir.join(sub)).map_err(io(format!("creating {sub}")))?;
        }
        // Domain logs to files: the default, virtlogd, would be one more daemon to stop.
        std::fs::write(
            dir.join("config/libvirt/qemu.conf"),
            "stdio_handler = \"file\"\n",
        )
        .map_err(io("writing qemu.conf"))?;
        // SAFETY: geteuid has no preconditions and cannot fail.
        let user = (unsafe { libc::geteuid() } == 0).then_some(NOBODY);
        chown_tree(dir, user)?;
        let log = std::fs::File::create(dir.join("libvirtd.log")).map_err(io("libvirtd log"))?;
        let mut cmd = session_command(dir, user, LIBVIRTD);
        cmd.stdout(Stdio::null()).stderr(log);
        let mut session = LibvirtSession {
            dir: dir.to_path_buf(),
            daemon: cmd.spawn().map_err(io("starting libvirtd"))?,
            user,
            domains: Vec::new(),
        };
        let socket = session.socket();
        let start = Instant::now();
        while !socket.exists() {
            if start.elapsed() > Duration::from_secs(20) || session.daemon_exited() {
                let log = std::fs::read_to_string(dir.join("libvirtd.log")).unwrap_or_default();
                return Err(LibvirtError::NoSocket(log));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(session)
    }

    fn daemon_exited(&mut self) -> bool {
        self.daemon.try_wait().ok().flatten().is_some()
    }

    fn socket(&self) -> PathBuf {
        self.dir.join("run/libvirt/libvirt-sock")
    }

    fn command_as_session(&self, program: &str) -> Command {
        session_command(&self.dir, self.user, program)
    }

    /// The session's scratch directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where this session's libvirt looks first for vhost-user descriptors.
    pub fn vhost_user_dir(&self) -> PathBuf {
        self.dir.join("config/qemu/vhost-user")
    }

    /// Hands `path` (recursively) to the session's user, so its daemon and QEMU can use it.
    pub fn give_to_user(&self, path: &Path) -> Result<(), LibvirtError> {
        chown_tree(path, self.user)
    }

    /// Copies `file` into the session (the session's user may not be able to read it where it
    /// is) and returns the copy's path.
    pub fn stage(&self, file: &Path) -> Result<PathBuf, LibvirtError> {
        let name = file.file_name().ok_or_else(|| LibvirtError::Io {
            what: format!("staging {}", file.display()),
            source: std::io::ErrorKind::InvalidInput.into(),
        })?;
        let copy = self.dir.join("files").join(name);
        std::fs::copy(file, &copy).map_err(io(format!("copying {}", file.display())))?;
        self.give_to_user(&copy)?;
        Ok(copy)
    }

    /// Runs `virsh ARGS` against this session; its stdout, or its stderr as the error.
    pub fn virsh(&self, args: &[&str]) -> Result<String, LibvirtError> {
        let uri = format!("qemu:///session?socket={}", self.socket().display());
        let out = self
            .command_as_session(VIRSH)
            .args(["-q", "-c", &uri])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(io("running virsh"))?;
        if !out.status.success() {
            return Err(LibvirtError::Virsh {
                args: args.join(" "),
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// `virsh create` of a transient domain from `spec`.
    pub fn create(&mut self, spec: &DomainSpec) -> Result<(), LibvirtError> {
        let xml = self.dir.join(format!("{}.xml", spec.name));
        std::fs::write(&xml, spec.xml()).map_err(io("writing the domain XML"))?;
        self.give_to_user(&xml)?;
        self.virsh(&["create", &xml.to_string_lossy()])?;
        self.domains.push(spec.name.clone());
        Ok(())
    }

    /// `virsh destroy`: libvirt kills QEMU and then the domain's external processes.
    pub fn destroy(&mut self, name: &str) -> Result<(), LibvirtError> {
        self.domains.retain(|d| d != name);
        self.virsh(&["destroy", name]).map(drop)
    }

    /// QEMU's pid for domain `name`, from libvirt's pidfile.
    pub fn qemu_pid(&self, name: &str) -> Option<u32> {
        self.read_pid(|f| f == format!("{name}.pid"))
    }

    /// The pid of the vhost-user GPU backend libvirt started for `name`'s first video device.
    pub fn vhost_user_gpu_pid(&self, name: &str) -> Option<u32> {
        let suffix = format!("-{name}-video0-vhost-user-gpu.pid");
        self.read_pid(|f| f.ends_with(&suffix))
    }

    fn read_pid(&self, matches: impl Fn(&str) -> bool) -> Option<u32> {
        let run = self.dir.join("run/libvirt/qemu/run");
        std::fs::read_dir(run)
            .ok()?
            .flatten()
            .filter(|e| matches(&e.file_name().to_string_lossy()))
            .find_map(|e| std::fs::read_to_string(e.path()).ok()?.trim().parse().ok())
    }

    /// `virsh screenshot`: the PNG QEMU takes of the domain's console.
    pub fn screenshot_png(&self, name: &str) -> Result<Vec<u8>, LibvirtError> {
        let file = self.dir.join(format!("{name}-screen.png"));
        let _ = std::fs::remove_file(&file);
        self.virsh(&["screenshot", name, "--file", &file.to_string_lossy()])?;
        std::fs::read(&file).map_err(io("reading the screenshot"))
    }

    /// libvirtd's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("libvirtd.log")).unwrap_or_default()
    }
}

/// A command run as the session's user, with the session's directories and nothing else of
/// our environment.
fn session_command(dir: &Path, user: Option<u32>, program: &str) -> Command {
    let mut cmd = Command::new(program);
    cmd.env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("HOME", dir)
        .env("XDG_CONFIG_HOME", dir.join("config"))
        .env("XDG_RUNTIME_DIR", dir.join("run"))
        .env("XDG_CACHE_HOME", dir.join("cache"))
        .env("XDG_DATA_HOME", dir.join("data"))
        .env("XDG_STATE_HOME", dir.join("state"))
        .current_dir(dir);
    if let Some(uid) = user {
        // std clears the supplementary groups when root changes user.
        cmd.uid(uid).gid(NOBODY);
    }
    cmd
}

fn chown_tree(path: &Path, user: Option<u32>) -> Result<(), LibvirtError> {
    let Some(uid) = user else {
        return Ok(());
    };
    std::os::unix::fs::chown(path, Some(uid), Some(NOBODY))
        .map_err(io(format!("chown {}", path.display())))?;
    if path.is_dir() && !path.is_symlink() {
        for entry in std::fs::read_dir(path).map_err(io("listing"))?.flatten() {
            chown_tree(&entry.path(), user)?;
        }
    }
    Ok(())
}

impl Drop for LibvirtSession {
    fn drop(&mut self) {
        for name in std::mem::take(&mut self.domains) {
            let _ = self.virsh(&["destroy", &name]);
        }
        // SAFETY: plain kill(2) of the daemon we started (and have not reaped yet).
        unsafe { libc::kill(self.daemon.id() as i32, libc::SIGTERM) };
        let start = Instant::now();
        while !self.daemon_exited() && start.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCG domain that boots a kernel and initramfs directly, with a virtio video device served
/// by a vhost-user backend (which needs shared memfd guest memory) and its serial console in a
/// file.
#[derive(Debug, Clone)]
pub struct DomainSpec {
    pub name: String,
    pub kernel: PathBuf,
    pub initrd: PathBuf,
    pub cmdline: String,
    pub memory_mib: u32,
    pub serial: PathBuf,
    pub resolution: (u32, u32),
}

impl DomainSpec {
    /// The domain XML; paths and the command line are escaped for XML.
    pub fn xml(&self) -> String {
        let esc = |s: &str| {
            s.replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('\'', "&apos;")
        };
        let path = |p: &Path| esc(&p.to_string_lossy());
        let (x, y) = self.resolution;
        format!(
            "<domain type='qemu'>
  <name>{name}</name>
  <memory unit='MiB'>{mem}</memory>
  <vcpu>1</vcpu>
  <memoryBacking><source type='memfd'/><access mode='shared'/></memoryBacking>
  <os>
    <type arch='x86_64' machine='pc'>hvm</type>
    <kernel>{kernel}</kernel>
    <initrd>{initrd}</initrd>
    <cmdline>{cmdline}</cmdline>
  </os>
  <cpu mode='maximum'/>
  <on_reboot>destroy</on_reboot>
  <devices>
    <serial type='file'><source path='{serial}'/><target port='0'/></serial>
    <video>
      <model type='virtio' heads='1'><resolution x='{x}' y='{y}'/></model>
      <driver name='vhostuser'/>
    </video>
    <controller type='usb' model='none'/>
    <memballoon model='none'/>
  </devices>
</domain>
",
            name = esc(&self.name),
            mem = self.memory_mib,
            kernel = path(&self.kernel),
            initrd = path(&self.initrd),
            cmdline = esc(&self.cmdline),
            serial = path(&self.serial),
        )
    }
}

/// The lines written to `file` from now on (a serial console in a file), as they come; the
/// reader stops when the file goes away or nobody listens.
pub fn follow_lines(file: PathBuf) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let (mut offset, mut partial) = (0u64, Vec::new());
        let (mut seen_file, start) = (false, Instant::now());
        loop {
            let mut chunk = Vec::new();
            match std::fs::File::open(&file) {
                Ok(mut f) => {
                    seen_file = true;
                    if f.seek(SeekFrom::Start(offset)).is_ok() {
                        let _ = f.read_to_end(&mut chunk);
                    }
                }
                // Before the domain starts the file is not there yet; after, it is gone.
                Err(_) if seen_file || start.elapsed() > Duration::from_secs(600) => return,
                Err(_) => {}
            }
            offset += chunk.len() as u64;
            partial.extend_from_slice(&chunk);
            while let Some(end) = partial.iter().position(|&b| b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                let text = String::from_utf8_lossy(&line).trim_end().to_string();
                if tx.send(text).is_err() {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    });
    rx
}
