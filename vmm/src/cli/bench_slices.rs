//! `vgpu bench slices`: the scheduler's fairness scenarios with real tenants. Each tenant is a
//! process running compute dispatches through Mesa's venus driver on a slice of a slice server
//! in this process; the scheduler's record of every job gives the same figures as `bench
//! sched`. Each scenario also runs with the scheduler out of the way (plain contention on the
//! host driver), and one tenant runs alone gated and ungated for the overhead against the
//! exclusive device.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use clap::Args;
use scheduler::{
    bench,
    metrics::{summarize, RunTrace, Summary, TenantTrace},
    plot, Nanos, PolicyKind, TenantSpec, MS,
};
use serde::Serialize;

use crate::slices::{config::SliceConfig, SliceServer, SlicesConfig};

#[derive(Debug, Args)]
pub struct SlicesBenchArgs {
    /// Seconds each scenario runs, the first of them warm-up.
    #[arg(long, default_value_t = 6.0)]
    pub seconds: f64,
    /// Only this scenario.
    #[arg(long)]
    pub scenario: Option<String>,
    /// Run every scenario under this policy instead of its own.
    #[arg(long)]
    pub policy: Option<PolicyKind>,
    /// Print the report as JSON.
    #[arg(long)]
    pub json: bool,
    /// Share-over-time plots (SVG and PNG) go here.
    #[arg(long, default_value = "target/bench-slices")]
    pub plot: PathBuf,
}

