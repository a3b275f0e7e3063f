//! Deadline: a latency class for interactive tenants on top of the fair policy. A ready job of
//! an interactive tenant gets a deadline (ready time + `interactive_deadline`); the earliest
//! deadline runs first, at the next job boundary, ending any batch slice early. Each interactive
//! tenant may use `interactive_bandwidth_pct` of every balance period this way (a constant
//! bandwidth server); past that it competes as an ordinary fair tenant until the next period, so
//! a tenant that calls itself interactive cannot starve the others. All device time, latency
//! class included, is charged to the fair accounting.

use std::collections::HashMap;

use super::{Fair, Pick, Policy, PolicyKind};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

#[derive(Debug)]
struct Server {
    budget_left: i64,
    period_start: Nanos,
}

#[derive(Debug)]
pub struct Deadline {
    fair: Fair,
    slice: Nanos,
    relative_deadline: Nanos,
    period: Nanos,
    budget: i64,
    servers: HashMap<TenantId, Server>,
}

impl Deadline {
    pub fn new(params: &Params) -> Self {
        Self {
            fair: Fair::new(params),
            slice: params.slice,
            relative_deadline: params.interactive_deadline,
            period: params.balance_period,
            budget: (params.balance_period * u64::from(params.interactive_bandwidth_pct) / 100)
                as i64,
            servers: HashMap::new(),
        }
    }

    fn refill(&mut self, now: Nanos) {
        for s in self.servers.values_mut() {
            if now >= s.period_start + self.period {
                s.period_start += (now - s.period_start) / self.period * self.period;
                s.budget_left = self.budget;
            }
        }
    }

    /// The interactive tenant with budget whose ready job has the earliest deadline.
    fn earliest(&self, tenants: &TenantTable) -> Option<(Nanos, TenantId)> {
        self.servers
            .iter()
            .filter(|(_, s)| s.budget_left > 0)
            .filter_map(|(&id, _)| {
                let t = tenants.get(id)?;
                let ready = t.head_ready_at().filter(|_| t.runnable())?;
                Some((ready + self.relative_deadline, id))
            })
            .min()
    }
}

impl Policy for Deadline {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Deadline
    }

    fn join(&mut self, tenant: &Tenant, now: Nanos) {
        self.fair.join(tenant, now);
        if tenant.is_interactive() {
            self.servers.insert(
                tenant.id,
                Server {
                    budget_left: self.budget,
                    period_start: now,
                },
            );
        }
    }

    fn leave(&mut self, id: TenantId) {
        self.fair.leave(id);
        self.servers.remove(&id);
    }

    fn wake(&mut self, tenant: &Tenant, now: Nanos) {
        self.fair.wake(tenant, now);
    }

    fn sleep(&mut self, id: TenantId, now: Nanos) {
        self.fair.sleep(id, now);
    }

    fn pick(&mut self, tenants: &TenantTable, now: Nanos) -> Pick {
        self.refill(now);
        if let Some((_, tenant)) = self.earliest(tenants) {
            let left = self.servers[&tenant].budget_left as Nanos;
            return Pick::Run {
                tenant,
                budget: left.min(self.slice),
            };
        }
        self.fair.pick(tenants, now)
    }

    fn charge(&mut self, id: TenantId, used: Nanos, now: Nanos) {
        self.fair.charge(id, used, now);
        if let Some(s) = self.servers.get_mut(&id) {
            s.budget_left -= used as i64;
        }
    }

    fn preempt(&self, running: TenantId, tenants: &TenantTable, _now: Nanos) -> bool {
        match self.earliest(tenants) {
            Some((_, id)) => id != running,
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::TenantSpec;

    #[test]
    fn interactive_tenant_jumps_the_queue_and_preempts_batch_slices() {
        let t = table(&[
            TenantSpec::new("batch"),
            TenantSpec::new("ui").interactive(),
        ]);
        let mut p = Deadline::new(&Params::default());
        join_all(&mut p, &t);
        // The batch tenant has used less, but the interactive one has a deadline.
        p.charge(TenantId(1), 10 * MS, 0);
        assert!(matches!(
            p.pick(&t, 0),
            Pick::Run {
                tenant: TenantId(1),
                ..
            }
        ));
        assert!(p.preempt(TenantId(0), &t, 0));
        assert!(!p.preempt(TenantId(1), &t, 0));
    }

    #[test]
    fn bandwidth_cap_demotes_to_fair_until_the_next_period() {
        let t = table(&[
            TenantSpec::new("batch"),
            TenantSpec::new("ui").interactive(),
        ]);
        let mut p = Deadline::new(&Params::default());
        join_all(&mut p, &t);
        p.charge(TenantId(1), 25 * MS, MS); // its whole 25% of 100 ms
        assert!(!p.preempt(TenantId(0), &t, MS));
        // Now fair decides, and the batch tenant is behind.
        assert!(matches!(
            p.pick(&t, MS),
            Pick::Run {
                tenant: TenantId(0),
                ..
            }
        ));
        // The next period restores the latency class.
        assert!(matches!(
            p.pick(&t, 100 * MS),
            Pick::Run {
                tenant: TenantId(1),
                ..
            }
        ));
    }
}
