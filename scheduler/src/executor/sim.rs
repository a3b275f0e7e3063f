//! The simulated executor: a discrete-event simulation of one non-preemptible device, in
//! simulated time, with a fixed cost for each context switch between tenants.

use std::time::Instant;

use super::{Population, TenantPlan};
use crate::clock::{Nanos, SimClock, MS};
use crate::metrics::{JobRecord, RunTrace};
use crate::params::Params;
use crate::policy::PolicyKind;
use crate::scheduler::{Decision, SchedError, Scheduler};
use crate::tenant::JobId;

#[derive(Debug, thiserror::Error)]
pub enum SimError {
    #[error("scheduler: {0}")]
    Sched(#[from] SchedError),
}

#[derive(Debug, Clone)]
pub struct SimConfig {
    pub duration: Nanos,
    /// Device time lost each time the device changes tenant.
    pub switch_cost: Nanos,
    pub seed: u64,
    /// Policy switches at run time: (when, to what).
    pub policy_switches: Vec<(Nanos, PolicyKind)>,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            duration: 10_000 * MS,
            switch_cost: 25_000,
            seed: 1,
            policy_switches: Vec::new(),
        }
    }
}

pub fn run(
    params: &Params,
    policy: PolicyKind,
    plans: &[TenantPlan],
    cfg: &SimConfig,
) -> Result<RunTrace, SimError> {
    let clock = SimClock::new();
    let mut sched = Scheduler::new(clock.clone(), params.clone(), policy)?;
    let mut pop = Population::new(plans, cfg.seed, policy, cfg.duration);
    let mut switches = cfg.policy_switches.clone();
    switches.sort_by_key(|s| s.0);
    let mut switches = switches.into_iter().peekable();
    let mut device: Option<(JobId, JobRecord)> = None;
    let mut idle_until: Option<Nanos> = None;
    let mut now: Nanos = 0;

    loop {
        clock.set(now);
        if let Some((job, record)) = device.filter(|d| d.1.end <= now) {
            device = None;
            if sched.complete(job, record.useful)?.is_some() {
                pop.trace.watchdog_events += 1;
            }
            pop.completed(&mut sched, record, now)?;
        }
        pop.advance(&mut sched, now)?;
        while switches.peek().is_some_and(|s| s.0 <= now) {
            let (_, kind) = switches.next().expect("peeked");
            sched.set_policy(kind);
        }
        if device.is_none() {
            let t0 = Instant::now();
            let decision = sched.decide();
            pop.trace
                .pick_ns
                .push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32);
            idle_until = None;
            match decision {
                Decision::Run(d) => {
                    let (len, tenant) = pop.take(&d);
                    let start = now + if d.switch { cfg.switch_cost } else { 0 };
                    pop.trace.switches += u64::from(d.switch);
                    let record = JobRecord {
                        tenant,
                        submitted: d.submitted_at,
                        dispatched: now,
                        start,
                        end: start + len,
                        useful: len,
                    };
                    device = Some((d.job, record));
                }
                Decision::Idle { until } => idle_until = until,
                Decision::Busy => {}
            }
        }
        let next = [
            device.map(|d| d.1.end),
            idle_until.filter(|_| device.is_none()),
            switches.peek().map(|s| s.0),
            pop.next_event(),
        ]
        .into_iter()
        .flatten()
        .min();
        match next {
            Some(t) if t < cfg.duration => now = t.max(now),
            _ => break,
        }
    }
    Ok(pop.finish(cfg.duration))
}
