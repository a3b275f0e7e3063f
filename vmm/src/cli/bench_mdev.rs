//! `vgpu bench mdev`: time to create and to remove N mediated devices, with `vgpu mdev` and with
//! mdevctl, as their users run them (one command per instance), alternating rounds on the same
//! parent and type. Needs a host (or guest) with an mdev parent: `scripts/bench-slices.sh` runs
//! it on Linux's mbochs sample in a TCG guest.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use clap::Args;

#[derive(Debug, Args)]
pub struct MdevBenchArgs {
    #[arg(long)]
    pub parent: String,
    #[arg(long = "type")]
    pub mdev_type: String,
    /// Instances made and removed per round.
    #[arg(long, default_value_t = 16)]
    pub count: u32,
    /// Rounds per tool (the median is reported).
    #[arg(long, default_value_t = 3)]
    pub rounds: u32,
    #[arg(long, default_value = "mdevctl")]
    pub mdevctl: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum MdevBenchError {
    #[error("{tool} {verb}: {reason}")]
    Command {
        tool: String,
        verb: &'static str,
        reason: String,
    },
}

/// The same UUIDs every round (ours and mdevctl's devices never coexist).
fn uuid(i: u32) -> String {
    format!("6a5e0b1c-0000-4000-8000-{i:012x}")
}

fn run_one(
    tool: &Path,
    prefix: &[&str],
    verb: &'static str,
    args: &[&str],
) -> Result<(), MdevBenchError> {
    let out = Command::new(tool)
        .args(prefix)
        .arg(verb)
        .args(args)
        .output()
        .map_err(|e| MdevBenchError::Command {
            tool: tool.display().to_string(),
            verb,
            reason: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(MdevBenchError::Command {
            tool: tool.display().to_string(),
            verb,
            reason: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(())
}

/// One round: `count` starts then `count` stops; the time of each half.
fn round(
    args: &MdevBenchArgs,
    tool: &Path,
    prefix: &[&str],
) -> Result<(Duration, Duration), MdevBenchError> {
    let t = Instant::now();
    for i in 0..args.count {
        let u = uuid(i);
        let start = ["-p", &args.parent, "-t", &args.mdev_type, "-u", &u];
        run_one(tool, prefix, "start", &start)?;
    }
    let create = t.elapsed();
    let t = Instant::now();
    for i in 0..args.count {
        run_one(tool, prefix, "stop", &["-u", &uuid(i)])?;
    }
    Ok((create, t.elapsed()))
}

pub fn run(args: MdevBenchArgs) -> Result<(), MdevBenchError> {
    let exe = std::env::current_exe().map_err(|e| MdevBenchError::Command {
        tool: "vgpu".into(),
        verb: "start",
        reason: e.to_string(),
    })?;
    let tools: [(&str, &Path, &[&str]); 2] = [
        ("vgpu mdev", &exe, &["mdev"]),
        ("mdevctl", &args.mdevctl, &[]),
    ];
    let mut times = vec![(Vec::new(), Vec::new()); tools.len()];
    for r in 0..args.rounds {
        for (k, (name, tool, prefix)) in tools.iter().enumerate() {
            eprintln!("bench mdev: {name} round {}/{}", r + 1, args.rounds);
            let (create, remove) = round(&args, tool, prefix)?;
            times[k].0.push(create);
            times[k].1.push(remove);
        }
    }
    let median = |v: &mut Vec<Duration>| {
        v.sort();
        v[v.len() / 2].as_secs_f64() * 1e3
    };
    println!(
        "bench mdev: {} instances of {} on {}, median of {} rounds",
        args.count, args.mdev_type, args.parent, args.rounds
    );
    println!("{:<10} {:>12} {:>12}", "tool", "create ms", "remove ms");
    let mut rows = Vec::new();
    for ((name, ..), (create, remove)) in tools.iter().zip(times.iter_mut()) {
        let (c, r) = (median(create), median(remove));
        println!("{name:<10} {c:>12.1} {r:>12.1}");
        rows.push((c, r));
    }
    println!(
        "vgpu mdev / mdevctl time: create {:.2}x, remove {:.2}x (lower is faster)",
        rows[0].0 / rows[1].0,
        rows[0].1 / rows[1].1
    );
    Ok(())
}
