//! Fair (CFS-like, as the DRM fair scheduler): each tenant's virtual runtime grows by the device
//! time it uses divided by its effective weight (weight x priority scale); the runnable tenant
//! with the least virtual runtime runs next, for one slice. A tenant that wakes up is placed no
//! further back than the queue's minimum less one slice, so sleeping earns little.

use std::collections::{BTreeSet, HashMap};

use super::{Pick, Policy, PolicyKind};
use crate::clock::Nanos;
use crate::params::Params;
use crate::tenant::{Tenant, TenantId, TenantTable};

/// Virtual time is kept in units of ns x this / effective weight, so weights divide exactly.
const VT_SCALE: u128 = 1 << 16;

#[derive(Debug)]
struct Entity {
    vruntime: u64,
    weight: u64,
    queued: bool,
}

#[derive(Debug)]
pub struct Fair {
    slice: Nanos,
    entities: HashMap<TenantId, Entity>,
    /// Active tenants by virtual runtime.
    timeline: BTreeSet<(u64, TenantId)>,
    min_vruntime: u64,
}

impl Fair {
    pub fn new(params: &Params) -> Self {
        Self {
            slice: params.slice,
            entities: HashMap::new(),
            timeline: BTreeSet::new(),
            min_vruntime: 0,
        }
    }

    pub fn vruntime(&self, id: TenantId) -> Option<u64> {
        self.entities.get(&id).map(|e| e.vruntime)
    }

    fn scaled(&self, ns: Nanos, weight: u64) -> u64 {
        (ns as u128 * VT_SCALE / weight.max(1) as u128).min(u64::MAX as u128) as u64
    }

    fn update_min(&mut self) {
        if let Some(&(v, _)) = self.timeline.first() {
            self.min_vruntime = self.min_vruntime.max(v);
        }
    }

    fn enqueue(&mut self, id: TenantId) {
        if let Some(e) = self.entities.get_mut(&id) {
            if !e.queued {
                e.queued = true;
                self.timeline.insert((e.vruntime, id));
            }
        }
    }

    fn dequeue(&mut self, id: TenantId) {
        if let Some(e) = self.entities.get_mut(&id) {
            if e.queued {
                e.queued = false;
                self.timeline.remove(&(e.vruntime, id));
            }
        }
    }

    /// Places a (re)starting tenant near the front of the timeline, not before it.
    fn place(&mut self, id: TenantId) {
        let floor = self.min_vruntime.saturating_sub(
            self.scaled(self.slice, self.entities.get(&id).map_or(1, |e| e.weight)),
        );
        if let Some(e) = self.entities.get_mut(&id) {
            e.vruntime = e.vruntime.max(floor);
        }
    }
}

impl Policy for Fair {
    fn kind(&self) -> PolicyKind {
        PolicyKind::Fair
    }

    fn join(&mut self, tenant: &Tenant, _now: Nanos) {
        self.entities.entry(tenant.id).or_insert(Entity {
            vruntime: self.min_vruntime,
            weight: tenant.effective_weight(),
            queued: false,
        });
        if tenant.active() {
            self.place(tenant.id);
            self.enqueue(tenant.id);
        }
    }

    fn leave(&mut self, id: TenantId) {
        self.dequeue(id);
        self.entities.remove(&id);
    }

    fn wake(&mut self, tenant: &Tenant, _now: Nanos) {
        self.place(tenant.id);
        self.enqueue(tenant.id);
    }

    fn sleep(&mut self, id: TenantId, _now: Nanos) {
        self.dequeue(id);
    }

    fn pick(&mut self, tenants: &TenantTable, _now: Nanos) -> Pick {
        self.update_min();
        // At pick time active means runnable; the check guards against a stale entry.
        match self.timeline.iter().find(|(_, id)| tenants.runnable(*id)) {
            Some(&(_, tenant)) => Pick::Run {
                tenant,
                budget: self.slice,
            },
            None => Pick::Idle,
        }
    }

    fn charge(&mut self, id: TenantId, used: Nanos, _now: Nanos) {
        let Some(e) = self.entities.get(&id) else {
            return;
        };
        let (queued, delta) = (e.queued, self.scaled(used, e.weight));
        self.dequeue(id);
        if let Some(e) = self.entities.get_mut(&id) {
            e.vruntime = e.vruntime.saturating_add(delta);
        }
        if queued {
            self.enqueue(id);
        }
        self.update_min();
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_util::{join_all, run, table};
    use super::*;
    use crate::clock::MS;
    use crate::tenant::{Priority, TenantSpec};

    fn shares(specs: &[TenantSpec], job: &dyn Fn(TenantId) -> Nanos) -> Vec<f64> {
        let t = table(specs);
        let mut p = Fair::new(&Params::default());
        join_all(&mut p, &t);
        let used = run(&mut p, &t, job, 3000 * MS);
        let total: Nanos = used.iter().sum();
        used.iter().map(|&u| u as f64 / total as f64).collect()
    }

    #[test]
    fn least_vruntime_runs_next() {
        let t = table(&[TenantSpec::new("a"), TenantSpec::new("b")]);
        let mut p = Fair::new(&Params::default());
        join_all(&mut p, &t);
        p.charge(TenantId(0), 3 * MS, 0);
        assert!(matches!(
            p.pick(&t, 0),
            Pick::Run {
                tenant: TenantId(1),
                ..
            }
        ));
        p.charge(TenantId(1), 4 * MS, 0);
        assert!(matches!(
            p.pick(&t, 0),
            Pick::Run {
                tenant: TenantId(0),
                ..
            }
        ));
    }

    #[test]
    fn weights_and_priorities_scale_time() {
        let s = shares(
            &[
                TenantSpec::new("a").weight(1),
                TenantSpec::new("b").weight(9),
            ],
            &|_| MS,
        );
        assert!((s[0] - 0.1).abs() < 0.01, "{s:?}");
        let s = shares(
            &[
                TenantSpec::new("lo").priority(Priority::Low),
                TenantSpec::new("hi").priority(Priority::High),
            ],
            &|_| MS / 2,
        );
        assert!((s[0] - 0.2).abs() < 0.01, "{s:?}");
    }

    #[test]
    fn long_kernels_do_not_buy_extra_time() {
        let s = shares(
            &[TenantSpec::new("long"), TenantSpec::new("short")],
            &|id| if id.0 == 0 { 20 * MS } else { MS / 4 },
        );
        assert!((s[0] - 0.5).abs() < 0.02, "{s:?}");
    }

    #[test]
    fn sleeper_does_not_bank_time() {
        let t = table(&[TenantSpec::new("a"), TenantSpec::new("b")]);
        let mut p = Fair::new(&Params::default());
        join_all(&mut p, &t);
        p.sleep(TenantId(1), 0);
        for _ in 0..100 {
            p.charge(TenantId(0), 2 * MS, 0);
        }
        let _ = p.pick(&t, 0);
        p.wake(t.get(TenantId(1)).unwrap(), 0);
        // b is placed one slice before a, not 200 ms before it.
        let (a, b) = (
            p.vruntime(TenantId(0)).unwrap(),
            p.vruntime(TenantId(1)).unwrap(),
        );
        assert_eq!(a - b, p.scaled(2 * MS, 2));
    }
}
