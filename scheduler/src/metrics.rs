//! Fairness and efficiency figures computed from a run's trace.
//!
//! Entitlement is the weighted max-min fair share (water-filling) of the device among the
//! tenants present, every 10 ms tick: a saturating tenant may take the whole tick, an
//! open-loop tenant only what it has submitted and not yet been entitled to (a fluid reference
//! queue). Weights are the scenario's, whichever policy ran, so a policy that ignores weights
//! shows it. What is shared each tick is the useful time the device delivered in it, so the
//! cost of context switches (and time a non-work-conserving policy leaves idle) shows as
//! overhead and utilization, not as share error.

use serde::Serialize;

use crate::clock::{Nanos, MS};
use crate::policy::PolicyKind;

/// Resolution of the entitlement reference.
pub const TICK: Nanos = 10 * MS;
/// Share error is measured over windows of this length.
pub const WINDOW: Nanos = 1000 * MS;
/// Recovery after a join or leave is measured over windows of this length...
pub const RECOVERY_WINDOW: Nanos = 500 * MS;
/// ...starting up to this long after the event.
pub const RECOVERY_LIMIT: Nanos = 1000 * MS;
/// Share error counted as recovered.
pub const RECOVERED_ERROR: f64 = 0.05;

/// One job as it ran.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct JobRecord {
    pub tenant: usize,
    pub submitted: Nanos,
    /// The scheduler gave the device to this job (a context switch may follow).
    pub dispatched: Nanos,
    /// The job's own work began.
    pub start: Nanos,
    pub end: Nanos,
    /// Device time doing the job's work.
    pub useful: Nanos,
}

#[derive(Debug, Clone, PartialEq)]
pub struct TenantTrace {
    pub name: String,
    pub weight: u32,
    pub interactive: bool,
    pub joined: Nanos,
    pub left: Option<Nanos>,
    /// Intervals in which it would have used the whole device.
    pub saturated: Vec<(Nanos, Nanos)>,
    /// (time, device time) of each job submitted, for tenants that are never saturated.
    pub submissions: Vec<(Nanos, Nanos)>,
}

/// Everything an executor records about one run.
#[derive(Debug, Clone)]
pub struct RunTrace {
    pub policy: PolicyKind,
    pub duration: Nanos,
    pub tenants: Vec<TenantTrace>,
    pub jobs: Vec<JobRecord>,
    /// Wall-clock time of each scheduling decision.
    pub pick_ns: Vec<u32>,
    pub switches: u64,
    pub watchdog_events: usize,
}

/// One row of the benchmark table.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Summary {
    pub scenario: String,
    pub policy: String,
    pub executor: String,
    pub tenants: usize,
    pub jain: f64,
    pub max_share_error: f64,
    pub p99_wait_ms: f64,
    pub utilization: f64,
    pub overhead: f64,
    /// Median wall-clock cost of one scheduling decision (the median, because on a shared
    /// machine a few decisions are interrupted by preemption).
    pub pick_ns: f64,
    /// Worst time after a join or leave until share error (over 500 ms) is back under 5%.
    /// None: no join or leave with enough run left after it to tell; above 1000: it did not
    /// recover within 1 s.
    pub recovery_ms: Option<f64>,
    pub watchdog_events: usize,
}

/// Per-tenant achieved and entitled device time per tick.
pub struct ShareSeries {
    pub ticks: usize,
    pub achieved: Vec<Vec<f64>>,
    pub entitled: Vec<Vec<f64>>,
}

impl ShareSeries {
    pub fn new(trace: &RunTrace) -> Self {
        let ticks = trace.duration.div_ceil(TICK) as usize;
        let n = trace.tenants.len();
        let mut achieved = vec![vec![0.0; ticks]; n];
        for j in &trace.jobs {
            spread(&mut achieved[j.tenant], j.start, j.end, j.useful as f64);
        }
        let entitled = entitlement(trace, &achieved, ticks);
        Self {
            ticks,
            achieved,
            entitled,
        }
    }