#[derive(Debug, thiserror::Error)]
pub enum SlicesBenchError {
    #[error("{0} missing: run scripts/setup.sh (Mesa's venus driver drives the tenants)")]
    NoIcd(PathBuf),
    #[error("unknown scenario {0:?}")]
    UnknownScenario(String),
    #[error("slice server: {0}")]
    Serve(#[from] crate::slices::ServeError),
    #[error("tenant {0}: {1}")]
    Tenant(String, String),
    #[error(transparent)]
    Plot(#[from] scheduler::plot::PlotError),
}

/// What a tenant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    /// `bench venus-workload tenant`: compute dispatches one after another.
    Compute,
    /// ncnn (PyPI) inferring a compute-bound net again and again: CPU work between its
    /// submissions, so it is not always backlogged.
    Ncnn,
}

/// One tenant of a scenario.
#[derive(Debug, Clone)]
struct Tenant {
    program: Program,
    name: &'static str,
    weight: u32,
    interactive: bool,
    job_ms: f64,
    think_ms: f64,
    /// When it joins and leaves, as fractions of the run.
    span: (f64, f64),
}

impl Tenant {
    fn saturating(&self) -> bool {
        self.program == Program::Compute && self.think_ms == 0.0
    }
}

const fn batch(name: &'static str, weight: u32, job_ms: f64) -> Tenant {
    Tenant {
        program: Program::Compute,
        name,
        weight,
        interactive: false,
        job_ms,
        think_ms: 0.0,
        span: (0.0, 1.0),
    }
}

struct Scenario {
    name: &'static str,
    /// The policies it runs under, one row each.
    policies: &'static [PolicyKind],
    tenants: Vec<Tenant>,
}

fn scenarios() -> Vec<Scenario> {
    // bench sched's: 1 ms jobs 9 ms apart, beside heavy tenants of 2.5 ms jobs (here
    // saturating, where the simulation's arrive at 75% load together).
    let interactive = Tenant {
        interactive: true,
        job_ms: 1.0,
        think_ms: 9.0,
        ..batch("ui", 1, 1.0)
    };
    let ncnn = Tenant {
        program: Program::Ncnn,
        ..batch("ncnn", 1, 0.0)
    };
    let joiner = Tenant {
        span: (0.33, 0.67),
        ..batch("late", 1, 4.0)
    };
    vec![
        Scenario {
            name: "equal-3",
            policies: &[PolicyKind::Fair, PolicyKind::EqualShare],
            tenants: vec![
                batch("t0", 1, 4.0),
                batch("t1", 1, 4.0),
                batch("t2", 1, 4.0),
            ],
        },
        Scenario {
            name: "weighted-30-70",
            policies: &[PolicyKind::Fair, PolicyKind::Weighted],
            tenants: vec![batch("w3", 3, 4.0), batch("w7", 7, 4.0)],
        },
        Scenario {
            name: "weighted-10-90",
            policies: &[PolicyKind::Fair, PolicyKind::Weighted],
            tenants: vec![batch("w1", 1, 4.0), batch("w9", 9, 4.0)],
        },
        Scenario {
            name: "heavy-interactive",
            policies: &[PolicyKind::Deadline],
            tenants: vec![
                batch("h0", 1, 2.5),
                batch("h1", 1, 2.5),
                batch("h2", 1, 2.5),
                interactive,
            ],
        },
        Scenario {
            name: "join-leave",
            policies: &[PolicyKind::Fair],
            tenants: vec![batch("t0", 1, 4.0), batch("t1", 1, 4.0), joiner],
        },
        Scenario {
            name: "ncnn-compute",
            policies: &[PolicyKind::Fair],
            tenants: vec![ncnn, batch("compute", 1, 4.0)],
        },
        Scenario {
            name: "adversarial",
            policies: &[PolicyKind::Fair],
            tenants: vec![batch("long", 1, 25.0), batch("short", 1, 2.0)],
        },
    ]
}

/// A scenario's row: the scheduler's figures, and the shares without it.
#[derive(Debug, Serialize)]
struct Row {
    #[serde(flatten)]
    summary: Summary,
    /// Plain contention on the host driver, no scheduler: Jain index of share/target and the
    /// worst relative share error, over the whole run.
    no_scheduler_jain: Option<f64>,
    no_scheduler_max_share_error: Option<f64>,
}

#[derive(Debug, Serialize)]
struct Report {
    device: String,
    scenarios: Vec<Row>,
    /// 1 - (jobs/s of one tenant alone, gated) / (jobs/s alone, ungated): the median of
    /// `PAIRS` alternating pairs.
    exclusive_overhead: f64,
    /// (gated, ungated) jobs/s of each pair.
    exclusive_pairs: Vec<(f64, f64)>,
}

fn icd() -> Result<PathBuf, SlicesBenchError> {
    let path = std::env::var_os("VGPU_VENUS_ICD")
        .map(PathBuf::from)
        .unwrap_or_else(super::bench_venus::default_icd);
    path.is_file()
        .then_some(path.clone())
        .ok_or(SlicesBenchError::NoIcd(path))
}

/// Alternating gated/ungated runs of one tenant alone, for the overhead.
const PAIRS: usize = 5;

/// The first second of every run is not measured.
const WARMUP: Nanos = 1000 * MS;

/// What every run shares: the driver, and the dispatch size per millisecond of device time
/// (measured once, so that a job is the same work in every run).
struct Bench {
    icd: PathBuf,
    groups_per_ms: f64,
}

struct Run {
    /// Jobs per second each tenant reported.
    rates: Vec<f64>,
    /// The workgroups of each tenant's jobs.
    groups: Vec<u32>,
    trace: RunTrace,
}

/// Serves the scenario's tenants one slice each (gated or not) and runs them for `seconds`.
fn run_scenario(
    s: &Scenario,
    policy: PolicyKind,
    seconds: f64,
    gated: bool,
    bench: &Bench,
) -> Result<Run, SlicesBenchError> {
    let icd = &bench.icd;
    let dir = std::env::temp_dir().join(format!("vgpu-bench-slices-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let mut params = scheduler::Params {
        max_instances: s.tenants.len() as u32,
        ..scheduler::Params::default()
    };
    params.anticipation = 2 * MS;
    let config = SlicesConfig {
        policy,
        params,
        control: dir.join("control.sock"),
        slices: s
            .tenants
            .iter()
            .map(|t| {
                let mut spec = TenantSpec::new(t.name).weight(t.weight);
                if t.interactive {
                    spec = spec.interactive();
                }
                SliceConfig {
                    spec,
                    memory: 1 << 30,
                    socket: dir.join(format!("{}.sock", t.name)),
                    vhost_user: None,
                }
            })
            .collect(),
        types: Vec::new(),
    };
    let server = SliceServer::start(&config, venus::DeviceSelector::All, gated)?;
    let t0 = server.live().now();
    let started = Instant::now();
    let exe = std::env::current_exe()
        .map_err(|e| SlicesBenchError::Tenant("exe".into(), e.to_string()))?;
    let mut pending: Vec<(usize, f64)> = s
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| (i, t.span.0 * seconds))
        .collect();
    let mut children: Vec<Option<Child>> = (0..s.tenants.len()).map(|_| None).collect();
    while !pending.is_empty() {
        let now = started.elapsed().as_secs_f64();
        pending.retain(|&(i, at)| {
            if at > now {
                return true;
            }
            let t = &s.tenants[i];
            let mut cmd = match t.program {
                Program::Compute => {
                    let mut c = Command::new(&exe);
                    c.args(["bench", "venus-workload", "tenant"])
                        .env("VGPU_TENANT_JOB_MS", t.job_ms.to_string())
                        .env(
                            "VGPU_TENANT_GROUPS",
                            // 0: the tenant sizes its job itself (calibration).
                            ((t.job_ms * bench.groups_per_ms).round() as u32).to_string(),
                        )
                        .env("VGPU_TENANT_THINK_MS", t.think_ms.to_string())
                        .env(
                            "VGPU_TENANT_SECONDS",
                            ((t.span.1 - t.span.0) * seconds).to_string(),
                        );
                    c
                }
                Program::Ncnn => {
                    let root = super::bench_venus::repo_root();
                    let mut c = Command::new(root.join(".cache/pyvenv/bin/python"));
                    c.arg(root.join("tests/clients/ncnn_nets.py"))
                        .args(["--bench", "1", "--seconds"])
                        .arg(((t.span.1 - t.span.0) * seconds).to_string());
                    c
                }
            };
            let child = cmd
                .env("VN_DEBUG", "vtest")
                .env("VTEST_SOCKET_NAME", &config.slices[i].socket)
                .env("VK_DRIVER_FILES", icd)
                .env_remove("VK_ICD_FILENAMES")
                .stdout(Stdio::piped())
                .stderr(Stdio::null())
                .spawn();
            children[i] = child.ok();
            false
        });
        std::thread::sleep(Duration::from_millis(10));
    }
    let (mut rates, mut groups) = (Vec::new(), Vec::new());
    for (i, c) in children.into_iter().enumerate() {
        let name = s.tenants[i].name.to_string();
        let c = c.ok_or_else(|| SlicesBenchError::Tenant(name.clone(), "did not start".into()))?;
        let out = c
            .wait_with_output()
            .map_err(|e| SlicesBenchError::Tenant(name.clone(), e.to_string()))?;
        let text = String::from_utf8_lossy(&out.stdout);
        let value = |key: &str| -> Option<f64> {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.trim().parse().ok())
        };
        let ncnn = || -> Option<f64> {
            let v: serde_json::Value = serde_json::from_str(text.trim()).ok()?;
            Some(1000.0 / v["ms_per_inference"].as_f64()?)
        };
        let measured = match s.tenants[i].program {
            Program::Compute => value("RESULT ").zip(value("GROUPS ")),
            Program::Ncnn => ncnn().map(|rate| (rate, 0.0)),
        };
        let Some((rate, size)) = measured else {
            return Err(SlicesBenchError::Tenant(name, format!("no result: {text}")));
        };
        rates.push(rate);
        groups.push(size as u32);
    }
    // The measured run starts after the warm-up (process start, Vulkan and pipeline set-up,
    // first submissions): its jobs are left out, and time counts from its end.
    let t0 = t0 + WARMUP;
    let duration = server.live().now().saturating_sub(t0);
    let recording = server.live().recording();
    drop(server);
    let _ = std::fs::remove_dir_all(&dir);
    let shift = |t: Nanos| t.saturating_sub(t0);
    let jobs: Vec<_> = recording
        .jobs
        .into_iter()
        .filter(|j| j.submitted >= t0)
        .map(|mut j| {
            j.submitted = shift(j.submitted);
            j.dispatched = shift(j.dispatched);
            j.start = shift(j.start);
            j.end = shift(j.end);
            j
        })
        .collect();
    let tenants = s
        .tenants
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let mine: Vec<_> = jobs.iter().filter(|j| j.tenant == i).collect();
            let first = mine.iter().map(|j| j.submitted).min().unwrap_or(0);
            let last = mine.iter().map(|j| j.end).max().unwrap_or(0);
            TenantTrace {
                name: t.name.into(),
                weight: t.weight,
                interactive: t.interactive,
                joined: if t.span.0 > 0.0 { first } else { 0 },
                left: (t.span.1 < 1.0).then_some(last),
                // Closed-loop compute tenants would use the whole device while they run;
                // the others are entitled to what they submitted.
                saturated: if t.saturating() {
                    vec![(first, last)]
                } else {
                    Vec::new()
                },
                submissions: if t.saturating() {
                    Vec::new()
                } else {
                    mine.iter().map(|j| (j.submitted, j.useful)).collect()
                },
            }
        })
        .collect();
    let trace = RunTrace {
        policy,
        duration,
        tenants,
        jobs,
        pick_ns: recording.pick_ns,
        switches: recording.switches,
        watchdog_events: recording.watchdog_events,
    };
    Ok(Run {
        rates,
        groups,
        trace,
    })
}

