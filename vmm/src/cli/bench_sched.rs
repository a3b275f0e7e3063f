//! `vgpu bench sched`: the GPU context scheduler's fairness benchmark. Each scenario runs
//! under each policy, in simulated time or on host Vulkan, and prints one row per run (or one
//! JSON object `{"scenarios": [...]}`); `--plot DIR` writes share-over-time plots.

use std::path::PathBuf;

use scheduler::bench::{self, Report, Scenario};
use scheduler::executor::vulkan::VulkanExecutor;
use scheduler::params::ParamsError;
use scheduler::plot::{self, PlotError};
use scheduler::policy::UnknownPolicy;
use scheduler::{Nanos, PolicyKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Executor {
    /// Discrete-event simulation in simulated time.
    Sim,
    /// Compute dispatches on the host's Vulkan device, in real time.
    Vulkan,
}

#[derive(Debug, clap::Args)]
pub struct SchedArgs {
    #[arg(long, value_enum, default_value_t = Executor::Sim)]
    pub executor: Executor,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
    /// Write share-over-time plots (SVG and PNG) for every run into this directory.
    #[arg(long, value_name = "DIR")]
    pub plot: Option<PathBuf>,
    /// Run only this scenario (default: all).
    #[arg(long)]
    pub scenario: Option<String>,
    /// Run only this policy (default: all).
    #[arg(long)]
    pub policy: Option<String>,
    /// Seconds per run (default: 10 simulated, 2 on Vulkan).
    #[arg(long)]
    pub duration: Option<f64>,
    /// Scheduling frequency in Hz (63-960); sets the time slice (default slice: 2 ms).
    #[arg(long)]
    pub frequency: Option<u64>,
    /// Averaging factor (1-60, default 33).
    #[arg(long)]
    pub averaging_factor: Option<u32>,
}

#[derive(Debug, thiserror::Error)]
pub enum SchedBenchError {
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Policy(#[from] UnknownPolicy),
    #[error("invalid scheduler parameters: {0}")]
    Params(#[from] ParamsError),
    #[error("--duration must be a positive number of seconds, at least 1 (shares are measured over 1 s windows)")]
    Duration,
    #[error(transparent)]
    Plot(#[from] PlotError),
    #[error("encoding JSON: {0}")]
    Json(#[from] serde_json::Error),
}

pub fn run(args: SchedArgs) -> Result<(), SchedBenchError> {
    let mut scenarios: Vec<Scenario> = match &args.scenario {
        Some(name) => vec![bench::find(name)?],
        None => bench::scenarios(),
    };
    for s in &mut scenarios {
        if let Some(hz) = args.frequency {
            s.params = s.params.clone().with_frequency(hz)?;
        }
        if let Some(af) = args.averaging_factor {
            s.params.averaging_factor = af;
        }
        s.params.validate()?;
    }
    let policies = match &args.policy {
        Some(p) => vec![p.parse::<PolicyKind>()?],
        None => PolicyKind::ALL.to_vec(),
    };
    let seconds = args.duration.unwrap_or(match args.executor {
        Executor::Sim => 10.0,
        Executor::Vulkan => 2.0,
    });
    if !(seconds >= 1.0 && seconds.is_finite()) {
        return Err(SchedBenchError::Duration);
    }
    let duration = (seconds * 1e9) as Nanos;

    let mut vulkan = match args.executor {
        Executor::Sim => None,
        Executor::Vulkan => match VulkanExecutor::new() {
            Ok(exec) => {
                eprintln!(
                    "Vulkan executor on {} ({:.0} ns per loop step)",
                    exec.device_name(),
                    exec.calibration().ns_per_iteration
                );
                Some(exec)
            }
            Err(e) => {
                println!("skipped the Vulkan executor: {e}");
                return Ok(());
            }
        },
    };

    let total = scenarios.len() * policies.len();
    let mut rows = Vec::with_capacity(total);
    for s in &scenarios {
        for &p in &policies {
            tracing::info!(scenario = %s.name, policy = %p, "run {}/{total}", rows.len() + 1);
            let (summary, trace) = match vulkan.as_mut() {
                None => bench::run_sim(s, p, duration)?,
                Some(exec) => bench::run_vulkan(exec, s, p, duration)?,
            };
            if let Some(dir) = &args.plot {
                let stem = format!("{}-{}-{}", summary.executor, s.name, p);
                let title = format!("{} / {} ({})", s.name, p, summary.executor);
                for path in plot::write(dir, &stem, &title, &trace)? {
                    tracing::debug!(path = %path.display(), "plot written");
                }
            }
            rows.push(summary);
        }
    }
    if args.json {
        println!("{}", serde_json::to_string(&Report { scenarios: rows })?);
    } else {
        print!("{}", bench::table(&rows));
        if cfg!(debug_assertions) {
            println!("note: pick_ns comes from a debug build; build with --release for figures to compare");
        }
        if let Some(dir) = &args.plot {
            println!("plots: {}", dir.display());
        }
    }
    Ok(())
}