    /// (achieved, entitled) device time per tenant over ticks `[from, to)`.
    pub fn window(&self, from: usize, to: usize) -> Vec<(f64, f64)> {
        (0..self.achieved.len())
            .map(|i| {
                (
                    self.achieved[i][from..to].iter().sum(),
                    self.entitled[i][from..to].iter().sum(),
                )
            })
            .collect()
    }

    /// Worst relative share error in ticks `[from, to)`, over tenants entitled to at least
    /// 0.1% of it (a tenant present for a moment has no meaningful share).
    pub fn error(&self, from: usize, to: usize) -> f64 {
        let min = 0.001 * ((to - from) as u64 * TICK) as f64;
        self.window(from, to)
            .into_iter()
            .filter(|&(_, e)| e >= min)
            .map(|(a, e)| (a - e).abs() / e)
            .fold(0.0, f64::max)
    }
}

/// Spreads `amount` uniformly over [start, end) into per-tick buckets.
fn spread(buckets: &mut [f64], start: Nanos, end: Nanos, amount: f64) {
    if end <= start {
        if let Some(b) = buckets.get_mut((start / TICK) as usize) {
            *b += amount;
        }
        return;
    }
    let rate = amount / (end - start) as f64;
    let mut t = start;
    while t < end {
        let k = (t / TICK) as usize;
        let next = ((k as u64 + 1) * TICK).min(end);
        if let Some(b) = buckets.get_mut(k) {
            *b += rate * (next - t) as f64;
        }
        t = next;
    }
}

fn overlap(a: (Nanos, Nanos), b: (Nanos, Nanos)) -> Nanos {
    a.1.min(b.1).saturating_sub(a.0.max(b.0))
}

/// Weighted water-filling of `capacity` among demands.
pub fn water_fill(demand: &[f64], weight: &[f64], capacity: f64) -> Vec<f64> {
    let mut order: Vec<usize> = (0..demand.len()).filter(|&i| demand[i] > 0.0).collect();
    order.sort_by(|&a, &b| (demand[a] / weight[a]).total_cmp(&(demand[b] / weight[b])));
    let mut alloc = vec![0.0; demand.len()];
    let mut left = capacity;
    let mut w_left: f64 = order.iter().map(|&i| weight[i]).sum();
    for &i in &order {
        let fair = left * weight[i] / w_left;
        let give = demand[i].min(fair);
        alloc[i] = give;
        left -= give;
        w_left -= weight[i];
    }
    alloc
}

fn entitlement(trace: &RunTrace, achieved: &[Vec<f64>], ticks: usize) -> Vec<Vec<f64>> {
    let n = trace.tenants.len();
    let weight: Vec<f64> = trace.tenants.iter().map(|t| t.weight as f64).collect();
    let mut arrivals = vec![vec![0.0; ticks]; n];
    for (i, t) in trace.tenants.iter().enumerate() {
        for &(at, len) in &t.submissions {
            if let Some(b) = arrivals[i].get_mut((at / TICK) as usize) {
                *b += len as f64;
            }
        }
    }
    let mut backlog = vec![0.0; n];
    let mut out = vec![vec![0.0; ticks]; n];
    let mut demand = vec![0.0; n];
    for k in 0..ticks {
        let tick = (k as u64 * TICK, (k as u64 + 1) * TICK);
        for (i, t) in trace.tenants.iter().enumerate() {
            demand[i] = if t.saturated.is_empty() {
                backlog[i] += arrivals[i][k];
                f64::min(backlog[i], TICK as f64)
            } else {
                t.saturated.iter().map(|&s| overlap(s, tick)).sum::<Nanos>() as f64
            };
        }
        // The device's useful output this tick is what there was to share.
        let delivered: f64 = achieved.iter().map(|a| a[k]).sum();
        let alloc = water_fill(&demand, &weight, delivered.min(TICK as f64));
        for i in 0..n {
            out[i][k] = alloc[i];
            if trace.tenants[i].saturated.is_empty() {
                backlog[i] -= alloc[i];
            }
        }
    }
    out
}