/// Shares without the scheduler: each tenant's jobs/s times its exclusive job length (from the
/// gated run, where jobs ran one at a time), against weight-proportional targets.
fn contention_shares(s: &Scenario, gated: &Run, plain: &Run) -> Option<(f64, f64)> {
    if s.tenants
        .iter()
        .any(|t| !t.saturating() || t.span != (0.0, 1.0))
    {
        return None;
    }
    let work: Vec<f64> = (0..s.tenants.len())
        .map(|i| {
            let mine: Vec<_> = gated.trace.jobs.iter().filter(|j| j.tenant == i).collect();
            let len = mine.iter().map(|j| j.useful as f64).sum::<f64>() / mine.len().max(1) as f64;
            plain.rates[i] * len
        })
        .collect();
    let total: f64 = work.iter().sum();
    let weights: f64 = s.tenants.iter().map(|t| f64::from(t.weight)).sum();
    let ratios: Vec<f64> = s
        .tenants
        .iter()
        .zip(&work)
        .map(|(t, w)| (w / total) / (f64::from(t.weight) / weights))
        .collect();
    let err = ratios.iter().map(|r| (r - 1.0).abs()).fold(0.0, f64::max);
    Some((scheduler::metrics::jain(&ratios), err))
}

/// A tenant alone on an ungated slice sizes its 4 ms job (the median of three): the bench's
/// dispatch size.
fn calibrate(icd: PathBuf) -> Result<Bench, SlicesBenchError> {
    let probe = Scenario {
        name: "calibrate",
        policies: &[PolicyKind::Fair],
        tenants: vec![batch("probe", 1, 4.0)],
    };
    let sizing = Bench {
        icd,
        groups_per_ms: 0.0,
    };
    let mut groups = Vec::new();
    for _ in 0..3 {
        groups.push(run_scenario(&probe, PolicyKind::Fair, 0.2, false, &sizing)?.groups[0]);
    }
    groups.sort_unstable();
    Ok(Bench {
        groups_per_ms: f64::from(groups[1]) / probe.tenants[0].job_ms,
        ..sizing
    })
}

