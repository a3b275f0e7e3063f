//! The scheduler on real time, gating real submissions: each slice's renderer thread calls
//! [`SubmitGate::enter`] before it submits to the host GPU and [`SubmitGate::leave`] when the
//! job has completed, so one job is on the device at a time and the policy decides whose. The
//! state sits behind one mutex; a waiting thread sleeps on a condition variable until its job
//! is dispatched (by whichever thread asked the scheduler), or until an idle deadline passes.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Condvar, Mutex, MutexGuard},
    time::Duration,
};

use gpu_interface::{GateTicket, SubmitGate};

use crate::{
    clock::{MonotonicClock, Nanos},
    metrics::JobRecord,
    params::Params,
    policy::PolicyKind,
    scheduler::{Decision, SchedError, Scheduler},
    tenant::{JobId, TenantId, TenantSpec},
};

/// Shares are measured over this window.
const WINDOW: Nanos = 1_000_000_000;

/// A ticket for a tenant the scheduler no longer knows: the job runs ungated.
const UNGATED: u64 = u64::MAX;

struct State {
    sched: Scheduler<MonotonicClock>,
    /// Jobs dispatched whose thread has not yet picked its turn up.
    granted: HashSet<JobId>,
    /// Recent completions: (when, tenant, device time), for the measured shares.
    recent: VecDeque<(Nanos, TenantId, Nanos)>,
    /// Jobs entered and not yet left: (tenant, entered, dispatched).
    open: HashMap<JobId, (TenantId, Nanos, Option<Nanos>)>,
    record: Recording,
}

/// What the run looked like, for `vgpu bench slices` (the metrics of `bench sched`).
#[derive(Debug, Clone, Default)]
pub struct Recording {
    /// Jobs as they ran; `tenant` is the tenant id's number.
    pub jobs: Vec<JobRecord>,
    pub pick_ns: Vec<u32>,
    pub switches: u64,
    /// Jobs that overran the watchdog timeout.
    pub watchdog_events: usize,
}

/// Recording stops here (hours of jobs): the gate must not grow without bound.
const MAX_RECORDED: usize = 1 << 20;

pub struct LiveScheduler {
    state: Mutex<State>,
    turn: Condvar,
}

/// One tenant as `vgpu slices list` shows it.
#[derive(Debug, Clone)]
pub struct TenantStats {
    pub name: String,
    pub weight: u32,
    pub share_pct: Option<u32>,
    /// The share the policy aims at among the tenants busy in the last second.
    pub target: f64,
    /// The share of device time it got in the last second.
    pub measured: f64,
    pub used_ns: Nanos,
    pub jobs: u64,
    pub queued: usize,
}

