//! Helpers for the software-slice tests: `vgpu slices serve` on private sockets, tenants on its
//! slices through Mesa's venus driver, and the server's `list` as JSON.

use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::{io, venus::venus_icd, vgpu_bin, E2eError};

/// The checks guests/slices/mdev-suite reports (`VGPU-TEST <name> PASS`), in order: mbochs
/// loaded, `vgpu mdev` and mdevctl 1.2 agreeing on types and lists, the pool filled and emptied,
/// slices defined by one tool and started or stopped by the other.
pub const MDEV_SUITE_CHECKS: &[&str] = &[
    "load",
    "types-match",
    "fill",
    "types-match-full",
    "stop",
    "ours-defined-theirs-started",
    "theirs-defined-ours-started",
    "list-match",
    "stop-cross",
    "stop-twice",
];

/// A slice server on a private directory, killed on drop.
pub struct SliceServer {
    pub dir: PathBuf,
    child: Child,
    icd: PathBuf,
}

impl SliceServer {
    /// Serves `slices` (the TOML `[[slice]]` entries) under `policy`.
    pub fn start(name: &str, policy: &str, slices: &str) -> Result<Self, E2eError> {
        let icd = venus_icd()?;
        let vgpu = vgpu_bin()?;
        let dir = std::env::temp_dir().join(format!("vgpu-slices-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).map_err(io("slices dir"))?;
        let control = dir.join("control.sock");
        let config = dir.join("slices.toml");
        let text = format!(
            "policy = \"{policy}\"\ncontrol = \"{}\"\n{slices}",
            control.display()
        );
        std::fs::write(&config, text).map_err(io("slices config"))?;
        let log = std::fs::File::create(dir.join("server.log")).map_err(io("server log"))?;
        let child = Command::new(vgpu)
            .args(["slices", "serve", "--config"])
            .arg(&config)
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .map_err(io("spawn vgpu slices serve"))?;
        let server = SliceServer { dir, child, icd };
        let deadline = Instant::now() + Duration::from_secs(10);
        while UnixStream::connect(&control).is_err() {
            if Instant::now() > deadline {
                return Err(E2eError::Timeout {
                    what: "slices control socket".into(),
                    secs: 10,
                    tail: server.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(server)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }

    pub fn control_socket(&self) -> PathBuf {
        self.dir.join("control.sock")
    }

    pub fn socket(&self, slice: &str) -> PathBuf {
        self.dir.join(format!("{slice}.sock"))
    }

    /// `vgpu bench venus-workload <workload>` as a tenant of `slice`.
    pub fn tenant(&self, slice: &str, workload: &str) -> Command {
        let mut c = Command::new(vgpu_bin().expect("checked at start"));
        c.args(["bench", "venus-workload", workload])
            .env("VN_DEBUG", "vtest")
            .env("VTEST_SOCKET_NAME", self.socket(slice))
            .env("VK_DRIVER_FILES", &self.icd)
            .env_remove("VK_ICD_FILENAMES");
        c
    }

    /// `vgpu slices <args>` against this server; its stdout, or the error it printed.
    pub fn control(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(vgpu_bin().expect("checked at start"))
            .arg("slices")
            .arg("--control")
            .arg(self.control_socket())
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).into_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    }

    /// `vgpu slices list --json`: the slices by name.
    pub fn list(&self) -> Value {
        let text = self
            .control(&["list", "--json"])
            .unwrap_or_else(|e| panic!("slices list: {e}\n{}", self.log()));
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
    }

    /// One slice's row of `list`.
    pub fn slice(&self, name: &str) -> Value {
        let list = self.list();
        let rows = list["slices"].as_array().expect("slices").clone();
        rows.into_iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("no slice {name} in {list}"))
    }

    /// Polls `slice` until `pred` holds of its row, for up to `secs`.
    pub fn wait_for(&self, slice: &str, secs: u64, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        loop {
            let row = self.slice(slice);
            if pred(&row) {
                return row;
            }
            assert!(
                Instant::now() < deadline,
                "slice {slice} after {secs} s: {row}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for SliceServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
