//! The targets, checked on the simulated executor. These are behaviour checks in
//! simulated time: they do not depend on how fast the machine is. (pick_ns, a speed figure,
//! is measured by `vgpu bench sched`, not asserted here.)

use scheduler::bench::{find, run_sim, Scenario};
use scheduler::executor::sim::{self, SimConfig};
use scheduler::executor::TenantPlan;
use scheduler::metrics::{summarize, ShareSeries, Summary, TICK};
use scheduler::workload::Workload;
use scheduler::{Nanos, Params, PolicyKind, TenantSpec, MS};

const SECONDS: Nanos = 1000 * MS;

fn run(name: &str, policy: PolicyKind, duration: Nanos) -> Summary {
    let s = find(name).unwrap();
    let (summary, _) = run_sim(&s, policy, duration).unwrap();
    eprintln!("{name} {policy}: {summary:?}");
    summary
}

#[test]
fn equal_8_is_fair_under_share_policies() {
    for p in [
        PolicyKind::EqualShare,
        PolicyKind::Weighted,
        PolicyKind::Fair,
    ] {
        let s = run("equal-8", p, 4 * SECONDS);
        assert!(s.jain >= 0.99, "{p}: jain {}", s.jain);
    }
}

#[test]
fn weighted_scenarios_stay_within_5_percent() {
    for name in ["weighted-30-70", "weighted-10-90"] {
        for p in [PolicyKind::Weighted, PolicyKind::Fair] {
            let s = run(name, p, 4 * SECONDS);
            assert!(
                s.max_share_error <= 0.05,
                "{name} {p}: {}",
                s.max_share_error
            );
            assert!(s.jain >= 0.99, "{name} {p}: jain {}", s.jain);
        }
    }
    // A policy that ignores weights misses them, and the metric says so.
    let s = run("weighted-10-90", PolicyKind::EqualShare, 2 * SECONDS);
    assert!(s.max_share_error > 1.0, "{}", s.max_share_error);
}

#[test]
fn best_effort_lone_tenant_gets_the_device() {
    let s = run("lone-tenant", PolicyKind::BestEffort, 3 * SECONDS);
    assert!(s.utilization >= 0.95, "utilization {}", s.utilization);
}

#[test]
fn fixed_share_never_exceeds_share_plus_one_slice_per_period() {
    // 3 tenants on a device cut for 4: each may have 2 ms per 8 ms period, plus at most one
    // slice of overrun (their jobs are at most one slice long).
    let params = Params {
        max_instances: 4,
        ..Params::default()
    };
    let tenants: Vec<_> = (0..3)
        .map(|i| {
            TenantPlan::new(
                TenantSpec::new(format!("t{i}")),
                Workload::saturating(MS / 4, 2 * MS),
            )
        })
        .collect();
    let cfg = SimConfig {
        duration: 2 * SECONDS,
        ..SimConfig::default()
    };
    let trace = sim::run(&params, PolicyKind::FixedShare, &tenants, &cfg).unwrap();
    let period = params.slice * 4;
    let periods = (cfg.duration / period) as usize;
    let mut used = vec![vec![0u64; periods + 1]; 3];
    for j in &trace.jobs {
        let mut t = j.start;
        while t < j.end {
            let k = (t / period) as usize;
            let next = ((k as u64 + 1) * period).min(j.end);
            used[j.tenant][k] += next - t;
            t = next;
        }
    }
    for (i, per) in used.iter().enumerate() {
        let worst = per.iter().max().unwrap();
        assert!(
            *worst <= 2 * params.slice,
            "tenant {i} used {worst} ns in one period"
        );
    }
    // Not work-conserving: a quarter of the device stays idle.
    let s = summarize("fixed", "sim", &trace);
    assert!(
        s.utilization < 0.77 && s.utilization > 0.70,
        "utilization {}",
        s.utilization
    );
}

