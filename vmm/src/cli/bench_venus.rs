//! `vgpu bench venus`: the same Vulkan workloads natively and through Mesa's venus driver, our
//! vtest server and our renderer, in one run, plus the renderer's decoder on the streams those
//! runs recorded. Prints a table with ratios to the baselines.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use venus::protocol::generated::decode_only;
use venus::protocol::wire::{Arena, Cursor, Encoder, Lookup};

#[derive(Debug, Args)]
pub struct VenusBenchArgs {
    /// Mesa's venus ICD (default: .cache/venus-icd/virtio_icd.json next to target/, as
    /// scripts/setup.sh extracts it).
    #[arg(long)]
    pub icd: Option<PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum VenusBenchError {
    #[error("venus ICD {0} missing: run scripts/setup.sh")]
    NoIcd(PathBuf),
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    #[error("workload {workload} ({side}) failed: {detail}")]
    Workload {
        workload: String,
        side: String,
        detail: String,
    },
}

/// target/<profile>/vgpu -> the repository root.
fn repo_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

fn default_icd() -> PathBuf {
    repo_root().join(".cache/venus-icd/virtio_icd.json")
}

struct Server {
    child: Child,
    socket: PathBuf,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.socket);
    }
}

fn start_server(record: &Path) -> Result<Server, VenusBenchError> {
    let exe = std::env::current_exe().map_err(|e| VenusBenchError::Io("current exe".into(), e))?;
    let socket = std::env::temp_dir().join(format!("vgpu-bench-venus-{}.sock", std::process::id()));
    let child = Command::new(exe)
        .args(["vtest", "--socket-path"])
        .arg(&socket)
        .env("VENUS_RECORD_DIR", record)
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| VenusBenchError::Io("spawn vgpu vtest".into(), e))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(Server { child, socket })
}

fn run_workload(name: &str, venus: Option<(&Path, &Path)>) -> Result<f64, VenusBenchError> {
    let exe = std::env::current_exe().map_err(|e| VenusBenchError::Io("current exe".into(), e))?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "venus-workload", name]);
    if let Some((socket, icd)) = venus {
        cmd.env("VN_DEBUG", "vtest")
            .env("VTEST_SOCKET_NAME", socket)
            .env("VK_DRIVER_FILES", icd);
    }
    let side = if venus.is_some() { "venus" } else { "native" };
    let fail = |detail: String| VenusBenchError::Workload {
        workload: name.into(),
        side: side.into(),
        detail,
    };
    let out = cmd.output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("RESULT ")?.trim().parse().ok())
        .ok_or_else(|| {
            fail(format!(
                "{}{}",
                stdout,
                String::from_utf8_lossy(&out.stderr)
            ))
        })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ncnn (PyPI) on a compute-bound convolution net: ms per inference, or None where
/// scripts/setup.sh has not installed it.
fn run_ncnn(venus: Option<(&Path, &Path)>) -> Result<Option<f64>, VenusBenchError> {
    let root = repo_root();
    let python = root.join(".cache/pyvenv/bin/python");
    if !python.is_file() {
        return Ok(None);
    }
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/clients/ncnn_nets.py"))
        .args(["--bench", "20"]);
    if let Some((socket, icd)) = venus {
        cmd.env("VN_DEBUG", "vtest")
            .env("VTEST_SOCKET_NAME", socket)
            .env("VK_DRIVER_FILES", icd);
    }
    let side = if venus.is_some() { "venus" } else { "native" };
    let fail = |detail: String| VenusBenchError::Workload {
        workload: "ncnn".into(),
        side: side.into(),
        detail,
    };
    let out = cmd.output().map_err(|e| fail(e.to_string()))?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str::<serde_json::Value>(stdout.trim())
        .ok()
        .and_then(|v| v["ms_per_inference"].as_f64())
        .map(Some)
        .ok_or_else(|| fail(format!("{stdout}{}", String::from_utf8_lossy(&out.stderr))))
}

/// Any id is an object: the decoder benchmark measures decoding, not lookups failing.
struct AnyObject;

impl Lookup for AnyObject {
    fn lookup(&self, id: u64, _objtype: i32) -> Option<u64> {
        Some(id)
    }
}

