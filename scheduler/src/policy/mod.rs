//! Scheduling policies behind one narrow trait. The scheduler owns the tenants and the slice in
//! progress; a policy only keeps its own accounting and answers "who next, and for how long".

mod best_effort;
mod deadline;
mod equal_share;
mod fair;
mod fixed_share;
mod weighted;

use std::collections::VecDeque;
use std::fmt;
use std::str::FromStr;

pub use best_effort::BestEffort;
pub use deadline::Deadline;
pub use equal_share::EqualShare;
pub use fair::Fair;
pub use fixed_share::FixedShare;
pub use weighted::Weighted;

use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

/// The policies a scheduler can switch between at run time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PolicyKind {
    BestEffort,
    EqualShare,
    FixedShare,
    Weighted,
    Fair,
    Deadline,
}

impl PolicyKind {
    pub const ALL: [PolicyKind; 6] = [
        PolicyKind::BestEffort,
        PolicyKind::EqualShare,
        PolicyKind::FixedShare,
        PolicyKind::Weighted,
        PolicyKind::Fair,
        PolicyKind::Deadline,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PolicyKind::BestEffort => "best-effort",
            PolicyKind::EqualShare => "equal-share",
            PolicyKind::FixedShare => "fixed-share",
            PolicyKind::Weighted => "weighted",
            PolicyKind::Fair => "fair",
            PolicyKind::Deadline => "deadline",
        }
    }

    /// Whether the policy divides the device by tenant weight (the others split it evenly).
    pub fn honours_weights(self) -> bool {
        matches!(
            self,
            PolicyKind::Weighted | PolicyKind::Fair | PolicyKind::Deadline
        )
    }

    /// Builds a fresh instance of the policy.
    pub fn build(self, params: &Params) -> Box<dyn Policy> {
        match self {
            PolicyKind::BestEffort => Box::new(BestEffort::new(params)),
            PolicyKind::EqualShare => Box::new(EqualShare::new(params)),
            PolicyKind::FixedShare => Box::new(FixedShare::new(params)),
            PolicyKind::Weighted => Box::new(Weighted::new(params)),
            PolicyKind::Fair => Box::new(Fair::new(params)),
            PolicyKind::Deadline => Box::new(Deadline::new(params)),
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("unknown policy {0:?} (expected one of best-effort, equal-share, fixed-share, weighted, fair, deadline)")]
pub struct UnknownPolicy(pub String);

impl FromStr for PolicyKind {
    type Err = UnknownPolicy;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| UnknownPolicy(s.to_owned()))
    }
}

/// A policy's answer when the device is free.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pick {
    /// Give `tenant` the device for about `budget` (the slice ends at the first job boundary
    /// at or past it).
    Run { tenant: TenantId, budget: Nanos },
    /// Work is queued but the policy holds the device idle until then (not work-conserving).
    IdleUntil(Nanos),
    /// Nobody has work.
    Idle,
}

/// One scheduling policy. Calls come from the scheduler only; `pick` is called only while no
/// job is on the device, so then "active" (has work) and "runnable" are the same.
pub trait Policy: Send {
    fn kind(&self) -> PolicyKind;

    /// A tenant joined (or the scheduler switched to this policy and replays its tenants).
    fn join(&mut self, tenant: &Tenant, now: Nanos);

    fn leave(&mut self, id: TenantId);

    /// The tenant had no work and now has some.
    fn wake(&mut self, tenant: &Tenant, now: Nanos);

    /// The tenant has run out of work.
    fn sleep(&mut self, id: TenantId, now: Nanos);

    /// Chooses the next tenant among the runnable ones.
    fn pick(&mut self, tenants: &TenantTable, now: Nanos) -> Pick;

    /// `used` of device time is charged to `id` (a finished job, plus any watchdog penalty).
    fn charge(&mut self, id: TenantId, used: Nanos, now: Nanos);

    /// Whether the slice of `running` should end at this job boundary even though budget is
    /// left (a latency-class tenant is waiting).
    fn preempt(&self, _running: TenantId, _tenants: &TenantTable, _now: Nanos) -> bool {
        false
    }
}

/// A round-robin ring of tenant ids: the turn order of the round-robin policies.
#[derive(Debug, Default)]
pub(crate) struct Ring {
    order: VecDeque<TenantId>,
}

impl Ring {
    pub fn push(&mut self, id: TenantId) {
        if !self.order.contains(&id) {
            self.order.push_back(id);
        }
    }

    pub fn remove(&mut self, id: TenantId) {
        self.order.retain(|&t| t != id);
    }

    /// Walks one full turn of the ring from the front; the first id that `take` accepts goes
    /// to the back (it has had its turn) and is returned. Ids passed over go to the back too,
    /// in order, so the ring keeps its order.
    pub fn next_where(&mut self, mut take: impl FnMut(TenantId) -> bool) -> Option<TenantId> {
        for _ in 0..self.order.len() {
            let id = self.order.pop_front()?;
            self.order.push_back(id);
            if take(id) {
                return Some(id);
            }
        }
        None
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    //! Drives a policy directly, without the scheduler, with saturating tenants.
    use super::*;
    use crate::tenant::{JobId, QueuedJob, TenantSpec};

    pub fn table(specs: &[TenantSpec]) -> TenantTable {
        let mut t = TenantTable::default();
        for (i, s) in specs.iter().enumerate() {
            let mut tenant = Tenant::new(TenantId(i as u32), s.clone());
            tenant.queue.push_back(QueuedJob {
                id: JobId(i as u64),
                submitted_at: 0,
            });
            tenant.head_ready_at = Some(0);
            t.push(tenant);
        }
        t
    }

    pub fn join_all(p: &mut dyn Policy, t: &TenantTable) {
        for tenant in t.iter() {
            p.join(tenant, 0);
            p.wake(tenant, 0);
        }
    }

    /// Runs `rounds` picks where every job lasts `job`, charging as the scheduler would
    /// (several jobs per slice while budget is left). Returns device time per tenant.
    pub fn run(
        p: &mut dyn Policy,
        t: &TenantTable,
        job: &dyn Fn(TenantId) -> Nanos,
        until: Nanos,
    ) -> Vec<Nanos> {
        let mut used = vec![0; t.len()];
        let mut now = 0;
        while now < until {
            match p.pick(t, now) {
                Pick::Run { tenant, budget } => {
                    let mut left = budget as i64;
                    while left > 0 && now < until {
                        let d = job(tenant);
                        now += d;
                        left -= d as i64;
                        used[tenant.0 as usize] += d;
                        p.charge(tenant, d, now);
                    }
                }
                Pick::IdleUntil(t) => now = t.max(now + 1),
                Pick::Idle => break,
            }
        }
        used
    }
}
