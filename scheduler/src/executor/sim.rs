//! The simulated executor: a discrete-event simulation of one non-preemptible device, in
//! simulated time, with a fixed cost for each context switch between tenants.

use std::collections::HashMap;
use std::time::Instant;

use super::TenantPlan;
use crate::clock::{Nanos, SimClock, MS};
use crate::metrics::{JobRecord, RunTrace};
use crate::params::Params;
use crate::policy::PolicyKind;
use crate::scheduler::{Decision, SchedError, Scheduler};
use crate::tenant::{JobId, TenantId};
use crate::workload::TenantDriver;

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

struct OnDevice {
    job: JobId,
    record: JobRecord,
}

pub fn run(
    params: &Params,
    policy: PolicyKind,
    plans: &[TenantPlan],
    cfg: &SimConfig,
) -> Result<RunTrace, SimError> {
    let clock = SimClock::new();
    let mut sched = Scheduler::new(clock.clone(), params.clone(), policy)?;
    let mut drivers: Vec<TenantDriver> = plans
        .iter()
        .enumerate()
        .map(|(i, p)| {
            TenantDriver::new(
                p.workload,
                cfg.seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9),
            )
        })
        .collect();
    let mut trace = RunTrace {
        policy,
        duration: cfg.duration,
        tenants: plans.iter().map(TenantPlan::trace).collect(),
        jobs: Vec::new(),
        picks: 0,
        pick_ns_total: 0,
        switches: 0,
        watchdog_events: 0,
    };
    let mut ids: Vec<Option<TenantId>> = vec![None; plans.len()];
    let mut index: HashMap<TenantId, usize> = HashMap::new();
    let mut gone = vec![false; plans.len()];
    let mut lengths: HashMap<JobId, Nanos> = HashMap::new();
    let mut switches = cfg.policy_switches.clone();
    switches.sort_by_key(|s| s.0);
    let mut switches = switches.into_iter().peekable();
    let mut device: Option<OnDevice> = None;
    let mut idle_until: Option<Nanos> = None;
    let mut now: Nanos = 0;

    let submit = |sched: &mut Scheduler<SimClock>,
                  lengths: &mut HashMap<JobId, Nanos>,
                  trace: &mut RunTrace,
                  i: usize,
                  id: TenantId,
                  jobs: Vec<Nanos>,
                  now: Nanos|
     -> Result<(), SimError> {
        for len in jobs {
            let job = sched.submit(id)?;
            lengths.insert(job, len);
            if !plans[i].saturates() {
                trace.tenants[i].submissions.push((now, len));
            }
        }
        Ok(())
    };

    loop {
        clock.set(now);
        if let Some(d) = device.as_ref().filter(|d| d.record.end <= now) {
            let (job, record) = (d.job, d.record);
            device = None;
            if sched.complete(job, record.useful)?.is_some() {
                trace.watchdog_events += 1;
            }
            trace.jobs.push(record);
            let i = record.tenant;
            if let (Some(id), false) = (ids[i], gone[i]) {
                let more = drivers[i].completed(now);
                submit(&mut sched, &mut lengths, &mut trace, i, id, more, now)?;
            }
        }
        for (i, plan) in plans.iter().enumerate() {
            if ids[i].is_none() && !gone[i] && plan.join_at <= now {
                let id = sched.add_tenant(plan.spec.clone())?;
                ids[i] = Some(id);
                index.insert(id, i);
                let jobs = drivers[i].start(now);
                submit(&mut sched, &mut lengths, &mut trace, i, id, jobs, now)?;
            }
            if let (Some(id), false, Some(leave)) = (ids[i], gone[i], plan.leave_at) {
                if leave <= now {
                    for job in sched.remove_tenant(id)? {
                        lengths.remove(&job);
                    }
                    drivers[i].stop(now);
                    gone[i] = true;
                }
            }
            if let (Some(id), false) = (ids[i], gone[i]) {
                while drivers[i].next_timer().is_some_and(|t| t <= now) {
                    let jobs = drivers[i].timer(now);
                    submit(&mut sched, &mut lengths, &mut trace, i, id, jobs, now)?;
                }
            }
        }
        while switches.peek().is_some_and(|s| s.0 <= now) {
            let (_, kind) = switches.next().expect("peeked");
            sched.set_policy(kind);
        }
        if device.is_none() {
            let t0 = Instant::now();
            let decision = sched.next();
            trace.pick_ns_total += t0.elapsed().as_nanos() as u64;
            trace.picks += 1;
            idle_until = None;
            match decision {
                Decision::Run(d) => {
                    let len = lengths.remove(&d.job).unwrap_or(0);
                    let start = now + if d.switch { cfg.switch_cost } else { 0 };
                    trace.switches += u64::from(d.switch);
                    device = Some(OnDevice {
                        job: d.job,
                        record: JobRecord {
                            tenant: index[&d.tenant],
                            submitted: d.submitted_at,
                            dispatched: now,
                            start,
                            end: start + len,
                            useful: len,
                        },
                    });
                }
                Decision::Idle { until } => idle_until = until,
                Decision::Busy => {}
            }
        }
        let next = [
            device.as_ref().map(|d| d.record.end),
            idle_until.filter(|_| device.is_none()),
            switches.peek().map(|s| s.0),
        ]
        .into_iter()
        .flatten()
        .chain(
            plans
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    let joined = ids[i].is_some();
                    [
                        (!joined).then_some(p.join_at),
                        p.leave_at.filter(|_| joined && !gone[i]),
                        drivers[i].next_timer().filter(|_| joined && !gone[i]),
                    ]
                })
                .flatten(),
        )
        .filter(|&t| t >= now)
        .min();
        match next {
            Some(t) if t < cfg.duration => now = t.max(now),
            _ => break,
        }
    }
    for (i, d) in drivers.iter_mut().enumerate() {
        if ids[i].is_some() && !gone[i] {
            d.stop(cfg.duration);
        }
        trace.tenants[i].saturated = std::mem::take(&mut d.saturated);
    }
    Ok(trace)
}
