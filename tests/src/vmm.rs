//! Helpers for tests that run `vgpu run` on micro-guests: where the binary and the guests are,
//! building the guests once, KVM detection and running with a timeout.

use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The workspace root (the tests crate sits one level below it).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ has a parent")
        .to_path_buf()
}

/// `$VGPU_BIN`, or `target/debug/vgpu` (scripts/test.sh builds it before the tests).
pub fn vgpu_bin() -> PathBuf {
    std::env::var_os("VGPU_BIN")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target/debug/vgpu"))
}

/// Builds the micro-guests (guests/micro/build.sh) once per test process; returns guests/out.
/// Panics with the script's output if the build fails: a broken guest is a test failure.
pub fn micro_guests() -> PathBuf {
    static BUILT: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    BUILT
        .get_or_init(|| {
            let root = repo_root();
            let out = Command::new("bash")
                .arg(root.join("guests/micro/build.sh"))
                .output()
                .map_err(|e| format!("cannot run guests/micro/build.sh: {e}"))?;
            if !out.status.success() {
                return Err(format!(
                    "guests/micro/build.sh failed:\n{}{}",
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            Ok(root.join("guests/out"))
        })
        .clone()
        .unwrap_or_else(|e| panic!("{e}"))
}

/// `Err(reason)` when /dev/kvm cannot be used, for tests to print and skip.
pub fn kvm_unavailable() -> Option<String> {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => None,
        Err(e) => Some(format!("/dev/kvm unusable: {e}")),
    }
}

/// Whether the `vgpu` binary exists; tests skip (with a message) when it does not, unless
/// `VGPU_E2E_REQUIRED=1` (scripts/test.sh builds it), where a missing binary is a failure.
pub fn vgpu_missing() -> Option<String> {
    let bin = vgpu_bin();
    if bin.exists() {
        return None;
    }
    let reason = format!(
        "{} not built (run `cargo build -p vmm` or scripts/test.sh)",
        bin.display()
    );
    if std::env::var("VGPU_E2E_REQUIRED").as_deref() == Ok("1") {
        panic!("VGPU_E2E_REQUIRED=1 but {reason}");
    }
    Some(reason)
}

/// Runs `vgpu` with `args` and `envs`, killing it after `timeout`. Returns its output; a
/// timeout is reported as an error with what it printed so far.
pub fn run_vgpu(args: &[&str], envs: &[(&str, &str)], timeout: Duration) -> Result<Output, String> {
    let mut child = Command::new(vgpu_bin())
        .args(args)
        .envs(envs.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", vgpu_bin().display()))?;
    let mut stdout = child.stdout.take().expect("piped");
    let mut stderr = child.stderr.take().expect("piped");
    let out_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stdout.read_to_end(&mut buf);
        buf
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = stderr.read_to_end(&mut buf);
        buf
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break Some(status);
        }
        if start.elapsed() > timeout {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    match status {
        Some(status) => Ok(Output {
            status,
            stdout,
            stderr,
        }),
        None => Err(format!(
            "vgpu {args:?} timed out after {timeout:?}\nstdout: {}\nstderr: {}",
            String::from_utf8_lossy(&stdout),
            String::from_utf8_lossy(&stderr)
        )),
    }
}