fn percentile(mut xs: Vec<f64>, p: f64) -> f64 {
    if xs.is_empty() {
        return 0.0;
    }
    xs.sort_by(f64::total_cmp);
    let rank = ((p * xs.len() as f64).ceil() as usize).clamp(1, xs.len());
    xs[rank - 1]
}

/// Jain's fairness index of `xs`: 1 when all equal, 1/n when one takes everything.
pub fn jain(xs: &[f64]) -> f64 {
    let s: f64 = xs.iter().sum();
    let s2: f64 = xs.iter().map(|x| x * x).sum();
    if s2 == 0.0 {
        return 1.0;
    }
    s * s / (xs.len() as f64 * s2)
}

/// Time each job waited from becoming ready (submitted, and its tenant's previous job done)
/// until its work started.
pub fn waits(trace: &RunTrace) -> Vec<(usize, Nanos)> {
    let mut last_end = vec![0; trace.tenants.len()];
    let mut jobs: Vec<&JobRecord> = trace.jobs.iter().collect();
    jobs.sort_by_key(|j| j.start);
    jobs.iter()
        .map(|j| {
            let ready = j.submitted.max(last_end[j.tenant]);
            last_end[j.tenant] = j.end;
            (j.tenant, j.start.saturating_sub(ready))
        })
        .collect()
}

pub fn summarize(scenario: &str, executor: &str, trace: &RunTrace) -> Summary {
    let series = ShareSeries::new(trace);
    let per_window = (WINDOW / TICK) as usize;
    let windows = series.ticks / per_window;
    let mut max_err: f64 = 0.0;
    let n = trace.tenants.len();
    let (mut got, mut due) = (vec![0.0; n], vec![0.0; n]);
    for w in 0..windows {
        let (from, to) = (w * per_window, (w + 1) * per_window);
        max_err = max_err.max(series.error(from, to));
        for (i, (a, e)) in series.window(from, to).into_iter().enumerate() {
            got[i] += a;
            due[i] += e;
        }
    }
    let ratios: Vec<f64> = (0..n)
        .filter(|&i| due[i] > 0.0)
        .map(|i| got[i] / due[i])
        .collect();

    let any_interactive = trace.tenants.iter().any(|t| t.interactive);
    let wait_ms: Vec<f64> = waits(trace)
        .into_iter()
        .filter(|&(i, _)| !any_interactive || trace.tenants[i].interactive)
        .map(|(_, w)| w as f64 / MS as f64)
        .collect();

    let useful: Nanos = trace.jobs.iter().map(|j| j.useful).sum();
    let held: Nanos = trace.jobs.iter().map(|j| j.end - j.dispatched).sum();
    Summary {
        scenario: scenario.to_owned(),
        policy: trace.policy.name().to_owned(),
        executor: executor.to_owned(),
        tenants: n,
        jain: jain(&ratios),
        max_share_error: max_err,
        p99_wait_ms: percentile(wait_ms, 0.99),
        utilization: useful as f64 / trace.duration.max(1) as f64,
        overhead: if held > 0 {
            1.0 - useful as f64 / held as f64
        } else {
            0.0
        },
        pick_ns: percentile(trace.pick_ns.iter().map(|&n| f64::from(n)).collect(), 0.5),
        recovery_ms: recovery(trace, &series),
        watchdog_events: trace.watchdog_events,
    }
}