/// Decodes the recorded ring streams again and again for about a second: (commands/s, MB/s).
fn decoder_rate(record: &Path) -> Option<(f64, f64, usize)> {
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(record).ok()?.flatten() {
        bytes.extend(std::fs::read(entry.path()).ok()?);
    }
    if bytes.is_empty() {
        return None;
    }
    let mut arena = Arena::default();
    let (mut commands, mut total, mut reply) = (0usize, 0usize, Encoder::default());
    let t = Instant::now();
    while t.elapsed() < Duration::from_secs(1) {
        let mut c = Cursor::new(&bytes);
        while c.has_command() {
            if decode_only(&mut c, &mut arena, &AnyObject, &mut reply).is_err() {
                break;
            }
            commands += 1;
        }
        total += c.position();
        reply = Encoder::default();
    }
    let secs = t.elapsed().as_secs_f64();
    Some((
        commands as f64 / secs,
        total as f64 / secs / 1e6,
        bytes.len(),
    ))
}

pub fn run(args: VenusBenchArgs) -> Result<(), VenusBenchError> {
    let icd = args.icd.unwrap_or_else(default_icd);
    if !icd.is_file() {
        return Err(VenusBenchError::NoIcd(icd));
    }
    let record = std::env::temp_dir().join(format!("vgpu-bench-venus-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&record);
    std::fs::create_dir_all(&record).map_err(|e| VenusBenchError::Io("record dir".into(), e))?;
    let server = start_server(&record)?;
    let venus = Some((server.socket.as_path(), icd.as_path()));

    tracing::info!("bench venus: memcpy baseline");
    let memcpy = run_workload("memcpy", None)?;
    let mut rows = Vec::new();
    for (name, unit, higher_better, goal) in [
        ("compute", "ms", false, 0.9),
        ("roundtrip", "submits/s", true, 0.5),
        ("write", "GB/s", true, 0.8),
        ("read", "GB/s", true, 0.8),
    ] {
        tracing::info!("bench venus: {name}");
        // Three runs a side, alternated, and the medians: one run of a round-trip loop on a
        // 2-CPU virtual machine varies by 1.5x.
        let (mut natives, mut throughs) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            natives.push(run_workload(name, None)?);
            throughs.push(run_workload(name, venus)?);
        }
        let (native, through) = (median(natives), median(throughs));
        // Buffers are measured against memcpy, the others against native Vulkan.
        let base = if matches!(name, "write" | "read") {
            memcpy
        } else {
            native
        };
        let ratio = if higher_better {
            through / base
        } else {
            base / through
        };
        rows.push((name, unit, native, through, base, ratio, goal));
    }
    tracing::info!("bench venus: ncnn");
    let ncnn = match (run_ncnn(None)?, run_ncnn(venus)?) {
        (Some(native), Some(through)) => Some((native, through)),
        _ => None,
    };
    drop(server);

    println!("venus: Mesa's venus driver -> vgpu vtest -> our renderer -> host Vulkan, against the host driver");
    println!(
        "{:<22} {:>14} {:>14} {:>14} {:>9} {:>6}",
        "workload", "native", "venus", "baseline", "ratio", "goal"
    );
    for (name, unit, native, through, base, ratio, goal) in &rows {
        let base_name = if matches!(*name, "write" | "read") {
            "memcpy"
        } else {
            "native"
        };
        println!(
            "{:<22} {:>14} {:>14} {:>14} {:>8.2}x {:>5}x",
            format!("{name} ({unit})"),
            format!("{native:.2}"),
            format!("{through:.2}"),
            format!("{base:.2} {base_name}"),
            ratio,
            goal
        );
    }
    match ncnn {
        Some((native, through)) => println!(
            "{:<22} {:>14} {:>14} {:>14} {:>8.2}x {:>5}x",
            "ncnn conv net (ms)",
            format!("{native:.2}"),
            format!("{through:.2}"),
            format!("{native:.2} native"),
            native / through,
            0.9
        ),
        None => println!("ncnn conv net: skipped (.cache/pyvenv missing: run scripts/setup.sh)"),
    }
    match decoder_rate(&record) {
        Some((cmds, mbs, size)) => println!(
            "decoder: {cmds:.0} commands/s, {mbs:.0} MB/s over the {size} bytes the venus runs recorded"
        ),
        None => println!("decoder: no recorded stream"),
    }
    println!("virglrenderer: not measured here yet (trixie's vtest server is not set up by scripts/setup.sh)");
    let _ = std::fs::remove_dir_all(&record);
    Ok(())
}
