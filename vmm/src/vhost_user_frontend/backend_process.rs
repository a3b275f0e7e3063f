//! Backends the VMM starts itself: `--disk path=FILE` runs qemu-storage-daemon and
//! `--fs dir=DIR` runs virtiofsd, each on a socket of its own, stopped when the VM ends.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use tracing::{info, warn};

/// How long a backend may take to create its socket.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a backend process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum BackendProcessError {
    #[error("starting {program}")]
    Spawn {
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{program} exited ({status}) before listening on {socket}: {stderr}")]
    Exited {
        program: String,
        status: std::process::ExitStatus,
        socket: PathBuf,
        stderr: String,
    },
    #[error("{program} did not listen on {socket} within {START_TIMEOUT:?}")]
    Timeout { program: String, socket: PathBuf },
    #[error("{0} not found: install it (scripts/setup.sh does) or name it with {1}")]
    NotFound(&'static str, &'static str),
}

/// A backend process and the socket it listens on; killed and reaped on drop.
#[derive(Debug)]
pub struct BackendProcess {
    child: Child,
    pub socket: PathBuf,
    program: String,
}

impl BackendProcess {
    /// Runs `command` and waits until it listens on `socket` (which it is told to create).
    pub fn start(mut command: Command, socket: PathBuf) -> Result<Self, BackendProcessError> {
        let program = command.get_program().to_string_lossy().into_owned();
        let _ = std::fs::remove_file(&socket);
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| BackendProcessError::Spawn {
                program: program.clone(),
                source,
            })?;
        let deadline = Instant::now() + START_TIMEOUT;
        while !listening(&socket) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut stderr = String::new();
                if let Some(mut pipe) = child.stderr.take() {
                    use std::io::Read;
                    let _ = pipe.read_to_string(&mut stderr);
                }
                return Err(BackendProcessError::Exited {
                    program,
                    status,
                    socket,
                    stderr: stderr.trim().to_string(),
                });
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(BackendProcessError::Timeout { program, socket });
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        // From here on the backend's complaints go to our log rather than a full pipe.
        if let Some(pipe) = child.stderr.take() {
            let name = program.clone();
            std::thread::spawn(move || forward_stderr(&name, pipe));
        }
        info!(program, socket = %socket.display(), pid = child.id(), "vhost-user backend started");
        Ok(BackendProcess {
            child,
            socket,
            program,
        })
    }
}

/// Whether some process listens on the Unix socket at `socket`, seen in /proc/net/unix
/// without connecting: virtiofsd serves one frontend and exits when it hangs up, so a probing
/// connection would end it.
fn listening(socket: &Path) -> bool {
    const SO_ACCEPTCON: u32 = 1 << 16;
    let Ok(table) = std::fs::read_to_string("/proc/net/unix") else {
        return false;
    };
    let wanted = socket.to_string_lossy();
    table.lines().skip(1).any(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        fields.len() >= 8
            && fields[7] == wanted
            && u32::from_str_radix(fields[3], 16).is_ok_and(|f| f & SO_ACCEPTCON != 0)
    })
}

fn forward_stderr(program: &str, pipe: std::process::ChildStderr) {
    use std::io::BufRead;
    for line in std::io::BufReader::new(pipe).lines().map_while(Result::ok) {
        warn!(program, "{line}");
    }
}

impl Drop for BackendProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
        info!(program = self.program, "vhost-user backend stopped");
    }
}

/// The first of `candidates` that is an executable file, or the program found on PATH.
pub fn find_program(
    name: &'static str,
    env: &'static str,
    candidates: &[&str],
) -> Result<PathBuf, BackendProcessError> {
    if let Some(path) = std::env::var_os(env) {
        return Ok(PathBuf::from(path));
    }
    let on_path: Vec<PathBuf> = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).map(|d| d.join(name)).collect())
        .unwrap_or_default();
    candidates
        .iter()
        .map(PathBuf::from)
        .chain(on_path)
        .find(|p| p.is_file())
        .ok_or(BackendProcessError::NotFound(name, env))
}

/// qemu-storage-daemon exporting `image` as vhost-user-blk with `queues` queues on `socket`.
pub fn storage_daemon_command(
    program: &Path,
    image: &Path,
    format: &str,
    readonly: bool,
    queues: usize,
    socket: &Path,
) -> Command {
    let mut command = Command::new(program);
    let mut file = format!("driver=file,node-name=file0,filename={}", image.display());
    if readonly {
        file.push_str(",read-only=on");
    }
    command
        .arg("--blockdev")
        .arg(file)
        .arg("--blockdev")
        .arg(format!(
            "driver={format},node-name=disk0,file=file0{}",
            if readonly { ",read-only=on" } else { "" }
        ))
        .arg("--export")
        .arg(format!(
            "type=vhost-user-blk,id=export0,node-name=disk0,addr.type=unix,addr.path={},\
             writable={},num-queues={queues}",
            socket.display(),
            if readonly { "off" } else { "on" }
        ));
    command
}

/// virtiofsd sharing `dir` on `socket` in `sandbox` (its `--sandbox`). Without one named, it
/// gets its namespace sandbox as root and none otherwise (building one needs root); the
/// directory is the only one it serves either way. An initramfs root cannot be pivoted away
/// from, so a VMM running there names chroot.
pub fn virtiofsd_command(
    program: &Path,
    dir: &Path,
    sandbox: Option<&str>,
    socket: &Path,
) -> Command {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let root = unsafe { libc::geteuid() } == 0;
    let sandbox = sandbox.unwrap_or(if root { "namespace" } else { "none" });
    let mut command = Command::new(program);
    command
        .arg("--socket-path")
        .arg(socket)
        .arg("--shared-dir")
        .arg(dir)
        .arg("--cache")
        .arg("auto")
        // A guest's O_DIRECT reaches the host file, as it would a disk.
        .arg("--allow-direct-io")
        .arg("--sandbox")
        .arg(sandbox);
    command
}
