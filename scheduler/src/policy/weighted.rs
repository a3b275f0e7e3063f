//! Weighted (GVT-g style): every balance period (100 ms) is split into stages; at each stage
//! the active tenants are credited stage_length x weight / total weight. Tenants with credit
//! run in round robin, one slice at most per turn; what they overrun is debt carried into later
//! stages and unused credit carries too, both bounded by one balance period's allocation. When
//! every runnable tenant is out of credit before the stage ends, the next stage is credited early
//! so the device never idles while there is work (work-conserving).

use std::collections::HashMap;

use super::{Pick, Policy, PolicyKind, Ring};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

#[derive(Debug, Default)]
struct Account {
    weight: u64,
    active: bool,
    credit: i64,
}

#[derive(Debug)]
pub struct Weighted {
    slice: i64,
    period: i64,
    stage: Nanos,
    next_stage_at: Nanos,
    ring: Ring,
    accounts: HashMap<TenantId, Account>,
}

impl Weighted {
    pub fn new(params: &Params) -> Self {
        let stage = (params.balance_period / u64::from(params.balance_stages)).max(1);
        Self {
            slice: params.slice as i64,
            period: params.balance_period as i64,
            stage,
            next_stage_at: stage,
            ring: Ring::default(),
            accounts: HashMap::new(),
        }
    }

    pub fn credit(&self, id: TenantId) -> Option<i64> {
        self.accounts.get(&id).map(|a| a.credit)
    }

    /// Hands `stages` stages' worth of device time to the active tenants, by weight.
    fn credit_stages(&mut self, stages: u64) {
        let total: u64 = self
            .accounts
            .values()
            .filter(|a| a.active)
            .map(|a| a.weight)
            .sum();
        if total == 0 {
            return;
        }
        for a in self.accounts.values_mut().filter(|a| a.active) {
            let share = (stages as u128 * self.stage as u128 * a.weight as u128 / total as u128)
                .min(i64::MAX as u128) as i64;
            // Credit is capped at one balance period's allocation (but never below one
            // stage's), so an idle spell does not turn into a burst.
            let one_stage = (self.stage as u128 * a.weight as u128 / total as u128) as i64;
            let cap = (self.period as i128 * a.weight as i128 / total as i128) as i64;
            a.credit = a.credit.saturating_add(share).min(cap.max(one_stage));
        }
    }

    /// How many stages until some runnable tenant has credit.
    fn stages_until_credit(&self, tenants: &TenantTable) -> Option<u64> {
        let total: u64 = self
            .accounts
            .values()
            .filter(|a| a.active)
            .map(|a| a.weight)
            .sum();
        self.accounts
            .iter()
            .filter(|(id, a)| a.active && tenants.runnable(**id))
            .map(|(_, a)| {
                let share = (self.stage * a.weight / total.max(1)).max(1) as i64;
                (a.credit.max(0) - a.credit) as u64 / share as u64 + 1
            })
            .min()
    }

    fn catch_up(&mut self, now: Nanos) {
        if now < self.next_stage_at {
            return;
        }
        let stages = (now - self.next_stage_at) / self.stage + 1;
        self.credit_stages(stages);
        self.next_stage_at += stages * self.stage;
    }
}

impl Policy for Weighted {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Weighted
    }

    fn join(&mut self, tenant: &Tenant, _now: Nanos) {
        self.ring.push(tenant.id);
        self.accounts.entry(tenant.id).or_default().weight = tenant.spec.weight.into();
    }

    fn leave(&mut self, id: TenantId) {
        self.ring.remove(id);
        self.accounts.remove(&id);
    }

    fn wake(&mut self, tenant: &Tenant, _now: Nanos) {
        if let Some(a) = self.accounts.get_mut(&tenant.id) {
            a.active = true;
        }
    }

    fn sleep(&mut self, id: TenantId, _now: Nanos) {
        if let Some(a) = self.accounts.get_mut(&id) {
            // Debt stays; credit is not hoarded while idle.
            a.active = false;
            a.credit = a.credit.min(0);
        }
    }

    fn pick(&mut self, tenants: &TenantTable, now: Nanos) -> Pick {
        self.catch_up(now);
        // At most twice: if nobody runnable has credit, credit the stages it takes at once.
        for _ in 0..2 {
            let accounts = &self.accounts;
            let chosen = self.ring.next_where(|id| {
                tenants.runnable(id) && accounts.get(&id).is_some_and(|a| a.credit > 0)
            });
            if let Some(tenant) = chosen {
                let credit = self.accounts[&tenant].credit;
                return Pick::Run {
                    tenant,
                    budget: credit.min(self.slice) as Nanos,
                };
            }
            match self.stages_until_credit(tenants) {
                Some(stages) => self.credit_stages(stages),
                None => return Pick::Idle,
            }
        }
        tracing::error!("weighted: no tenant has credit after crediting early stages");
        Pick::Idle
    }

    fn charge(&mut self, id: TenantId, used: Nanos, _now: Nanos) {
        let floor = -self.period;
        if let Some(a) = self.accounts.get_mut(&id) {
            a.credit = (a.credit - used as i64).max(floor);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, run, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::TenantSpec;

    fn shares(weights: &[u32], job: &dyn Fn(TenantId) -> Nanos) -> Vec<f64> {
        let specs: Vec<_> = weights
            .iter()
            .map(|&w| TenantSpec::new("t").weight(w))
            .collect();
        let t = table(&specs);
        let mut p = Weighted::new(&Params::default());
        join_all(&mut p, &t);
        let used = run(&mut p, &t, job, 5000 * MS);
        let total: Nanos = used.iter().sum();
        used.iter().map(|&u| u as f64 / total as f64).collect()
    }

    #[test]
    fn time_follows_weights() {
        let s = shares(&[3, 7], &|_| MS / 2);
        assert!((s[0] - 0.3).abs() < 0.01, "{s:?}");
        let s = shares(&[1, 9], &|_| MS);
        assert!((s[0] - 0.1).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn long_kernels_pay_their_debt() {
        // Weight 1 with 15 ms kernels against weight 1 with 0.25 ms jobs: still 50/50.
        let s = shares(&[1, 1], &|id| if id.0 == 0 { 15 * MS } else { MS / 4 });
        assert!((s[0] - 0.5).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn stages_credit_by_weight() {
        let t = table(&[
            TenantSpec::new("a").weight(1),
            TenantSpec::new("b").weight(3),
        ]);
        let mut p = Weighted::new(&Params::default());
        join_all(&mut p, &t);
        // The first stage is credited at 10 ms: 2.5 ms and 7.5 ms.
        let _ = p.pick(&t, 10 * MS);
        let (a, b) = (
            p.credit(TenantId(0)).unwrap(),
            p.credit(TenantId(1)).unwrap(),
        );
        assert_eq!((a, b), (2_500_000, 7_500_000));
    }
}