pub fn run(args: SlicesBenchArgs) -> Result<(), SlicesBenchError> {
    let bench = calibrate(icd()?)?;
    let all = scenarios();
    let chosen: Vec<&Scenario> = match &args.scenario {
        Some(name) => vec![all
            .iter()
            .find(|s| s.name == name)
            .ok_or_else(|| SlicesBenchError::UnknownScenario(name.clone()))?],
        None => all.iter().collect(),
    };
    let mut rows = Vec::new();
    for s in chosen {
        let policies = match &args.policy {
            Some(p) => vec![*p],
            None => s.policies.to_vec(),
        };
        // Without the scheduler the policy plays no part: one run serves every row.
        tracing::info!(scenario = s.name, "bench slices: without the scheduler");
        let plain = run_scenario(s, PolicyKind::Fair, args.seconds, false, &bench)?;
        for policy in policies {
            tracing::info!(scenario = s.name, %policy, "bench slices: with the scheduler");
            let gated = run_scenario(s, policy, args.seconds, true, &bench)?;
            let summary = summarize(s.name, "venus", &gated.trace);
            let title = format!("{} ({policy}, real venus tenants)", s.name);
            plot::write(
                &args.plot,
                &format!("{}-{policy}", s.name),
                &title,
                &gated.trace,
            )?;
            let contention = contention_shares(s, &gated, &plain);
            rows.push(Row {
                summary,
                no_scheduler_jain: contention.map(|c| c.0),
                no_scheduler_max_share_error: contention.map(|c| c.1),
            });
        }
    }
    let alone = Scenario {
        name: "alone",
        policies: &[PolicyKind::Fair],
        tenants: vec![batch("alone", 1, 4.0)],
    };
    // Alternating pairs: the host's speed drifts more between runs than the gate costs.
    let mut pairs = Vec::new();
    for _ in 0..PAIRS {
        let gated = run_scenario(&alone, PolicyKind::Fair, args.seconds, true, &bench)?;
        let plain = run_scenario(&alone, PolicyKind::Fair, args.seconds, false, &bench)?;
        pairs.push((gated.rates[0], plain.rates[0]));
    }
    let mut ratios: Vec<f64> = pairs.iter().map(|(g, p)| g / p).collect();
    ratios.sort_by(f64::total_cmp);
    let report = Report {
        device: "lavapipe through venus (vtest)".into(),
        exclusive_overhead: 1.0 - ratios[PAIRS / 2],
        exclusive_pairs: pairs,
        scenarios: rows,
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).expect("serializes"));
        return Ok(());
    }
    let summaries: Vec<Summary> = report.scenarios.iter().map(|r| r.summary.clone()).collect();
    print!("{}", bench::table(&summaries));
    println!("\nwithout the scheduler (plain contention on the host driver):");
    for r in &report.scenarios {
        match (r.no_scheduler_jain, r.no_scheduler_max_share_error) {
            (Some(j), Some(e)) => println!(
                "  {:<18} jain {j:.3}  max share error {:.1}%",
                r.summary.scenario,
                e * 100.0
            ),
            _ => println!(
                "  {:<18} (not closed-loop saturating: no reference share)",
                r.summary.scenario
            ),
        }
    }
    let pairs: Vec<String> = report
        .exclusive_pairs
        .iter()
        .map(|(g, p)| format!("{g:.0}/{p:.0}"))
        .collect();
    println!(
        "one tenant alone, gated against ungated: overhead {:.2}% (median of jobs/s pairs {})",
        report.exclusive_overhead * 100.0,
        pairs.join(", ")
    );
    println!("plots: {}", args.plot.display());
    Ok(())
}
