//! `vgpu bench sched`: the GPU context scheduler's fairness benchmark. Each scenario runs
//! under each policy, in simulated time or on host Vulkan, and prints one row per run (or one
//! JSON object `{"scenarios": [...]}`); `--plot DIR` writes share-over-time plots.

use std::path::PathBuf;

use scheduler::bench::{self, Report, Scenario};
use scheduler::executor::sim::SimConfig;
use scheduler::executor::vulkan::VulkanExecutor;
use scheduler::metrics::Summary;
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

/// What a benchmark invocation produced.
#[derive(Debug)]
pub enum Outcome {
    Rows(Vec<Summary>),
    /// The Vulkan executor could not start, and why.
    Skipped(String),
}

pub fn run(args: SchedArgs) -> Result<(), SchedBenchError> {
    let outcome = collect(&args)?;
    let (rows, skipped) = match outcome {
        Outcome::Rows(rows) => (rows, None),
        Outcome::Skipped(why) => (Vec::new(), Some(why)),
    };
    if args.json {
        let report = Report {
            scenarios: rows,
            skipped,
        };
        println!("{}", serde_json::to_string(&report)?);
        return Ok(());
    }
    if let Some(why) = skipped {
        println!("skipped the Vulkan executor: {why}");
        return Ok(());
    }
    print!("{}", bench::table(&rows));
    let params = scheduler::Params::default();
    let slice_ms = match args.frequency {
        Some(hz) => 1000.0 / hz as f64,
        None => params.slice as f64 / 1e6,
    };
    println!(
        "slice {slice_ms:.2} ms, averaging factor {}, balance period {} ms{}",
        args.averaging_factor.unwrap_or(params.averaging_factor),
        params.balance_period / 1_000_000,
        match args.executor {
            Executor::Sim => format!(
                ", simulated context switch {} us",
                SimConfig::default().switch_cost / 1000
            ),
            Executor::Vulkan => String::new(),
        }
    );
    if cfg!(debug_assertions) {
        println!(
            "note: pick_ns comes from a debug build; build with --release for figures to compare"
        );
    }
    if let Some(dir) = &args.plot {
        println!("plots: {}", dir.display());
    }
    Ok(())
}

/// Runs the selected scenarios and policies (writing plots if asked).
pub fn collect(args: &SchedArgs) -> Result<Outcome, SchedBenchError> {
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
            Err(e) => return Ok(Outcome::Skipped(e.to_string())),
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
    Ok(Outcome::Rows(rows))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(scenario: &str, policy: &str) -> SchedArgs {
        SchedArgs {
            executor: Executor::Sim,
            json: true,
            plot: None,
            scenario: Some(scenario.to_owned()),
            policy: Some(policy.to_owned()),
            duration: Some(1.0),
            frequency: None,
            averaging_factor: None,
        }
    }

    #[test]
    fn one_row_per_scenario_and_policy_with_the_issue_fields() {
        let Outcome::Rows(rows) = collect(&args("lone-tenant", "best-effort")).unwrap() else {
            panic!("the simulated executor never skips")
        };
        assert_eq!(rows.len(), 1);
        assert!(rows[0].utilization >= 0.95);
        let json = serde_json::to_value(Report {
            scenarios: rows,
            skipped: None,
        })
        .unwrap();
        let row = &json["scenarios"][0];
        for field in [
            "scenario",
            "policy",
            "tenants",
            "jain",
            "max_share_error",
            "p99_wait_ms",
            "utilization",
            "overhead",
            "pick_ns",
        ] {
            assert!(!row[field].is_null(), "missing {field}");
        }
        assert!(json.get("skipped").is_none());
    }

    #[test]
    fn bad_arguments_are_errors() {
        assert!(matches!(
            collect(&args("nope", "fair")),
            Err(SchedBenchError::Bench(_))
        ));
        assert!(matches!(
            collect(&args("lone-tenant", "nope")),
            Err(SchedBenchError::Policy(_))
        ));
        let mut a = args("lone-tenant", "fair");
        a.frequency = Some(10_000);
        assert!(matches!(collect(&a), Err(SchedBenchError::Params(_))));
        a.frequency = None;
        a.duration = Some(0.5);
        assert!(matches!(collect(&a), Err(SchedBenchError::Duration)));
    }
}
