//! `vgpu bench pio`: the cost of one port-I/O exit under `vgpu run --raw` against the
//! seed-style minimal C VMM (guests/micro/minivmm.c), on the same guest in the same run.
//!
//! Each VMM runs the pio-bench micro-guest with 0 and with N `out` instructions; the per-exit
//! cost is the difference of the median wall times divided by N, which cancels process and VM
//! start-up. Runs of the two VMMs are interleaved so drift affects both alike.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[derive(Debug, clap::Args)]
pub struct PioArgs {
    /// Port writes per measured run.
    #[arg(long, default_value_t = 200_000)]
    pub iterations: u32,
    /// Runs per VMM and iteration count (the median is used).
    #[arg(long, default_value_t = 7)]
    pub runs: usize,
    /// The pio-bench guest image (built by guests/micro/build.sh).
    #[arg(long, default_value = "guests/out/pio-bench.bin")]
    pub guest: PathBuf,
    /// The baseline minimal VMM (built by guests/micro/build.sh).
    #[arg(long, default_value = "guests/out/minivmm")]
    pub minivmm: PathBuf,
    /// The `vgpu` binary to measure (default: this one).
    #[arg(long)]
    pub vgpu: Option<PathBuf>,
}

/// Why the benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum PioBenchError {
    #[error("cannot read {path} (run guests/micro/build.sh first)")]
    Missing {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is too small to be the pio-bench guest")]
    BadGuest { path: PathBuf },
    #[error("writing a patched guest image failed")]
    Write(#[source] std::io::Error),
    #[error("cannot start {cmd}")]
    Spawn {
        cmd: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{cmd} failed ({status}) or printed {stdout:?} instead of \"ok\\n\": {stderr}")]
    Failed {
        cmd: String,
        status: String,
        stdout: String,
        stderr: String,
    },
    #[error("--runs and --iterations must be at least 1")]
    BadArgs,
}

fn patched_guest(template: &[u8], iterations: u32, dir: &Path) -> Result<PathBuf, PioBenchError> {
    let mut image = template.to_vec();
    let n = image.len();
    image[n - 4..].copy_from_slice(&iterations.to_le_bytes());
    let path = dir.join(format!("pio-bench-{iterations}.bin"));
    std::fs::write(&path, image).map_err(PioBenchError::Write)?;
    Ok(path)
}

/// Runs `program args... image` once and returns its wall time.
fn time_run(program: &Path, args: &[&str], image: &Path) -> Result<Duration, PioBenchError> {
    let cmd = format!(
        "{} {} {}",
        program.display(),
        args.join(" "),
        image.display()
    );
    let start = Instant::now();
    let out = Command::new(program)
        .args(args)
        .arg(image)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| PioBenchError::Spawn {
            cmd: cmd.clone(),
            source,
        })?;
    let elapsed = start.elapsed();
    if !out.status.success() || out.stdout != b"ok\n" {
        return Err(PioBenchError::Failed {
            cmd,
            status: out.status.to_string(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        });
    }
    Ok(elapsed)
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// One VMM's figures.
struct Row {
    name: &'static str,
    startup: Duration,
    loaded: Duration,
    per_exit_ns: f64,
}

pub fn run(args: PioArgs) -> Result<(), PioBenchError> {
    if args.runs == 0 || args.iterations == 0 {
        return Err(PioBenchError::BadArgs);
    }
    let template = std::fs::read(&args.guest).map_err(|source| PioBenchError::Missing {
        path: args.guest.clone(),
        source,
    })?;
    if template.len() < 8 {
        return Err(PioBenchError::BadGuest { path: args.guest });
    }
    if !args.minivmm.exists() {
        return Err(PioBenchError::Missing {
            path: args.minivmm.clone(),
            source: std::io::ErrorKind::NotFound.into(),
        });
    }
    let vgpu = match args.vgpu {
        Some(p) => p,
        None => std::env::current_exe().map_err(|source| PioBenchError::Spawn {
            cmd: "vgpu (current executable)".into(),
            source,
        })?,
    };
    let dir = std::env::temp_dir().join(format!("vgpu-bench-pio-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(PioBenchError::Write)?;
    let empty = patched_guest(&template, 0, &dir)?;
    let loaded = patched_guest(&template, args.iterations, &dir)?;

    let vmms: [(&'static str, &Path, &[&str]); 2] = [
        ("minivmm (C, seed-style)", &args.minivmm, &[]),
        ("vgpu run --raw", &vgpu, &["run", "--raw"]),
    ];
    let mut times: Vec<(Vec<Duration>, Vec<Duration>)> = vec![Default::default(); vmms.len()];
    let result = (|| {
        for run in 0..args.runs {
            tracing::info!("run {}/{}", run + 1, args.runs);
            for (i, (_, program, vmm_args)) in vmms.iter().enumerate() {
                times[i].0.push(time_run(program, vmm_args, &empty)?);
                times[i].1.push(time_run(program, vmm_args, &loaded)?);
            }
        }
        Ok(())
    })();
    let _ = std::fs::remove_dir_all(&dir);
    result?;

    let rows: Vec<Row> = vmms
        .iter()
        .zip(times)
        .map(|((name, _, _), (empty, loaded))| {
            let (startup, loaded) = (median(empty), median(loaded));
            let per_exit_ns =
                loaded.saturating_sub(startup).as_nanos() as f64 / f64::from(args.iterations);
            Row {
                name,
                startup,
                loaded,
                per_exit_ns,
            }
        })
        .collect();
    let baseline = rows[0].per_exit_ns;
    println!(
        "port-I/O exits: {} per run, median of {} runs, same guest (guests/micro/hello/pio-bench.S)",
        args.iterations, args.runs
    );
    println!(
        "{:<26} {:>12} {:>14} {:>14} {:>8}",
        "VMM", "start (ms)", "with I/O (ms)", "per exit (us)", "ratio"
    );
    for row in &rows {
        println!(
            "{:<26} {:>12.2} {:>14.2} {:>14.3} {:>7.3}x",
            row.name,
            row.startup.as_secs_f64() * 1e3,
            row.loaded.as_secs_f64() * 1e3,
            row.per_exit_ns / 1e3,
            row.per_exit_ns / baseline
        );
    }
    Ok(())
}
