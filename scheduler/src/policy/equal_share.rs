//! Equal share: strict round robin over the active tenants, each turn worth one slice, with
//! overrun carried as debt (deficit round robin). A tenant in debt skips turns until a turn's
//! slice pays it off, so over time every active tenant gets 1/N of the device whatever its
//! job lengths. Debt is capped at `averaging_factor` slices: the horizon over which shares
//! are made equal (NVIDIA's averaging factor).

use std::collections::HashMap;

use super::{Pick, Policy, PolicyKind, Ring};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

#[derive(Debug)]
pub struct EqualShare {
    slice: i64,
    max_debt: i64,
    ring: Ring,
    /// Time a tenant may still use in its current turn; negative: debt.
    credit: HashMap<TenantId, i64>,
}

impl EqualShare {
    pub fn new(params: &Params) -> Self {
        let slice = params.slice as i64;
        Self {
            slice,
            max_debt: slice * i64::from(params.averaging_factor),
            ring: Ring::default(),
            credit: HashMap::new(),
        }
    }

    pub fn credit(&self, id: TenantId) -> Option<i64> {
        self.credit.get(&id).copied()
    }
}

impl Policy for EqualShare {
    fn kind(&self) -> PolicyKind {
        PolicyKind::EqualShare
    }

    fn join(&mut self, tenant: &Tenant, _now: Nanos) {
        self.ring.push(tenant.id);
        self.credit.entry(tenant.id).or_insert(0);
    }

    fn leave(&mut self, id: TenantId) {
        self.ring.remove(id);
        self.credit.remove(&id);
    }

    fn wake(&mut self, _tenant: &Tenant, _now: Nanos) {}

    fn sleep(&mut self, id: TenantId, _now: Nanos) {
        // An idle tenant keeps its debt but not unused credit: no hoarding while idle.
        if let Some(c) = self.credit.get_mut(&id) {
            *c = (*c).min(0);
        }
    }

    fn pick(&mut self, tenants: &TenantTable, _now: Nanos) -> Pick {
        // One pass of the ring: each runnable tenant passed gets its turn's slice.
        let (slice, credit) = (self.slice, &mut self.credit);
        let chosen = self.ring.next_where(|id| {
            if !tenants.runnable(id) {
                return false;
            }
            let c = credit.entry(id).or_insert(0);
            *c = (*c + slice).min(slice);
            *c > 0
        });
        if let Some(id) = chosen {
            return Pick::Run {
                tenant: id,
                budget: self.credit[&id] as Nanos,
            };
        }
        // Everyone runnable is in debt: skip the rounds until the least indebted is paid up,
        // at once rather than one round at a time.
        let runnable: Vec<TenantId> = self
            .credit
            .keys()
            .copied()
            .filter(|&id| tenants.runnable(id))
            .collect();
        let Some(rounds) = runnable
            .iter()
            .map(|id| (1 - self.credit[id]).div_euclid(slice) + 1)
            .min()
        else {
            return Pick::Idle;
        };
        for id in &runnable {
            let c = self.credit.get_mut(id).expect("listed from the map");
            *c = (*c + (rounds - 1) * slice).min(slice);
        }
        // The next pass now finds a tenant whose turn's slice brings it above zero.
        self.pick(tenants, _now)
    }

    fn charge(&mut self, id: TenantId, used: Nanos, _now: Nanos) {
        if let Some(c) = self.credit.get_mut(&id) {
            *c = (*c - used as i64).max(-self.max_debt);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, run, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::TenantSpec;

    #[test]
    fn overrun_is_paid_back_so_time_is_equal() {
        let t = table(&[TenantSpec::new("long"), TenantSpec::new("short")]);
        let mut p = EqualShare::new(&Params::default());
        join_all(&mut p, &t);
        let used = run(
            &mut p,
            &t,
            &|id| if id.0 == 0 { 10 * MS } else { MS / 2 },
            2000 * MS,
        );
        let share = used[0] as f64 / (used[0] + used[1]) as f64;
        assert!((share - 0.5).abs() < 0.01, "share {share} {used:?}");
    }

    #[test]
    fn tenant_in_debt_skips_turns() {
        let t = table(&[TenantSpec::new("a"), TenantSpec::new("b")]);
        let mut p = EqualShare::new(&Params::default());
        join_all(&mut p, &t);
        let Pick::Run { tenant, .. } = p.pick(&t, 0) else {
            panic!()
        };
        assert_eq!(tenant, TenantId(0));
        p.charge(tenant, 7 * MS, 0); // 5 ms over a 2 ms slice
        assert_eq!(p.credit(TenantId(0)), Some(-5 * MS as i64));
        // b, then a is skipped (credit -3 ms), b, skipped (-1 ms), b, then a runs with 1 ms.
        let mut seq = vec![];
        for _ in 0..4 {
            let Pick::Run { tenant, budget } = p.pick(&t, 0) else {
                panic!()
            };
            if tenant.0 == 1 {
                p.charge(tenant, budget, 0);
            }
            seq.push((tenant.0, budget / MS));
        }
        assert_eq!(seq, vec![(1, 2), (1, 2), (1, 2), (0, 1)]);
    }

    #[test]
    fn debt_is_capped_by_the_averaging_factor() {
        let params = Params {
            averaging_factor: 3,
            ..Params::default()
        };
        let t = table(&[TenantSpec::new("a")]);
        let mut p = EqualShare::new(&params);
        join_all(&mut p, &t);
        let _ = p.pick(&t, 0);
        p.charge(TenantId(0), 1000 * MS, 0);
        assert_eq!(p.credit(TenantId(0)), Some(-6 * MS as i64));
        // A lone tenant still runs: the policy is work-conserving.
        assert!(matches!(p.pick(&t, 0), Pick::Run { .. }));
    }
}
