//! Best-effort: work-conserving round robin. Idle tenants yield their turn, nobody is
//! compensated for overrun, and a lone tenant gets the whole device.

use super::{Pick, Policy, PolicyKind, Ring};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

#[derive(Debug)]
pub struct BestEffort {
    slice: Nanos,
    ring: Ring,
}

impl BestEffort {
    pub fn new(params: &Params) -> Self {
        Self {
            slice: params.slice,
            ring: Ring::default(),
        }
    }
}

impl Policy for BestEffort {
    fn kind(&self) -> PolicyKind {
        PolicyKind::BestEffort
    }

    fn join(&mut self, tenant: &Tenant, _now: Nanos) {
        self.ring.push(tenant.id);
    }

    fn leave(&mut self, id: TenantId) {
        self.ring.remove(id);
    }

    fn wake(&mut self, _tenant: &Tenant, _now: Nanos) {}

    fn sleep(&mut self, _id: TenantId, _now: Nanos) {}

    fn pick(&mut self, tenants: &TenantTable, _now: Nanos) -> Pick {
        match self.ring.next_where(|id| tenants.runnable(id)) {
            Some(tenant) => Pick::Run {
                tenant,
                budget: self.slice,
            },
            None => Pick::Idle,
        }
    }

    fn charge(&mut self, _id: TenantId, _used: Nanos, _now: Nanos) {}
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, run, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::TenantSpec;

    #[test]
    fn turns_rotate_over_runnable_tenants_only() {
        let mut t = table(&[
            TenantSpec::new("a"),
            TenantSpec::new("b"),
            TenantSpec::new("c"),
        ]);
        let mut p = BestEffort::new(&Params::default());
        join_all(&mut p, &t);
        t.get_mut(TenantId(1)).unwrap().queue.clear();
        let picks: Vec<_> = (0..4)
            .map(|_| match p.pick(&t, 0) {
                Pick::Run { tenant, budget } => {
                    assert_eq!(budget, 2 * MS);
                    tenant.0
                }
                other => panic!("unexpected {other:?}"),
            })
            .collect();
        assert_eq!(picks, vec![0, 2, 0, 2]);
    }

    #[test]
    fn overrun_is_not_compensated() {
        let t = table(&[TenantSpec::new("long"), TenantSpec::new("short")]);
        let mut p = BestEffort::new(&Params::default());
        join_all(&mut p, &t);
        // 10 ms kernels against 0.5 ms ones: round robin hands out turns, not time.
        let used = run(
            &mut p,
            &t,
            &|id| if id.0 == 0 { 10 * MS } else { MS / 2 },
            1000 * MS,
        );
        assert!(used[0] > 4 * used[1], "{used:?}");
    }

    #[test]
    fn lone_tenant_gets_every_turn_and_nobody_means_idle() {
        let t = table(&[TenantSpec::new("a")]);
        let mut p = BestEffort::new(&Params::default());
        join_all(&mut p, &t);
        assert!(matches!(
            p.pick(&t, 0),
            Pick::Run {
                tenant: TenantId(0),
                ..
            }
        ));
        let empty = table(&[]);
        let mut q = BestEffort::new(&Params::default());
        assert_eq!(q.pick(&empty, 0), Pick::Idle);
    }
}
