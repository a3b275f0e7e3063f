//! The fairness benchmark: named scenarios, each run under each policy, summarised as rows.

use serde::Serialize;

use crate::clock::{Nanos, MS};
use crate::executor::sim::{self, SimConfig, SimError};
use crate::executor::vulkan::{VulkanError, VulkanExecutor};
use crate::executor::TenantPlan;
use crate::metrics::{summarize, RunTrace, Summary};
use crate::params::Params;
use crate::policy::PolicyKind;
use crate::tenant::TenantSpec;
use crate::workload::{Arrival, JobLength, Workload};

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error("unknown scenario {0:?} (try one of: {1})")]
    UnknownScenario(String, String),
    #[error("simulation: {0}")]
    Sim(#[from] SimError),
    #[error("Vulkan executor: {0}")]
    Vulkan(#[from] VulkanError),
}

/// A named set of tenants with the parameters they run under.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub name: String,
    pub about: &'static str,
    pub tenants: Vec<TenantPlan>,
    pub params: Params,
}

/// The JSON the CLI prints with `--json`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub scenarios: Vec<Summary>,
    /// Why nothing ran (the Vulkan executor could not start).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub skipped: Option<String>,
}

fn same(n: usize, weight: u32, workload: Workload) -> Vec<TenantPlan> {
    (0..n)
        .map(|i| TenantPlan::new(TenantSpec::new(format!("t{i}")).weight(weight), workload))
        .collect()
}

fn scenario(name: &str, about: &'static str, tenants: Vec<TenantPlan>) -> Scenario {
    // Fixed-share reserves 1/max_instances; the scenario's tenant count is the instance limit.
    let params = Params {
        max_instances: tenants.len() as u32,
        ..Params::default()
    };
    Scenario {
        name: name.to_owned(),
        about,
        tenants,
        params,
    }
}

/// Every scenario, in table order.
pub fn scenarios() -> Vec<Scenario> {
    let short = Workload::saturating(MS / 2, 3 * MS);
    let heavy = Workload {
        arrival: Arrival::Poisson { mean_gap: 10 * MS },
        length: JobLength::Fixed(2_500_000),
    };
    let mut v = vec![
        scenario(
            "equal-8",
            "8 identical saturating tenants",
            same(8, 1, short),
        ),
        scenario(
            "weighted-30-70",
            "2 saturating tenants, weights 3:7",
            vec![
                TenantPlan::new(TenantSpec::new("w3").weight(3), short),
                TenantPlan::new(TenantSpec::new("w7").weight(7), short),
            ],
        ),
        scenario(
            "weighted-10-90",
            "2 saturating tenants, weights 1:9",
            vec![
                TenantPlan::new(TenantSpec::new("w1").weight(1), short),
                TenantPlan::new(TenantSpec::new("w9").weight(9), short),
            ],
        ),
        scenario(
            "heavy-interactive",
            "3 tenants of 2.5 ms jobs at 75% load together vs 1 ms job + 9 ms sleep",
            {
                let mut t = same(3, 1, heavy);
                t.push(TenantPlan::new(
                    TenantSpec::new("ui").interactive(),
                    Workload::interactive(),
                ));
                t
            },
        ),
        scenario(
            "bursty",
            "2 training, 2 on/off bursty, 1 frame-paced graphics tenant",
            vec![
                TenantPlan::new(TenantSpec::new("train0"), Workload::training()),
                TenantPlan::new(TenantSpec::new("train1"), Workload::training()),
                TenantPlan::new(TenantSpec::new("burst0"), Workload::bursty()),
                TenantPlan::new(TenantSpec::new("infer0"), Workload::inference()),
                TenantPlan::new(TenantSpec::new("gfx"), Workload::graphics()),
            ],
        ),
        scenario(
            "adversarial",
            "3 tenants of short jobs vs one of 40 ms kernels",
            {
                let mut t = same(3, 1, Workload::saturating(MS / 2, 2 * MS));
                t.push(TenantPlan::new(
                    TenantSpec::new("adversary"),
                    Workload::adversarial(),
                ));
                t
            },
        ),
        scenario(
            "join-leave",
            "2 tenants stay; 2 join at 1.5 s and 3 s and leave at 4.5 s and 6 s",
            {
                let w = Workload::saturating(MS / 2, 2 * MS);
                let mut t = same(2, 1, w);
                t.push(
                    TenantPlan::new(TenantSpec::new("j2"), w).during(1500 * MS, Some(4500 * MS)),
                );
                t.push(
                    TenantPlan::new(TenantSpec::new("j3"), w).during(3000 * MS, Some(6000 * MS)),
                );
                t
            },
        ),
        scenario(
            "lone-tenant",
            "1 saturating training tenant",
            same(1, 1, Workload::training()),
        ),
        scenario(
            "runaway",
            "3 tenants of short jobs vs one of 150 ms kernels, past the 100 ms watchdog",
            {
                let mut t = same(3, 1, Workload::saturating(MS / 2, 2 * MS));
                t.push(TenantPlan::new(
                    TenantSpec::new("runaway"),
                    Workload {
                        arrival: Arrival::Saturating { depth: 2 },
                        length: JobLength::Fixed(150 * MS),
                    },
                ));
                t
            },
        ),
    ];
    for n in [2, 4, 8, 16, 64] {
        v.push(scenario(
            &format!("scale-{n}"),
            "N identical saturating tenants",
            same(n, 1, short),
        ));
    }
    v
}

