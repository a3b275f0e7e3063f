//! Helpers for the venus tests: `vgpu vtest` on a private socket, and host Vulkan programs
//! (vulkaninfo, ...) run through Mesa's venus driver against it, next to the same program on the
//! host's own driver.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::{io, repo_root, vgpu_bin, E2eError};

/// Mesa's venus ICD that scripts/setup.sh extracts (`$VGPU_VENUS_ICD` overrides).
pub fn venus_icd() -> Result<PathBuf, E2eError> {
    let path = std::env::var_os("VGPU_VENUS_ICD")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join(".cache/venus-icd/virtio_icd.json"));
    if path.is_file() {
        Ok(path)
    } else {
        Err(E2eError::Skip(format!(
            "{} missing: run scripts/setup.sh",
            path.display()
        )))
    }
}

pub fn vulkaninfo() -> Result<PathBuf, E2eError> {
    let p = PathBuf::from("/usr/bin/vulkaninfo");
    if p.is_file() {
        Ok(p)
    } else {
        Err(E2eError::Skip(
            "vulkaninfo missing (vulkan-tools): run scripts/setup.sh".into(),
        ))
    }
}

/// A `vgpu vtest` server on its own socket, killed on drop.
pub struct VtestServer {
    pub socket: PathBuf,
    pub child: Child,
    icd: PathBuf,
}

impl VtestServer {
    pub fn start(name: &str) -> Result<Self, E2eError> {
        Self::start_with(name, &[])
    }

    /// The server with extra `vgpu vtest` arguments (`--device ...`).
    pub fn start_with(name: &str, extra: &[&str]) -> Result<Self, E2eError> {
        Self::spawn(name, extra, None)
    }

    /// The server logging venus at debug level into `log`.
    pub fn start_logged(name: &str, log: &std::path::Path) -> Result<Self, E2eError> {
        Self::spawn(name, &[], Some(log))
    }

    fn spawn(name: &str, extra: &[&str], log: Option<&std::path::Path>) -> Result<Self, E2eError> {
        let icd = venus_icd()?;
        let socket =
            std::env::temp_dir().join(format!("vgpu-vtest-{name}-{}.sock", std::process::id()));
        let _ = std::fs::remove_file(&socket);
        let mut cmd = Command::new(vgpu_bin()?);
        cmd.args(["vtest", "--socket-path"])
            .arg(&socket)
            .args(extra)
            .stdout(Stdio::null());
        match log {
            Some(path) => {
                let file = std::fs::File::create(path).map_err(io("create server log"))?;
                cmd.env("RUST_LOG", "venus=debug").stderr(file)
            }
            None => cmd.stderr(Stdio::null()),
        };
        let child = cmd.spawn().map_err(io("spawn vgpu vtest"))?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&socket).is_err() {
            if Instant::now() > deadline {
                return Err(E2eError::Timeout {
                    what: "vtest socket".into(),
                    secs: 10,
                    tail: String::new(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(VtestServer { socket, child, icd })
    }

    /// `program args...` with Vulkan going through venus to this server.
    pub fn command(&self, program: &std::path::Path) -> Command {
        let mut c = Command::new(program);
        c.env("VN_DEBUG", "vtest")
            .env("VTEST_SOCKET_NAME", &self.socket)
            .env("VK_DRIVER_FILES", &self.icd)
            .env_remove("VK_ICD_FILENAMES");
        c
    }

    /// Runs a program through venus with a time limit; its output whatever the exit.
    pub fn run(
        &self,
        program: &std::path::Path,
        args: &[&str],
        secs: u64,
    ) -> Result<Output, E2eError> {
        run_with_timeout(self.command(program).args(args), secs)
    }

    /// Worker processes of this server still alive.
    pub fn workers(&self) -> Vec<u32> {
        children_of(self.child.id())
    }

    /// Open file descriptors of the server process.
    pub fn fd_count(&self) -> usize {
        std::fs::read_dir(format!("/proc/{}/fd", self.child.id())).map_or(0, |d| d.count())
    }
}

impl Drop for VtestServer {
    fn drop(&mut self) {
        for w in self.workers() {
            // SAFETY: kill(2) on a child pid of ours.
            unsafe { libc::kill(w as i32, libc::SIGKILL) };
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

pub fn children_of(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|p| {
            std::fs::read_to_string(format!("/proc/{p}/stat")).is_ok_and(|s| {
                // Fields after the parenthesised name: state, ppid.
                s.rsplit_once(") ")
                    .and_then(|(_, rest)| rest.split(' ').nth(1)?.parse::<u32>().ok())
                    == Some(pid)
            })
        })
        .collect()
}

pub fn run_with_timeout(cmd: &mut Command, secs: u64) -> Result<Output, E2eError> {
    let child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(io("spawn"))?;
    let pid = child.id();
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(secs);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
            if std::fs::metadata(format!("/proc/{pid}")).is_err() {
                return false;
            }
        }
        // SAFETY: kill(2) on our child, which is still running.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
        true
    });
    let out = child.wait_with_output().map_err(io("wait"))?;
    if watchdog.join().unwrap_or(false) {
        return Err(E2eError::Timeout {
            what: "client program".into(),
            secs,
            tail: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(out)
}

/// `key = value` lines of one vulkaninfo section (from its title line to the next title).
pub fn section(text: &str, title: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut inside = false;
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with("Vk") && t.ends_with(':') {
            inside = t == format!("{title}:");
            continue;
        }
        if inside {
            if let Some((k, v)) = t.split_once(" = ") {
                out.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
    }
    out
}

/// The Python that scripts/setup.sh gives the PyPI Vulkan clients (ncnn, wgpu), and the
/// directory of our scripts for them.
pub fn python_clients() -> Result<(PathBuf, PathBuf), E2eError> {
    let python = repo_root().join(".cache/pyvenv/bin/python");
    if !python.is_file() {
        return Err(E2eError::Skip(format!(
            "{} missing: run scripts/setup.sh",
            python.display()
        )));
    }
    Ok((python, repo_root().join("tests/clients")))
}

/// A program on the host's own Vulkan driver (none of the venus variables).
pub fn run_native(
    program: &std::path::Path,
    args: &[&std::ffi::OsStr],
    secs: u64,
) -> Result<Output, E2eError> {
    let mut c = Command::new(program);
    c.args(args)
        .env_remove("VN_DEBUG")
        .env_remove("VTEST_SOCKET_NAME")
        .env_remove("VK_DRIVER_FILES")
        .env_remove("VK_ICD_FILENAMES");
    run_with_timeout(&mut c, secs)
}