impl LiveScheduler {
    pub fn new(params: Params, policy: PolicyKind) -> Result<Arc<Self>, SchedError> {
        let sched = Scheduler::new(MonotonicClock::new(), params, policy)?;
        Ok(Arc::new(Self {
            state: Mutex::new(State {
                sched,
                granted: HashSet::new(),
                recent: VecDeque::new(),
                open: HashMap::new(),
                record: Recording::default(),
            }),
            turn: Condvar::new(),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn add_tenant(&self, spec: TenantSpec) -> Result<TenantId, SchedError> {
        self.lock().sched.add_tenant(spec)
    }

    /// Removes a tenant; a thread still waiting at its gate goes on ungated.
    pub fn remove_tenant(&self, tenant: TenantId) -> Result<(), SchedError> {
        self.lock().sched.remove_tenant(tenant)?;
        self.turn.notify_all();
        Ok(())
    }

    /// The gate a tenant's renderer submits through.
    pub fn gate(self: &Arc<Self>, tenant: TenantId) -> Arc<dyn SubmitGate> {
        Arc::new(TenantGate {
            live: self.clone(),
            tenant,
        })
    }

    pub fn policy(&self) -> PolicyKind {
        self.lock().sched.policy()
    }

    pub fn set_policy(&self, kind: PolicyKind) {
        self.lock().sched.set_policy(kind);
        self.turn.notify_all();
    }

    pub fn set_weight(&self, tenant: TenantId, weight: u32) -> Result<(), SchedError> {
        self.lock().sched.set_weight(tenant, weight)?;
        self.turn.notify_all();
        Ok(())
    }

    /// The jobs, decisions and switches so far, on the scheduler's clock ([`Self::now`]).
    pub fn recording(&self) -> Recording {
        let s = self.lock();
        Recording {
            watchdog_events: s.sched.watchdog_total() as usize,
            ..s.record.clone()
        }
    }

    /// The scheduler's clock: nanoseconds since it started.
    pub fn now(&self) -> Nanos {
        self.lock().sched.now()
    }

    /// Every tenant's figures, in the order they joined.
    pub fn stats(&self) -> Vec<TenantStats> {
        let mut s = self.lock();
        let now = s.sched.now();
        prune(&mut s.recent, now);
        let policy = s.sched.policy();
        let max_instances = s.sched.params().max_instances;
        let used_in_window =
            |id: TenantId| -> Nanos { s.recent.iter().filter(|r| r.1 == id).map(|r| r.2).sum() };
        let total: Nanos = s.recent.iter().map(|r| r.2).sum();
        let tenants: Vec<_> = s.sched.tenants().iter().collect();
        let busy: Vec<bool> = tenants
            .iter()
            .map(|t| t.active() || used_in_window(t.id) > 0)
            .collect();
        let busy_weight: u64 = tenants
            .iter()
            .zip(&busy)
            .filter(|(_, b)| **b)
            .map(|(t, _)| t.effective_weight())
            .sum();
        let busy_count = busy.iter().filter(|b| **b).count().max(1);
        tenants
            .iter()
            .zip(&busy)
            .map(|(t, &busy)| {
                let target = match policy {
                    _ if !busy => 0.0,
                    PolicyKind::FixedShare => {
                        f64::from(t.spec.share_pct.unwrap_or(100 / max_instances)) / 100.0
                    }
                    p if p.honours_weights() => {
                        t.effective_weight() as f64 / busy_weight.max(1) as f64
                    }
                    _ => 1.0 / busy_count as f64,
                };
                TenantStats {
                    name: t.spec.name.clone(),
                    weight: t.spec.weight,
                    share_pct: t.spec.share_pct,
                    target,
                    measured: used_in_window(t.id) as f64 / total.max(1) as f64,
                    used_ns: t.used,
                    jobs: t.jobs_done,
                    queued: t.queued(),
                }
            })
            .collect()
    }

    /// Blocks until `tenant`'s next job may run.
    fn enter(&self, tenant: TenantId) -> GateTicket {
        let mut s = self.lock();
        let job = match s.sched.submit(tenant) {
            Ok(job) => job,
            Err(e) => {
                tracing::warn!(?tenant, "slice gate: {e}; submitting ungated");
                return GateTicket(UNGATED);
            }
        };
        let entered = s.sched.now();
        s.open.insert(job, (tenant, entered, None));
        loop {
            if s.granted.remove(&job) {
                return GateTicket(job.0);
            }
            if s.sched.tenants().get(tenant).is_none() {
                s.open.remove(&job);
                return GateTicket(UNGATED);
            }
            let picking = std::time::Instant::now();
            let decision = s.sched.decide();
            if s.record.pick_ns.len() < MAX_RECORDED {
                let took = picking.elapsed().as_nanos().min(u32::MAX as u128) as u32;
                s.record.pick_ns.push(took);
            }
            match decision {
                Decision::Run(d) => {
                    s.granted.insert(d.job);
                    let now = s.sched.now();
                    if let Some(o) = s.open.get_mut(&d.job) {
                        o.2 = Some(now);
                    }
                    s.record.switches += u64::from(d.switch);
                    self.turn.notify_all();
                }
                Decision::Busy | Decision::Idle { until: None } => {
                    s = self.turn.wait(s).unwrap_or_else(|p| p.into_inner());
                }
                Decision::Idle { until: Some(t) } => {
                    let wait = Duration::from_nanos(t.saturating_sub(s.sched.now()).max(1));
                    s = self
                        .turn
                        .wait_timeout(s, wait)
                        .unwrap_or_else(|p| p.into_inner())
                        .0;
                }
            }
        }
    }

    fn leave(&self, tenant: TenantId, ticket: GateTicket, device_ns: Nanos) {
        if ticket.0 == UNGATED {
            return;
        }
        let mut s = self.lock();
        if let Err(e) = s.sched.complete(JobId(ticket.0), device_ns) {
            tracing::warn!(?tenant, "slice gate: {e}");
        }
        let now = s.sched.now();
        s.recent.push_back((now, tenant, device_ns));
        prune(&mut s.recent, now);
        if let Some((t, entered, Some(dispatched))) = s.open.remove(&JobId(ticket.0)) {
            if s.record.jobs.len() < MAX_RECORDED {
                s.record.jobs.push(JobRecord {
                    tenant: t.0 as usize,
                    submitted: entered,
                    dispatched,
                    start: dispatched,
                    end: now.max(dispatched),
                    useful: device_ns,
                });
            }
        }
        drop(s);
        self.turn.notify_all();
    }
}

fn prune(recent: &mut VecDeque<(Nanos, TenantId, Nanos)>, now: Nanos) {
    while recent.front().is_some_and(|r| r.0 + WINDOW < now) {
        recent.pop_front();
    }
}

struct TenantGate {
    live: Arc<LiveScheduler>,
    tenant: TenantId,
}

impl SubmitGate for TenantGate {
    fn enter(&self) -> GateTicket {
        self.live.enter(self.tenant)
    }

    fn leave(&self, ticket: GateTicket, device_ns: u64) {
        self.live.leave(self.tenant, ticket, device_ns)
    }
}

#[cfg(test)]
mod tests {
    use std::{
        sync::atomic::{AtomicBool, AtomicUsize, Ordering},
        time::Instant,
    };

    use super::*;
    use crate::clock::MS;

    /// Closed-loop tenants on threads for 1.5 s, each "job" a sleep of `job` holding the gate.
    fn run_threads(gates: &[Arc<dyn SubmitGate>], job: Duration) {
        let stop = Arc::new(AtomicBool::new(false));
        let on_device = Arc::new(AtomicUsize::new(0));
        let threads: Vec<_> = gates
            .iter()
            .map(|g| {
                let (g, stop, on_device) = (g.clone(), stop.clone(), on_device.clone());
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let t = g.enter();
                        let start = Instant::now();
                        assert_eq!(
                            on_device.fetch_add(1, Ordering::SeqCst),
                            0,
                            "one job at a time"
                        );
                        std::thread::sleep(job);
                        on_device.fetch_sub(1, Ordering::SeqCst);
                        g.leave(t, start.elapsed().as_nanos() as u64);
                    }
                })
            })
            .collect();
        std::thread::sleep(Duration::from_millis(1500));
        stop.store(true, Ordering::Relaxed);
        for t in threads {
            t.join().unwrap();
        }
    }

    #[test]
    fn threads_through_the_gate_share_by_weight_and_one_at_a_time() {
        let params = Params {
            anticipation: MS,
            ..Params::default()
        };
        let live = LiveScheduler::new(params, PolicyKind::Weighted).unwrap();
        let a = live.add_tenant(TenantSpec::new("a")).unwrap();
        let b = live.add_tenant(TenantSpec::new("b").weight(3)).unwrap();
        let gates = [live.gate(a), live.gate(b)];
        run_threads(&gates, Duration::from_micros(500));
        let stats = live.stats();
        let used: Vec<f64> = stats.iter().map(|t| t.used_ns as f64).collect();
        let share_b = used[1] / (used[0] + used[1]);
        // Sleeps are coarse on a loaded machine: a loose bound here; the venus test measures
        // real jobs to 5%.
        assert!((share_b - 0.75).abs() < 0.08, "b got {share_b:.3}");
        assert!((stats[1].target - 0.75).abs() < 1e-9);
        assert!(stats.iter().all(|t| t.jobs > 50), "{stats:?}");
        let rec = live.recording();
        let jobs: u64 = stats.iter().map(|t| t.jobs).sum();
        assert_eq!(rec.jobs.len() as u64, jobs, "every job recorded");
        assert!(rec
            .jobs
            .windows(2)
            .all(|w| w[0].end <= w[1].dispatched + 1_000_000));
        assert!(rec.switches > 2 && rec.pick_ns.len() as u64 >= jobs);
    }

    #[test]
    fn a_tenant_the_scheduler_dropped_runs_ungated_and_leaving_twice_is_harmless() {
        let live = LiveScheduler::new(Params::default(), PolicyKind::Fair).unwrap();
        let a = live.add_tenant(TenantSpec::new("a")).unwrap();
        let gate = live.gate(a);
        let t = gate.enter();
        gate.leave(t, 1000);
        gate.leave(t, 1000);
        assert_eq!(live.stats()[0].jobs, 1);
        live.lock().sched.remove_tenant(a).unwrap();
        let t = gate.enter();
        assert_eq!(t, GateTicket(UNGATED));
        gate.leave(t, 5);
        assert!(live.set_weight(a, 2).is_err());
    }
}