/// Worst recovery time over the run's joins and leaves (those after time 0).
fn recovery(trace: &RunTrace, series: &ShareSeries) -> Option<f64> {
    let mut events: Vec<Nanos> = trace
        .tenants
        .iter()
        .flat_map(|t| [Some(t.joined).filter(|&j| j > 0), t.left])
        .flatten()
        .filter(|&t| t + RECOVERY_WINDOW <= trace.duration)
        .collect();
    events.sort_unstable();
    events.dedup();
    let len = (RECOVERY_WINDOW / TICK) as usize;
    let limit = (RECOVERY_LIMIT / TICK) as usize;
    events
        .into_iter()
        .filter_map(|t| {
            let first = t.div_ceil(TICK) as usize;
            for d in 0..=limit {
                let from = first + d;
                if from + len > series.ticks {
                    // The run ends before we can tell: this event is not measured.
                    return None;
                }
                if series.error(from, from + len) <= RECOVERED_ERROR {
                    return Some((d as u64 * TICK) as f64 / MS as f64);
                }
            }
            Some((RECOVERY_LIMIT + TICK) as f64 / MS as f64)
        })
        .reduce(f64::max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jain_index_bounds() {
        assert!((jain(&[1.0, 1.0, 1.0]) - 1.0).abs() < 1e-12);
        assert!((jain(&[1.0, 0.0, 0.0, 0.0]) - 0.25).abs() < 1e-12);
    }

    #[test]
    fn water_fill_gives_leftovers_to_the_hungry() {
        let a = water_fill(&[1.0, 10.0, 10.0], &[1.0, 1.0, 3.0], 9.0);
        assert_eq!(a[0], 1.0);
        assert!(
            (a[1] - 2.0).abs() < 1e-9 && (a[2] - 6.0).abs() < 1e-9,
            "{a:?}"
        );
    }

    #[test]
    fn waits_start_at_readiness() {
        let trace = RunTrace {
            policy: PolicyKind::Fair,
            duration: 10 * MS,
            tenants: vec![TenantTrace {
                name: "a".into(),
                weight: 1,
                interactive: false,
                joined: 0,
                left: None,
                saturated: vec![(0, 10 * MS)],
                submissions: vec![],
            }],
            jobs: vec![
                JobRecord {
                    tenant: 0,
                    submitted: 0,
                    dispatched: MS,
                    start: MS,
                    end: 3 * MS,
                    useful: 2 * MS,
                },
                JobRecord {
                    tenant: 0,
                    submitted: 0,
                    dispatched: 4 * MS,
                    start: 4 * MS,
                    end: 5 * MS,
                    useful: MS,
                },
            ],
            pick_ns: vec![40, 60, 1000],
            switches: 1,
            watchdog_events: 0,
        };
        assert_eq!(waits(&trace), vec![(0, MS), (0, MS)]);
        let s = summarize("t", "sim", &trace);
        assert!((s.utilization - 0.3).abs() < 1e-9);
        assert_eq!(s.overhead, 0.0);
        assert_eq!(
            s.pick_ns, 60.0,
            "the median, not thrown off by one preempted decision"
        );
    }

    #[test]
    fn recovery_measures_how_long_a_newcomer_is_starved() {
        let tenant = |joined: Nanos| TenantTrace {
            name: "t".into(),
            weight: 1,
            interactive: false,
            joined,
            left: None,
            saturated: vec![(joined, 3000 * MS)],
            submissions: vec![],
        };
        // t0 has the device alone until 1.2 s although t1 joined at 1 s; then they alternate.
        let mut jobs = Vec::new();
        let mut t = 0;
        while t < 3000 * MS {
            let who = usize::from(t >= 1200 * MS && (t / MS) % 2 == 1);
            jobs.push(JobRecord {
                tenant: who,
                submitted: t,
                dispatched: t,
                start: t,
                end: t + MS,
                useful: MS,
            });
            t += MS;
        }
        let trace = RunTrace {
            policy: PolicyKind::Fair,
            duration: 3000 * MS,
            tenants: vec![tenant(0), tenant(1000 * MS)],
            jobs,
            pick_ns: vec![],
            switches: 0,
            watchdog_events: 0,
        };
        let s = summarize("slow-join", "sim", &trace);
        // Starved for 200 ms: a 500 ms window is within 5% once at most 25 ms of it is starved.
        assert_eq!(s.recovery_ms, Some(180.0));
        // The same run cut short has no room to tell.
        let short = RunTrace {
            duration: 1400 * MS,
            ..trace
        };
        assert_eq!(summarize("short", "sim", &short).recovery_ms, None);
    }
}
