//! Executors run tenants' workloads against a scheduler: a discrete-event simulation, and real
//! Vulkan compute on the host GPU.

pub mod sim;
pub mod vulkan;

use std::collections::HashMap;

use crate::clock::{Clock, Nanos};
use crate::metrics::{JobRecord, RunTrace, TenantTrace};
use crate::policy::PolicyKind;
use crate::scheduler::{Dispatch, SchedError, Scheduler};
use crate::tenant::{JobId, TenantClass, TenantId, TenantSpec};
use crate::workload::{Arrival, TenantDriver, Workload};

/// A tenant of a scenario: who it is, what it submits, and when it is there.
#[derive(Debug, Clone)]
pub struct TenantPlan {
    pub spec: TenantSpec,
    pub workload: Workload,
    pub join_at: Nanos,
    pub leave_at: Option<Nanos>,
}

impl TenantPlan {
    pub fn new(spec: TenantSpec, workload: Workload) -> Self {
        Self {
            spec,
            workload,
            join_at: 0,
            leave_at: None,
        }
    }

    pub fn during(mut self, join_at: Nanos, leave_at: Option<Nanos>) -> Self {
        self.join_at = join_at;
        self.leave_at = leave_at;
        self
    }

    /// Whether its demand is "the whole device" while present (versus what it submits).
    pub fn saturates(&self) -> bool {
        matches!(
            self.workload.arrival,
            Arrival::Saturating { .. } | Arrival::OnOff { .. }
        )
    }

    pub(crate) fn trace(&self) -> TenantTrace {
        TenantTrace {
            name: self.spec.name.clone(),
            weight: self.spec.weight,
            interactive: self.spec.class == TenantClass::Interactive,
            joined: self.join_at,
            left: self.leave_at,
            saturated: Vec::new(),
            submissions: Vec::new(),
        }
    }
}

/// The tenants of a run as their workload drivers see them: joins, leaves, timers and
/// completions become submissions to the scheduler, and everything lands in the trace. Shared
/// by the executors, which differ only in how time passes and jobs run.
pub(crate) struct Population<'a> {
    plans: &'a [TenantPlan],
    drivers: Vec<TenantDriver>,
    ids: Vec<Option<TenantId>>,
    index: HashMap<TenantId, usize>,
    gone: Vec<bool>,
    lengths: HashMap<JobId, Nanos>,
    pub trace: RunTrace,
}

impl<'a> Population<'a> {
    pub fn new(plans: &'a [TenantPlan], seed: u64, policy: PolicyKind, duration: Nanos) -> Self {
        Self {
            plans,
            drivers: plans
                .iter()
                .enumerate()
                .map(|(i, p)| {
                    TenantDriver::new(p.workload, seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9))
                })
                .collect(),
            ids: vec![None; plans.len()],
            index: HashMap::new(),
            gone: vec![false; plans.len()],
            lengths: HashMap::new(),
            trace: RunTrace {
                policy,
                duration,
                tenants: plans.iter().map(TenantPlan::trace).collect(),
                jobs: Vec::new(),
                pick_ns: Vec::new(),
                switches: 0,
                watchdog_events: 0,
            },
        }
    }

    fn submit<C: Clock>(
        &mut self,
        sched: &mut Scheduler<C>,
        i: usize,
        jobs: Vec<Nanos>,
        now: Nanos,
    ) -> Result<(), SchedError> {
        let Some(id) = self.ids[i].filter(|_| !self.gone[i]) else {
            return Ok(());
        };
        for len in jobs {
            let job = sched.submit(id)?;
            self.lengths.insert(job, len);
            if !self.plans[i].saturates() {
                self.trace.tenants[i].submissions.push((now, len));
            }
        }
        Ok(())
    }

    /// Applies joins, leaves and workload timers due by `now`.
    pub fn advance<C: Clock>(
        &mut self,
        sched: &mut Scheduler<C>,
        now: Nanos,
    ) -> Result<(), SchedError> {
        for i in 0..self.plans.len() {
            let plan = &self.plans[i];
            if self.ids[i].is_none() && plan.join_at <= now {
                let id = sched.add_tenant(plan.spec.clone())?;
                self.ids[i] = Some(id);
                self.index.insert(id, i);
                let jobs = self.drivers[i].start(now);
                self.submit(sched, i, jobs, now)?;
            }
            if let (Some(id), false, Some(leave)) = (self.ids[i], self.gone[i], plan.leave_at) {
                if leave <= now {
                    for job in sched.remove_tenant(id)? {
                        self.lengths.remove(&job);
                    }
                    self.drivers[i].stop(now);
                    self.gone[i] = true;
                }
            }
            while self.ids[i].is_some()
                && !self.gone[i]
                && self.drivers[i].next_timer().is_some_and(|t| t <= now)
            {
                let jobs = self.drivers[i].timer(now);
                self.submit(sched, i, jobs, now)?;
            }
        }
        Ok(())
    }

    /// A job finished: records it and lets its tenant submit more.
    pub fn completed<C: Clock>(
        &mut self,
        sched: &mut Scheduler<C>,
        record: JobRecord,
        now: Nanos,
    ) -> Result<(), SchedError> {
        self.trace.jobs.push(record);
        let i = record.tenant;
        if self.ids[i].is_some() && !self.gone[i] {
            let more = self.drivers[i].completed(now);
            self.submit(sched, i, more, now)?;
        }
        Ok(())
    }

    /// The next join, leave or workload timer after everything due has been applied.
    pub fn next_event(&self) -> Option<Nanos> {
        (0..self.plans.len())
            .flat_map(|i| {
                let (joined, live) = (
                    self.ids[i].is_some(),
                    self.ids[i].is_some() && !self.gone[i],
                );
                [
                    (!joined).then_some(self.plans[i].join_at),
                    self.plans[i].leave_at.filter(|_| live),
                    self.drivers[i].next_timer().filter(|_| live),
                ]
            })
            .flatten()
            .min()
    }

    /// Device time the job needs run exclusively, and its tenant's index.
    pub fn take(&mut self, d: &Dispatch) -> (Nanos, usize) {
        (
            self.lengths.remove(&d.job).unwrap_or(0),
            self.index[&d.tenant],
        )
    }

    pub fn finish(mut self, end: Nanos) -> RunTrace {
        for (i, d) in self.drivers.iter_mut().enumerate() {
            if self.ids[i].is_some() && !self.gone[i] {
                d.stop(end);
            }
            self.trace.tenants[i].saturated = std::mem::take(&mut d.saturated);
        }
        self.trace
    }
}