pub fn find(name: &str) -> Result<Scenario, BenchError> {
    let all = scenarios();
    let names = all
        .iter()
        .map(|s| s.name.clone())
        .collect::<Vec<_>>()
        .join(", ");
    all.into_iter()
        .find(|s| s.name == name)
        .ok_or_else(|| BenchError::UnknownScenario(name.to_owned(), names))
}

/// Runs one scenario under one policy in simulated time.
pub fn run_sim(
    scenario: &Scenario,
    policy: PolicyKind,
    duration: Nanos,
) -> Result<(Summary, RunTrace), BenchError> {
    let cfg = SimConfig {
        duration,
        ..SimConfig::default()
    };
    let trace = sim::run(&scenario.params, policy, &scenario.tenants, &cfg)?;
    Ok((summarize(&scenario.name, "sim", &trace), trace))
}

/// The rows as a fixed-width table.
pub fn table(rows: &[Summary]) -> String {
    let mut out = format!(
        "{:<18} {:<12} {:>4} {:>7} {:>9} {:>9} {:>6} {:>8} {:>8} {:>9} {:>3}\n",
        "scenario",
        "policy",
        "n",
        "jain",
        "share_err",
        "p99_wait",
        "util",
        "overhead",
        "pick_ns",
        "recovery",
        "wd"
    );
    for r in rows {
        let recovery = match r.recovery_ms {
            None => "-".to_owned(),
            Some(ms) if ms > 1000.0 => ">1000ms".to_owned(),
            Some(ms) => format!("{ms:.0}ms"),
        };
        out += &format!(
            "{:<18} {:<12} {:>4} {:>7.4} {:>8.1}% {:>7.2}ms {:>5.1}% {:>7.2}% {:>8.0} {:>9} {:>3}\n",
            r.scenario,
            r.policy,
            r.tenants,
            r.jain,
            100.0 * r.max_share_error,
            r.p99_wait_ms,
            100.0 * r.utilization,
            100.0 * r.overhead,
            r.pick_ns,
            recovery,
            r.watchdog_events,
        );
    }
    out
}

/// Runs one scenario under one policy on host Vulkan, in real time.
pub fn run_vulkan(
    exec: &mut VulkanExecutor,
    scenario: &Scenario,
    policy: PolicyKind,
    duration: Nanos,
) -> Result<(Summary, RunTrace), BenchError> {
    let trace = exec.run(&scenario.params, policy, &scenario.tenants, duration, 1)?;
    Ok((summarize(&scenario.name, "vulkan", &trace), trace))
}