#[test]
fn interactive_wait_is_bounded_under_the_deadline_policy() {
    let s = run("heavy-interactive", PolicyKind::Deadline, 4 * SECONDS);
    let slice = Params::default().slice as f64 / MS as f64;
    let bound = (s.tenants as f64 - 1.0) * slice + slice;
    assert!(
        s.p99_wait_ms <= bound,
        "p99 {} ms > {bound} ms",
        s.p99_wait_ms
    );
    // ...and the latency class is what does it: plain fair scheduling waits longer.
    let fair = run("heavy-interactive", PolicyKind::Fair, 4 * SECONDS);
    assert!(s.p99_wait_ms < fair.p99_wait_ms);
}

#[test]
fn join_and_leave_recover_within_100_ms() {
    for p in [
        PolicyKind::EqualShare,
        PolicyKind::Weighted,
        PolicyKind::Fair,
        PolicyKind::BestEffort,
    ] {
        let s = run("join-leave", p, 7 * SECONDS);
        let r = s.recovery_ms.expect("the scenario has joins and leaves");
        assert!(r <= 100.0, "{p}: recovery {r} ms");
    }
}

#[test]
fn overhead_is_at_most_2_percent() {
    for p in PolicyKind::ALL {
        let s = run("equal-8", p, 2 * SECONDS);
        assert!(s.overhead <= 0.02, "{p}: overhead {}", s.overhead);
        assert!(s.overhead > 0.0, "{p}: switches must cost something");
    }
}

#[test]
fn long_kernels_buy_no_extra_time_under_compensating_policies() {
    for p in [
        PolicyKind::EqualShare,
        PolicyKind::Fair,
        PolicyKind::Weighted,
    ] {
        let s = run("adversarial", p, 4 * SECONDS);
        assert!(s.jain >= 0.99, "{p}: jain {}", s.jain);
    }
    let s = run("adversarial", PolicyKind::BestEffort, 2 * SECONDS);
    assert!(
        s.jain < 0.6,
        "best-effort should let the adversary win: {}",
        s.jain
    );
}

#[test]
fn policy_switch_at_run_time_changes_shares() {
    let s: Scenario = find("weighted-10-90").unwrap();
    let cfg = SimConfig {
        duration: 4 * SECONDS,
        policy_switches: vec![(2 * SECONDS, PolicyKind::Weighted)],
        ..SimConfig::default()
    };
    let trace = sim::run(&s.params, PolicyKind::BestEffort, &s.tenants, &cfg).unwrap();
    let series = ShareSeries::new(&trace);
    let per_s = (SECONDS / TICK) as usize;
    let share = |w: Vec<(f64, f64)>| w[0].0 / (w[0].0 + w[1].0);
    let before = share(series.window(0, 2 * per_s));
    let after = share(series.window(2 * per_s + 10, 4 * per_s));
    assert!((before - 0.5).abs() < 0.05, "before {before}");
    assert!((after - 0.1).abs() < 0.01, "after {after}");
}

#[test]
fn runs_are_deterministic() {
    let s = find("bursty").unwrap();
    let a = run_sim(&s, PolicyKind::Fair, SECONDS).unwrap().1;
    let b = run_sim(&s, PolicyKind::Fair, SECONDS).unwrap().1;
    assert_eq!(a.jobs, b.jobs);
    assert!(!a.jobs.is_empty());
}

#[test]
fn watchdog_reports_runaway_kernels_and_penalises_their_tenant() {
    let s = find("runaway").unwrap();
    let (summary, trace) = run_sim(&s, PolicyKind::Fair, 6 * SECONDS).unwrap();
    let runaway_jobs = trace.jobs.iter().filter(|j| j.tenant == 3).count();
    assert!(summary.watchdog_events > 0);
    assert_eq!(
        summary.watchdog_events, runaway_jobs,
        "every 150 ms job is reported"
    );
    // Charged 150 + 50 ms per job, the runaway tenant gets 3/4 of its quarter.
    let used = |i: usize| {
        trace
            .jobs
            .iter()
            .filter(|j| j.tenant == i)
            .map(|j| j.useful)
            .sum::<Nanos>() as f64
    };
    let share = used(3) / (0..4).map(used).sum::<f64>();
    assert!((share - 0.2).abs() < 0.03, "runaway share {share}");
}
