//! Tenants (vGPU slices, a VM's GPU context) and the table the scheduler keeps of them.

use std::collections::VecDeque;

use crate::clock::Nanos;

/// Identifies a tenant for as long as the scheduler lives; never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TenantId(pub u32);

/// Identifies one submitted job.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct JobId(pub u64);

/// Weights as GVT-g takes them.
pub const MIN_WEIGHT: u32 = 1;
pub const MAX_WEIGHT: u32 = 16;

/// Priority as the DRM scheduler knows it; the fair policy scales virtual time by it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Priority {
    Low,
    #[default]
    Normal,
    High,
}

impl Priority {
    /// Multiplier on the tenant's weight: each step doubles the share.
    pub fn scale(self) -> u64 {
        match self {
            Priority::Low => 1,
            Priority::Normal => 2,
            Priority::High => 4,
        }
    }
}

/// Batch tenants want throughput; interactive ones want their jobs started soon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TenantClass {
    #[default]
    Batch,
    Interactive,
}

/// What a tenant asks for when it joins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TenantSpec {
    pub name: String,
    /// 1..=16; the share of weight-aware policies is proportional to it.
    pub weight: u32,
    pub priority: Priority,
    pub class: TenantClass,
    /// Fixed-share reservation in percent of the device (default: 1/max_instances).
    pub share_pct: Option<u32>,
}

impl TenantSpec {
    pub fn new(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            weight: 1,
            priority: Priority::Normal,
            class: TenantClass::Batch,
            share_pct: None,
        }
    }

    /// Reserves `pct` percent of the device under the fixed-share policy.
    pub fn share(mut self, pct: u32) -> Self {
        self.share_pct = Some(pct);
        self
    }

    pub fn weight(mut self, weight: u32) -> Self {
        self.weight = weight;
        self
    }

    pub fn priority(mut self, priority: Priority) -> Self {
        self.priority = priority;
        self
    }

    pub fn interactive(mut self) -> Self {
        self.class = TenantClass::Interactive;
        self
    }
}

/// A job waiting in a tenant's queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueuedJob {
    pub id: JobId,
    pub submitted_at: Nanos,
}

/// A tenant as the scheduler tracks it.
#[derive(Debug, Clone)]
pub struct Tenant {
    pub id: TenantId,
    pub spec: TenantSpec,
    pub(crate) queue: VecDeque<QueuedJob>,
    /// When the job at the head of the queue became ready to run (submitted, or its predecessor
    /// finished): what a latency-sensitive policy measures waiting from.
    pub(crate) head_ready_at: Option<Nanos>,
    pub(crate) running: bool,
    /// Device time used so far.
    pub used: Nanos,
    pub jobs_done: u64,
    /// Jobs that overran the watchdog timeout.
    pub watchdog_strikes: u32,
    /// Removed while its job ran: leaves once the job completes.
    pub(crate) leaving: bool,
    /// Its last job completed with nothing queued; it counts as backlogged until then
    /// (`Params::anticipation`).
    pub(crate) expected_until: Option<Nanos>,
    /// When its last job completed with nothing queued, and its mean think time (completion to
    /// next submission, weighted 1/8 to the newest): a tenant that thinks longer than the
    /// anticipation is not waited for.
    pub(crate) idle_since: Option<Nanos>,
    pub(crate) think_time: Option<Nanos>,
}

impl Tenant {
    pub(crate) fn new(id: TenantId, spec: TenantSpec) -> Self {
        Self {
            id,
            spec,
            queue: VecDeque::new(),
            head_ready_at: None,
            running: false,
            used: 0,
            jobs_done: 0,
            watchdog_strikes: 0,
            leaving: false,
            expected_until: None,
            idle_since: None,
            think_time: None,
        }
    }

    /// Has a job that could be dispatched now, or is expected to submit one at once.
    pub fn runnable(&self) -> bool {
        (!self.queue.is_empty() || self.expected_until.is_some()) && !self.running && !self.leaving
    }

    /// Has work queued or on the device, or is expected to submit some at once.
    pub fn active(&self) -> bool {
        !self.queue.is_empty() || self.running || self.expected_until.is_some()
    }

    /// Until when the scheduler waits for its next job (see `Params::anticipation`).
    pub fn expected_until(&self) -> Option<Nanos> {
        self.expected_until
    }

    pub fn queued(&self) -> usize {
        self.queue.len()
    }

    pub fn head_ready_at(&self) -> Option<Nanos> {
        self.head_ready_at
    }

    pub fn is_interactive(&self) -> bool {
        self.spec.class == TenantClass::Interactive
    }

    /// Weight times priority scale: what proportional policies divide time by.
    pub fn effective_weight(&self) -> u64 {
        u64::from(self.spec.weight) * self.spec.priority.scale()
    }
}

/// The tenants, sorted by id (ids only grow, so pushing keeps the order).
#[derive(Debug, Default)]
pub struct TenantTable {
    tenants: Vec<Tenant>,
}

impl TenantTable {
    pub fn get(&self, id: TenantId) -> Option<&Tenant> {
        self.index(id).map(|i| &self.tenants[i])
    }

    pub(crate) fn get_mut(&mut self, id: TenantId) -> Option<&mut Tenant> {
        self.index(id).map(move |i| &mut self.tenants[i])
    }

    pub fn iter(&self) -> impl Iterator<Item = &Tenant> {
        self.tenants.iter()
    }

    pub fn len(&self) -> usize {
        self.tenants.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tenants.is_empty()
    }

    /// Whether `id` exists and can be dispatched now.
    pub fn runnable(&self, id: TenantId) -> bool {
        self.get(id).is_some_and(Tenant::runnable)
    }

    pub(crate) fn push(&mut self, tenant: Tenant) {
        debug_assert!(self.tenants.last().is_none_or(|t| t.id < tenant.id));
        self.tenants.push(tenant);
    }

    pub(crate) fn remove(&mut self, id: TenantId) -> Option<Tenant> {
        self.index(id).map(|i| self.tenants.remove(i))
    }

    fn index(&self, id: TenantId) -> Option<usize> {
        self.tenants.binary_search_by_key(&id, |t| t.id).ok()
    }
}
