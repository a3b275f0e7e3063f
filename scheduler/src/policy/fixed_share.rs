//! Fixed share: every tenant is reserved 1/max_instances of the device (or the share its spec
//! asks for), whether or not the other instances exist or have work; the rest stays idle (not
//! work-conserving). Time is cut into periods of `max_instances` slices and each tenant may use
//! its reservation (one slice, by default) per period; overrun
//! is carried into the next periods as debt, so a tenant never gets more than its reservation
//! plus one job's overrun in a period, and exactly its reservation over time.

use std::collections::HashMap;

use super::{Pick, Policy, PolicyKind, Ring};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

#[derive(Debug)]
pub struct FixedShare {
    slice: i64,
    period: Nanos,
    max_debt: i64,
    period_start: Nanos,
    ring: Ring,
    /// Time left in the current period (negative: debt), and the reservation per period.
    allowance: HashMap<TenantId, (i64, i64)>,
    tenants: usize,
    max_instances: usize,
}

impl FixedShare {
    pub fn new(params: &Params) -> Self {
        let slice = params.slice as i64;
        Self {
            slice,
            period: params.slice * u64::from(params.max_instances),
            max_debt: slice * i64::from(params.averaging_factor),
            period_start: 0,
            ring: Ring::default(),
            allowance: HashMap::new(),
            tenants: 0,
            max_instances: params.max_instances as usize,
        }
    }

    pub fn period(&self) -> Nanos {
        self.period
    }

    fn roll_period(&mut self, now: Nanos) {
        if now < self.period_start + self.period {
            return;
        }
        let periods = (now - self.period_start) / self.period;
        self.period_start += periods * self.period;
        // Each elapsed period pays off one reservation of debt; unused allowance is not kept.
        let periods = periods.min(i64::MAX as u64) as i64;
        for (left, quota) in self.allowance.values_mut() {
            *left = (*left)
                .min(0)
                .saturating_add(quota.saturating_mul(periods))
                .min(*quota);
        }
    }
}

impl Policy for FixedShare {
    fn kind(&self) -> PolicyKind {
        PolicyKind::FixedShare
    }

    fn join(&mut self, tenant: &Tenant, now: Nanos) {
        self.roll_period(now);
        self.ring.push(tenant.id);
        let quota = match tenant.spec.share_pct {
            Some(pct) => (self.period * u64::from(pct) / 100).max(1) as i64,
            None => self.slice,
        };
        self.allowance.entry(tenant.id).or_insert((quota, quota));
        let reserved: i64 = self.allowance.values().map(|a| a.1).sum();
        if reserved > self.period as i64 {
            tracing::warn!(
                reserved_pct = reserved * 100 / self.period as i64,
                "fixed-share oversubscribed: reservations exceed the device"
            );
        }
        self.tenants += 1;
        if self.tenants > self.max_instances {
            tracing::warn!(
                tenants = self.tenants,
                max_instances = self.max_instances,
                "fixed-share oversubscribed: reservations exceed the device"
            );
        }
    }

    fn leave(&mut self, id: TenantId) {
        self.ring.remove(id);
        if self.allowance.remove(&id).is_some() {
            self.tenants -= 1;
        }
    }

    fn wake(&mut self, _tenant: &Tenant, _now: Nanos) {}

    fn sleep(&mut self, _id: TenantId, _now: Nanos) {}

    fn pick(&mut self, tenants: &TenantTable, now: Nanos) -> Pick {
        self.roll_period(now);
        let allowance = &self.allowance;
        let mut any_runnable = false;
        let chosen = self.ring.next_where(|id| {
            let runnable = tenants.runnable(id);
            any_runnable |= runnable;
            runnable && allowance.get(&id).is_some_and(|a| a.0 > 0)
        });
        match chosen {
            Some(tenant) => Pick::Run {
                tenant,
                budget: self.allowance[&tenant].0 as Nanos,
            },
            None if any_runnable => Pick::IdleUntil(self.period_start + self.period),
            None => Pick::Idle,
        }
    }

    fn charge(&mut self, id: TenantId, used: Nanos, _now: Nanos) {
        if let Some((left, _)) = self.allowance.get_mut(&id) {
            *left = (*left - used as i64).max(-self.max_debt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, run, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::TenantSpec;

    fn params(max: u32) -> Params {
        Params {
            max_instances: max,
            ..Params::default()
        }
    }

    #[test]
    fn lone_tenant_gets_only_its_reservation() {
        let t = table(&[TenantSpec::new("a")]);
        let mut p = FixedShare::new(&params(4));
        join_all(&mut p, &t);
        let used = run(&mut p, &t, &|_| MS / 2, 1000 * MS);
        // 1/4 of one second, give or take one slice.
        assert!(used[0].abs_diff(250 * MS) <= 2 * MS, "{used:?}");
    }

    #[test]
    fn idles_until_the_next_period_once_allowance_is_spent() {
        let t = table(&[TenantSpec::new("a"), TenantSpec::new("b")]);
        let mut p = FixedShare::new(&params(4));
        join_all(&mut p, &t);
        for _ in 0..2 {
            let Pick::Run { tenant, budget } = p.pick(&t, MS) else {
                panic!()
            };
            p.charge(tenant, budget, MS);
        }
        assert_eq!(p.pick(&t, 5 * MS), Pick::IdleUntil(8 * MS));
        assert!(matches!(p.pick(&t, 8 * MS), Pick::Run { .. }));
    }

    #[test]
    fn overrun_is_repaid_in_later_periods() {
        let t = table(&[TenantSpec::new("a")]);
        let mut p = FixedShare::new(&params(2));
        join_all(&mut p, &t);
        let _ = p.pick(&t, 0);
        p.charge(TenantId(0), 5 * MS, 5 * MS); // 3 ms over its 2 ms
                                               // Debt -3 ms: the periods at 4 and 8 ms bring it to -1 and 1 ms.
        assert_eq!(p.pick(&t, 5 * MS), Pick::IdleUntil(8 * MS));
        assert_eq!(
            p.pick(&t, 8 * MS),
            Pick::Run {
                tenant: TenantId(0),
                budget: MS
            }
        );
    }

    #[test]
    fn explicit_shares_override_one_over_max_instances() {
        let t = table(&[
            TenantSpec::new("big").share(50),
            TenantSpec::new("small").share(10),
        ]);
        let mut p = FixedShare::new(&params(4));
        join_all(&mut p, &t);
        let used = run(&mut p, &t, &|_| MS / 4, 1000 * MS);
        assert!(used[0].abs_diff(500 * MS) <= 2 * MS, "{used:?}");
        assert!(used[1].abs_diff(100 * MS) <= 2 * MS, "{used:?}");
    }
}
