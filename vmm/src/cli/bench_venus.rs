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
pub(super) fn repo_root() -> PathBuf {
    let exe = std::env::current_exe().unwrap_or_default();
    exe.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// Mesa's venus ICD as scripts/setup.sh extracts it.
pub(super) fn default_icd() -> PathBuf {
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

/// Where a workload's Vulkan goes: the host driver, or venus to a vtest server.
#[derive(Clone, Copy)]
enum Side<'a> {
    Native,
    Venus { socket: &'a Path, icd: &'a Path },
}

impl Side<'_> {
    fn name(&self) -> &'static str {
        match self {
            Side::Native => "native",
            Side::Venus { .. } => "venus",
        }
    }

    fn apply(&self, cmd: &mut Command) {
        if let Side::Venus { socket, icd } = self {
            cmd.env("VN_DEBUG", "vtest")
                .env("VTEST_SOCKET_NAME", socket)
                .env("VK_DRIVER_FILES", icd);
        }
    }
}

/// Runs `cmd` to its end or for `limit`, whichever comes first: its stdout, or None when it was
/// still running (and is killed).
fn output_within(mut cmd: Command, limit: Duration) -> std::io::Result<Option<String>> {
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn()?;
    let deadline = Instant::now() + limit;
    loop {
        if child.try_wait()?.is_some() {
            let mut out = String::new();
            if let Some(mut o) = child.stdout.take() {
                use std::io::Read;
                o.read_to_string(&mut out)?;
            }
            return Ok(Some(out));
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs one measuring program on `side`: the figure `parse` finds in its output, or None if it
/// ran past `limit` (virglrenderer hangs at the first host-visible mapping on lavapipe).
fn measure(
    mut cmd: Command,
    workload: &str,
    side: Side,
    limit: Duration,
    parse: impl Fn(&str) -> Option<f64>,
) -> Result<Option<f64>, VenusBenchError> {
    side.apply(&mut cmd);
    let fail = |detail: String| VenusBenchError::Workload {
        workload: workload.into(),
        side: side.name().into(),
        detail,
    };
    let Some(stdout) = output_within(cmd, limit).map_err(|e| fail(e.to_string()))? else {
        return Ok(None);
    };
    parse(&stdout).map(Some).ok_or_else(|| fail(stdout))
}

/// One `bench venus-workload` run: its RESULT.
fn run_workload(name: &str, side: Side, limit: Duration) -> Result<Option<f64>, VenusBenchError> {
    let exe = std::env::current_exe().map_err(|e| VenusBenchError::Io("current exe".into(), e))?;
    let mut cmd = Command::new(exe);
    cmd.args(["bench", "venus-workload", name]);
    measure(cmd, name, side, limit, |out| {
        out.lines()
            .find_map(|l| l.strip_prefix("RESULT ")?.trim().parse().ok())
    })
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// ncnn (PyPI) on a compute-bound convolution net: ms per inference; None where it ran past
/// `limit` or scripts/setup.sh has not installed it.
fn run_ncnn(side: Side, limit: Duration) -> Result<Option<f64>, VenusBenchError> {
    let root = repo_root();
    let python = root.join(".cache/pyvenv/bin/python");
    if !python.is_file() {
        return Ok(None);
    }
    let mut cmd = Command::new(python);
    cmd.arg(root.join("tests/clients/ncnn_nets.py"))
        .args(["--bench", "20"]);
    measure(cmd, "ncnn", side, limit, |out| {
        serde_json::from_str::<serde_json::Value>(out.trim()).ok()?["ms_per_inference"].as_f64()
    })
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

/// Debian trixie's virglrenderer vtest server, as scripts/setup.sh extracts it (never installed:
/// it needs trixie's glibc, which runs from the extracted tree).
fn start_virgl() -> Option<Server> {
    let script = repo_root().join(".cache/virgl-trixie/virgl-server.sh");
    if !script.is_file() {
        return None;
    }
    let socket = std::env::temp_dir().join(format!("vgpu-bench-virgl-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&socket);
    let child = Command::new(script)
        .arg("--socket-path")
        .arg(&socket)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::os::unix::net::UnixStream::connect(&socket).is_err() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(Server { child, socket })
}

struct Row {
    label: String,
    native: f64,
    venus: f64,
    /// The baseline's value and name (native Vulkan, or memcpy for buffer rows).
    base: (f64, &'static str),
    higher_better: bool,
    goal: f64,
    /// virglrenderer on the same workload: None = not set up, Some(None) = did not finish.
    virgl: Option<Option<f64>>,
}

impl Row {
    fn ratio(&self, ours: f64, other: f64) -> f64 {
        if self.higher_better {
            ours / other
        } else {
            other / ours
        }
    }
}

const RUN_LIMIT: Duration = Duration::from_secs(120);
/// virglrenderer gets this long per workload before it counts as hung.
const VIRGL_LIMIT: Duration = Duration::from_secs(15);

pub fn run(args: VenusBenchArgs) -> Result<(), VenusBenchError> {
    let icd = args.icd.unwrap_or_else(default_icd);
    if !icd.is_file() {
        return Err(VenusBenchError::NoIcd(icd));
    }
    let record = std::env::temp_dir().join(format!("vgpu-bench-venus-rec-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&record);
    std::fs::create_dir_all(&record).map_err(|e| VenusBenchError::Io("record dir".into(), e))?;
    let server = start_server(&record)?;
    let venus = Side::Venus {
        socket: &server.socket,
        icd: &icd,
    };
    let virgl_server = start_virgl();
    let virgl = virgl_server.as_ref().map(|v| Side::Venus {
        socket: &v.socket,
        icd: &icd,
    });
    let timed_out = |what: &str| VenusBenchError::Workload {
        workload: what.into(),
        side: "native or venus".into(),
        detail: format!("ran past {RUN_LIMIT:?}"),
    };

    tracing::info!("bench venus: memcpy baseline");
    let memcpy =
        run_workload("memcpy", Side::Native, RUN_LIMIT)?.ok_or_else(|| timed_out("memcpy"))?;
    let mut rows = Vec::new();
    // Once virglrenderer hangs (its first host-visible mapping), the rows after it are not tried.
    let mut virgl_hung = false;
    for (name, unit, higher_better, goal) in [
        ("init", "ms", false, 0.0),
        ("compute", "ms", false, 0.9),
        ("roundtrip", "submits/s", true, 0.5),
        ("write", "GB/s", true, 0.8),
        ("read", "GB/s", true, 0.8),
    ] {
        tracing::info!("bench venus: {name}");
        // Three runs a side, alternated, and the medians: one run of a round-trip loop on a
        // 2-CPU virtual machine varies by 1.5x.
        let (mut natives, mut ours) = (Vec::new(), Vec::new());
        for _ in 0..3 {
            natives
                .push(run_workload(name, Side::Native, RUN_LIMIT)?.ok_or_else(|| timed_out(name))?);
            ours.push(run_workload(name, venus, RUN_LIMIT)?.ok_or_else(|| timed_out(name))?);
        }
        let native = median(natives);
        let virgl = match virgl {
            Some(side) if !virgl_hung => {
                let v = run_workload(name, side, VIRGL_LIMIT)?;
                virgl_hung = v.is_none();
                Some(v)
            }
            Some(_) => Some(None),
            None => None,
        };
        rows.push(Row {
            label: format!("{name} ({unit})"),
            native,
            venus: median(ours),
            base: if matches!(name, "write" | "read") {
                (memcpy, "memcpy")
            } else {
                (native, "native")
            },
            higher_better,
            goal,
            virgl,
        });
    }
    tracing::info!("bench venus: ncnn");
    if let (Some(native), Some(ours)) = (
        run_ncnn(Side::Native, RUN_LIMIT)?,
        run_ncnn(venus, RUN_LIMIT)?,
    ) {
        let virgl = match virgl {
            Some(side) if !virgl_hung => Some(run_ncnn(side, VIRGL_LIMIT)?),
            Some(_) => Some(None),
            None => None,
        };
        rows.push(Row {
            label: "ncnn conv net (ms)".into(),
            native,
            venus: ours,
            base: (native, "native"),
            higher_better: false,
            goal: 0.9,
            virgl,
        });
    } else {
        println!("ncnn conv net: skipped (.cache/pyvenv missing: run scripts/setup.sh)");
    }
    let with_virgl = virgl.is_some();
    drop(server);
    drop(virgl_server);
    print_table(&rows, with_virgl);
    match decoder_rate(&record) {
        Some((cmds, mbs, size)) => println!(
            "decoder: {cmds:.0} commands/s, {mbs:.0} MB/s over the {size} bytes the venus runs recorded"
        ),
        None => println!("decoder: no recorded stream"),
    }
    let _ = std::fs::remove_dir_all(&record);
    Ok(())
}

fn print_table(rows: &[Row], with_virgl: bool) {
    println!("venus: Mesa's venus driver -> vgpu vtest -> our renderer -> host Vulkan, against the host driver");
    println!(
        "{:<22} {:>12} {:>12} {:>18} {:>7} {:>5} {:>12} {:>9}",
        "workload", "native", "venus", "baseline", "ratio", "goal", "virgl", "vs virgl"
    );
    for r in rows {
        let (virgl, vs) = match r.virgl {
            Some(Some(v)) => (format!("{v:.2}"), format!("{:.2}x", r.ratio(r.venus, v))),
            Some(None) => ("hangs".to_string(), "-".to_string()),
            None => ("-".to_string(), "-".to_string()),
        };
        let goal = if r.goal > 0.0 {
            format!("{}x", r.goal)
        } else {
            "-".into()
        };
        println!(
            "{:<22} {:>12.2} {:>12.2} {:>18} {:>6.2}x {:>5} {:>12} {:>9}",
            r.label,
            r.native,
            r.venus,
            format!("{:.2} {}", r.base.0, r.base.1),
            r.ratio(r.venus, r.base.0),
            goal,
            virgl,
            vs
        );
    }
    if !with_virgl {
        println!("virglrenderer: not set up (scripts/setup.sh extracts Debian trixie's into .cache/virgl-trixie)");
    } else if rows.iter().any(|r| r.virgl == Some(None)) {
        println!("virglrenderer 1.1 (trixie) hangs at its first host-visible mapping on lavapipe (blob export of an opaque fd fails); later rows not tried");
    }
}
