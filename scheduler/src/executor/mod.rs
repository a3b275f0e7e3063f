//! Executors run tenants' workloads against a scheduler: a discrete-event simulation, and real
//! Vulkan compute on the host GPU.

pub mod sim;
// pub mod vulkan;

use crate::clock::Nanos;
use crate::metrics::TenantTrace;
use crate::tenant::{TenantClass, TenantSpec};
use crate::workload::{Arrival, Workload};

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
