//! The scheduler: owns the tenants and their queues, the slice in progress and the watchdog,
//! and asks the current policy who runs next. The policy can be switched at run time; tenants
//! and their queued jobs stay.

use crate::clock::{Clock, Nanos};
use crate::params::{Params, ParamsError};
use crate::policy::{Pick, Policy, PolicyKind};
use crate::tenant::{
    JobId, QueuedJob, Tenant, TenantId, TenantSpec, TenantTable, MAX_WEIGHT, MIN_WEIGHT,
};

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SchedError {
    #[error("no tenant {0:?}")]
    UnknownTenant(TenantId),
    #[error("weight {0} is outside {MIN_WEIGHT}-{MAX_WEIGHT}")]
    Weight(u32),
    #[error("share {0}% is outside 1-100%")]
    Share(u32),
    #[error("job {0:?} is not the one on the device")]
    NotRunning(JobId),
    #[error(transparent)]
    Params(#[from] ParamsError),
}

/// What the executor should do now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Put this job on the device.
    Run(Dispatch),
    /// Nothing to run until `Some(t)` (or until new work arrives).
    Idle { until: Option<Nanos> },
    /// A job is on the device already; jobs are not preempted.
    Busy,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dispatch {
    pub tenant: TenantId,
    pub job: JobId,
    pub submitted_at: Nanos,
    /// The device changes context for this job (another tenant ran last).
    pub switch: bool,
}

/// A job that ran past the watchdog timeout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchdogEvent {
    pub tenant: TenantId,
    pub job: JobId,
    pub ran: Nanos,
    /// Extra device time charged to the tenant as a penalty.
    pub penalty: Nanos,
}

#[derive(Debug, Clone, Copy)]
struct Slice {
    tenant: TenantId,
    left: i64,
}

#[derive(Debug, Clone, Copy)]
struct Running {
    tenant: TenantId,
    job: JobId,
    started: Nanos,
}

pub struct Scheduler<C: Clock> {
    clock: C,
    params: Params,
    tenants: TenantTable,
    policy: Box<dyn Policy>,
    slice: Option<Slice>,
    running: Option<Running>,
    last_tenant: Option<TenantId>,
    next_tenant: u32,
    next_job: u64,
    watchdog: Vec<WatchdogEvent>,
    /// Every overrun, also those past the ones kept in `watchdog`.
    watchdog_total: u64,
}

/// Overrun reports kept: a scheduler serving for months must not grow without bound.
const MAX_WATCHDOG_EVENTS: usize = 4096;

impl<C: Clock> Scheduler<C> {
    pub fn new(clock: C, params: Params, policy: PolicyKind) -> Result<Self, SchedError> {
        params.validate()?;
        let policy = policy.build(&params);
        Ok(Self {
            clock,
            params,
            tenants: TenantTable::default(),
            policy,
            slice: None,
            running: None,
            last_tenant: None,
            next_tenant: 0,
            next_job: 0,
            watchdog: Vec::new(),
            watchdog_total: 0,
        })
    }

    pub fn params(&self) -> &Params {
        &self.params
    }

    pub fn policy(&self) -> PolicyKind {
        self.policy.kind()
    }

    pub fn tenants(&self) -> &TenantTable {
        &self.tenants
    }

    pub fn now(&self) -> Nanos {
        self.clock.now()
    }

    /// Watchdog reports so far (the first 4096).
    pub fn watchdog_events(&self) -> &[WatchdogEvent] {
        &self.watchdog
    }

    /// How many jobs overran the watchdog timeout so far.
    pub fn watchdog_total(&self) -> u64 {
        self.watchdog_total
    }

    /// Switches policy without touching tenants or queues. The slice in progress ends; the
    /// job on the device (if any) finishes and is charged to the new policy.
    pub fn set_policy(&mut self, kind: PolicyKind) {
        let now = self.clock.now();
        let mut policy = kind.build(&self.params);
        for t in self.tenants.iter() {
            policy.join(t, now);
            if t.active() {
                policy.wake(t, now);
            }
        }
        tracing::info!(from = %self.policy.kind(), to = %kind, "scheduler policy switched");
        self.policy = policy;
        self.slice = None;
    }

    pub fn add_tenant(&mut self, spec: TenantSpec) -> Result<TenantId, SchedError> {
        if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&spec.weight) {
            return Err(SchedError::Weight(spec.weight));
        }
        if let Some(pct) = spec.share_pct.filter(|p| !(1..=100).contains(p)) {
            return Err(SchedError::Share(pct));
        }
        let id = TenantId(self.next_tenant);
        self.next_tenant += 1;
        let tenant = Tenant::new(id, spec);
        self.policy.join(&tenant, self.clock.now());
        self.tenants.push(tenant);
        tracing::debug!(?id, "tenant joined");
        Ok(id)
    }

    /// Changes a tenant's weight. Weight-aware policies keep per-tenant accounts built from
    /// the weights, so the policy's state is rebuilt as a policy switch rebuilds it.
    pub fn set_weight(&mut self, id: TenantId, weight: u32) -> Result<(), SchedError> {
        if !(MIN_WEIGHT..=MAX_WEIGHT).contains(&weight) {
            return Err(SchedError::Weight(weight));
        }
        let t = self
            .tenants
            .get_mut(id)
            .ok_or(SchedError::UnknownTenant(id))?;
        t.spec.weight = weight;
        self.set_policy(self.policy.kind());
        Ok(())
    }

    /// Removes a tenant and drops its queued jobs (returned). A job of it still on the device
    /// completes first; the tenant is gone once it does.
    pub fn remove_tenant(&mut self, id: TenantId) -> Result<Vec<JobId>, SchedError> {
        let t = self
            .tenants
            .get_mut(id)
            .ok_or(SchedError::UnknownTenant(id))?;
        let dropped = t.queue.drain(..).map(|j| j.id).collect();
        self.policy.leave(id);
        if self.slice.is_some_and(|s| s.tenant == id) {
            self.slice = None;
        }
        if t.running {
            t.leaving = true;
        } else {
            self.tenants.remove(id);
        }
        tracing::debug!(?id, "tenant left");
        Ok(dropped)
    }

    /// Queues a job for `id`.
    pub fn submit(&mut self, id: TenantId) -> Result<JobId, SchedError> {
        let now = self.clock.now();
        let job = JobId(self.next_job);
        let t = self
            .tenants
            .get_mut(id)
            .ok_or(SchedError::UnknownTenant(id))?;
        if t.leaving {
            return Err(SchedError::UnknownTenant(id));
        }
        self.next_job += 1;
        let was_active = t.active();
        t.expected_until = None;
        if let Some(since) = t.idle_since.take() {
            let gap = now.saturating_sub(since);
            t.think_time = Some(t.think_time.map_or(gap, |m| (m * 7 + gap) / 8));
        }
        if t.queue.is_empty() && !t.running {
            t.head_ready_at = Some(now);
        }
        t.queue.push_back(QueuedJob {
            id: job,
            submitted_at: now,
        });
        if !was_active {
            self.policy.wake(t, now);
        }
        Ok(job)
    }

    /// Decides what the device does next. The slice in progress continues while its tenant
    /// has work and budget and the policy does not want the device for someone else.
    pub fn decide(&mut self) -> Decision {
        if self.running.is_some() {
            return Decision::Busy;
        }
        let now = self.clock.now();
        self.expire_expectations(now);
        if let Some(s) = self.slice {
            let go_on = s.left > 0
                && self.tenants.runnable(s.tenant)
                && !self.policy.preempt(s.tenant, &self.tenants, now);
            if go_on {
                return self.dispatch_or_wait(s.tenant, now);
            }
            self.slice = None;
        }
        match self.policy.pick(&self.tenants, now) {
            Pick::Run { tenant, budget } if self.tenants.runnable(tenant) => {
                self.slice = Some(Slice {
                    tenant,
                    left: budget as i64,
                });
                self.dispatch_or_wait(tenant, now)
            }
            Pick::Run { tenant, .. } => {
                tracing::error!(?tenant, policy = %self.policy.kind(), "policy picked a tenant with no work");
                Decision::Idle { until: None }
            }
            Pick::IdleUntil(t) => Decision::Idle { until: Some(t) },
            Pick::Idle => Decision::Idle { until: None },
        }
    }

    /// Tenants whose expected job did not come in time sleep now, as they would have at their
    /// last completion.
    fn expire_expectations(&mut self, now: Nanos) {
        let expired: Vec<TenantId> = self
            .tenants
            .iter()
            .filter(|t| t.expected_until.is_some_and(|u| u <= now))
            .map(|t| t.id)
            .collect();
        for id in expired {
            if let Some(t) = self.tenants.get_mut(id) {
                t.expected_until = None;
            }
            self.policy.sleep(id, now);
        }
    }

    /// Dispatches the tenant's next job, or holds the device for it while it is expected.
    fn dispatch_or_wait(&mut self, tenant: TenantId, now: Nanos) -> Decision {
        match self
            .tenants
            .get(tenant)
            .and_then(|t| t.queue.is_empty().then_some(t.expected_until).flatten())
        {
            Some(until) => Decision::Idle { until: Some(until) },
            None => Decision::Run(self.dispatch(tenant, now)),
        }
    }

    fn dispatch(&mut self, tenant: TenantId, now: Nanos) -> Dispatch {
        let t = self
            .tenants
            .get_mut(tenant)
            .expect("dispatch is only called for runnable tenants");
        let job = t.queue.pop_front().expect("runnable tenants have a job");
        t.running = true;
        self.running = Some(Running {
            tenant,
            job: job.id,
            started: now,
        });
        let switch = self.last_tenant != Some(tenant);
        self.last_tenant = Some(tenant);
        Dispatch {
            tenant,
            job: job.id,
            submitted_at: job.submitted_at,
            switch,
        }
    }

    /// The job on the device finished after using `device_time`. Charges it (plus a penalty if
    /// it overran the watchdog timeout, which is then reported).
    pub fn complete(
        &mut self,
        job: JobId,
        device_time: Nanos,
    ) -> Result<Option<WatchdogEvent>, SchedError> {
        let r = match self.running {
            Some(r) if r.job == job => r,
            _ => return Err(SchedError::NotRunning(job)),
        };
        self.running = None;
        let now = self.clock.now();
        let mut event = None;
        let mut charged = device_time;
        if device_time > self.params.watchdog_timeout {
            let penalty = (device_time - self.params.watchdog_timeout)
                * u64::from(self.params.watchdog_penalty);
            charged += penalty;
            let e = WatchdogEvent {
                tenant: r.tenant,
                job,
                ran: device_time,
                penalty,
            };
            tracing::warn!(tenant = ?r.tenant, ?job, ran_ms = device_time as f64 / 1e6, "job overran the watchdog timeout; tenant penalised");
            if self.watchdog.len() < MAX_WATCHDOG_EVENTS {
                self.watchdog.push(e);
            }
            self.watchdog_total += 1;
            event = Some(e);
        }
        if let Some(s) = self.slice.as_mut().filter(|s| s.tenant == r.tenant) {
            s.left -= device_time as i64;
        }
        let t = self
            .tenants
            .get_mut(r.tenant)
            .expect("the running tenant stays until its job completes");
        t.running = false;
        t.used += device_time;
        t.jobs_done += 1;
        if event.is_some() {
            t.watchdog_strikes += 1;
        }
        if t.leaving {
            self.tenants.remove(r.tenant);
            return Ok(event);
        }
        t.head_ready_at = (!t.queue.is_empty()).then_some(now);
        let idle = t.queue.is_empty();
        // Waited for: a tenant that has not shown it thinks longer than the anticipation.
        let anticipate = self.params.anticipation > 0
            && t.think_time.is_none_or(|m| m < self.params.anticipation);
        if idle {
            t.idle_since = Some(now);
        }
        if idle && anticipate {
            t.expected_until = Some(now + self.params.anticipation);
        }
        self.policy.charge(r.tenant, charged, now);
        if idle && !anticipate {
            self.policy.sleep(r.tenant, now);
        }
        Ok(event)
    }

    /// The job on the device and how long it has run, if it is past the watchdog timeout: a
    /// real executor polls this to report a hung job before it completes.
    pub fn overdue(&self) -> Option<(TenantId, JobId, Nanos)> {
        let r = self.running?;
        let ran = self.clock.now().saturating_sub(r.started);
        (ran > self.params.watchdog_timeout).then_some((r.tenant, r.job, ran))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{SimClock, MS};

    fn sched(kind: PolicyKind) -> (SimClock, Scheduler<SimClock>) {
        let clock = SimClock::new();
        let s = Scheduler::new(clock.clone(), Params::default(), kind).unwrap();
        (clock, s)
    }

    fn run_job(clock: &SimClock, s: &mut Scheduler<SimClock>, len: Nanos) -> Dispatch {
        let Decision::Run(d) = s.decide() else {
            panic!("expected a job to run")
        };
        assert_eq!(s.decide(), Decision::Busy);
        clock.advance(len);
        s.complete(d.job, len).unwrap();
        d
    }

    /// Two closed-loop tenants (one job at a time, each submitted `think` after the last one
    /// completed, as real applications do), weights 1:3: b's share of the device.
    fn closed_loop_share(kind: PolicyKind, anticipation: Nanos) -> f64 {
        let clock = SimClock::new();
        let params = Params {
            anticipation,
            ..Params::default()
        };
        let mut s = Scheduler::new(clock.clone(), params, kind).unwrap();
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        let b = s.add_tenant(TenantSpec::new("b").weight(3)).unwrap();
        let (job, think) = (MS, MS / 20);
        let mut next = [Some(0), Some(0)];
        let submit_due = |s: &mut Scheduler<SimClock>, next: &mut [Option<Nanos>; 2]| {
            for (i, id) in [a, b].into_iter().enumerate() {
                if next[i].is_some_and(|t| t <= clock.now()) {
                    s.submit(id).unwrap();
                    next[i] = None;
                }
            }
        };
        while clock.now() < 2000 * MS {
            submit_due(&mut s, &mut next);
            match s.decide() {
                Decision::Run(d) => {
                    // Submissions due while the job runs arrive while it runs.
                    let end = clock.now() + job;
                    while let Some(t) = next.iter().flatten().copied().filter(|&t| t < end).min() {
                        clock.set(t.max(clock.now()));
                        submit_due(&mut s, &mut next);
                    }
                    clock.set(end);
                    s.complete(d.job, job).unwrap();
                    next[d.tenant.0 as usize] = Some(clock.now() + think);
                }
                Decision::Idle { until } => {
                    let wake = next.iter().flatten().chain(until.iter()).min().copied();
                    clock.set(wake.expect("a closed loop always has a next event"));
                }
                Decision::Busy => unreachable!("jobs complete before the next decision"),
            }
        }
        let used = |id| s.tenants().get(id).unwrap().used as f64;
        used(b) / (used(a) + used(b))
    }

    #[test]
    fn anticipation_lets_closed_loop_tenants_follow_their_weights() {
        for kind in [PolicyKind::Weighted, PolicyKind::Fair] {
            // Work-conserving: every completion hands the device over, so shares alternate.
            let plain = closed_loop_share(kind, 0);
            assert!((plain - 0.5).abs() < 0.02, "{kind}: {plain}");
            let anticipated = closed_loop_share(kind, MS / 2);
            assert!((anticipated - 0.75).abs() < 0.03, "{kind}: {anticipated}");
        }
    }

    #[test]
    fn a_tenant_that_thinks_longer_than_the_anticipation_is_not_waited_for() {
        let clock = SimClock::new();
        let params = Params {
            anticipation: MS,
            ..Params::default()
        };
        let mut s = Scheduler::new(clock.clone(), params, PolicyKind::Fair).unwrap();
        let ui = s.add_tenant(TenantSpec::new("ui")).unwrap();
        for _ in 0..4 {
            s.submit(ui).unwrap();
            run_job(&clock, &mut s, MS);
            clock.advance(9 * MS);
        }
        s.submit(ui).unwrap();
        run_job(&clock, &mut s, MS);
        assert_eq!(
            s.tenants().get(ui).unwrap().expected_until(),
            None,
            "9 ms thinker"
        );
    }

    #[test]
    fn an_expected_tenant_that_stays_silent_gives_the_device_up() {
        let clock = SimClock::new();
        let params = Params {
            anticipation: MS / 2,
            ..Params::default()
        };
        let mut s = Scheduler::new(clock.clone(), params, PolicyKind::Fair).unwrap();
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        let b = s.add_tenant(TenantSpec::new("b")).unwrap();
        s.submit(a).unwrap();
        let d = run_job(&clock, &mut s, MS / 4);
        assert_eq!(d.tenant, a);
        s.submit(b).unwrap();
        // a's slice goes on: the device waits for a, not longer than the anticipation.
        assert_eq!(
            s.decide(),
            Decision::Idle {
                until: Some(clock.now() + MS / 2)
            }
        );
        clock.advance(MS / 2);
        assert_eq!(run_job(&clock, &mut s, MS / 4).tenant, b);
        assert_eq!(s.tenants().get(a).unwrap().expected_until(), None);
        assert!(Params {
            anticipation: 3 * MS,
            ..Params::default()
        }
        .validate()
        .is_err());
    }

    #[test]
    fn slice_spans_jobs_until_budget_is_spent() {
        let (clock, mut s) = sched(PolicyKind::BestEffort);
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        let b = s.add_tenant(TenantSpec::new("b")).unwrap();
        for _ in 0..4 {
            s.submit(a).unwrap();
            s.submit(b).unwrap();
        }
        // 2 ms slice, 0.8 ms jobs: a runs three jobs (the third ends past the slice), then b.
        let order: Vec<_> = (0..6).map(|_| run_job(&clock, &mut s, 800_000)).collect();
        let tenants: Vec<_> = order.iter().map(|d| d.tenant).collect();
        assert_eq!(tenants, vec![a, a, a, b, b, b]);
        let switches: Vec<_> = order.iter().map(|d| d.switch).collect();
        assert_eq!(switches, vec![true, false, false, true, false, false]);
    }

    #[test]
    fn watchdog_reports_and_penalises_overruns() {
        let (clock, mut s) = sched(PolicyKind::Fair);
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        let b = s.add_tenant(TenantSpec::new("b")).unwrap();
        s.submit(a).unwrap();
        s.submit(b).unwrap();
        let Decision::Run(d) = s.decide() else {
            panic!()
        };
        clock.advance(150 * MS);
        assert_eq!(s.overdue().map(|o| o.0), Some(d.tenant));
        let e = s
            .complete(d.job, 150 * MS)
            .unwrap()
            .expect("watchdog event");
        assert_eq!((e.ran, e.penalty), (150 * MS, 50 * MS));
        assert_eq!(s.watchdog_events().len(), 1);
        assert_eq!(s.tenants().get(d.tenant).unwrap().watchdog_strikes, 1);
        // The other tenant is owed 200 ms (150 used + 50 penalty): it runs many jobs first.
        let other = if d.tenant == a { b } else { a };
        for _ in 0..60 {
            s.submit(other).unwrap();
            assert_eq!(run_job(&clock, &mut s, 3 * MS).tenant, other);
        }
    }

    #[test]
    fn policy_switch_keeps_tenants_and_queues() {
        let (clock, mut s) = sched(PolicyKind::BestEffort);
        let a = s.add_tenant(TenantSpec::new("a").weight(1)).unwrap();
        let b = s.add_tenant(TenantSpec::new("b").weight(3)).unwrap();
        for _ in 0..400 {
            s.submit(a).unwrap();
            s.submit(b).unwrap();
        }
        s.set_policy(PolicyKind::Weighted);
        assert_eq!(s.policy(), PolicyKind::Weighted);
        let mut used = [0u64; 2];
        for _ in 0..400 {
            let d = run_job(&clock, &mut s, MS);
            used[d.tenant.0 as usize] += MS;
        }
        assert_eq!(used[0] + used[1], 400 * MS);
        assert!(
            (used[1] as f64 / used[0] as f64 - 3.0).abs() < 0.2,
            "{used:?}"
        );
    }

    #[test]
    fn leaving_tenant_finishes_its_job_and_loses_its_queue() {
        let (clock, mut s) = sched(PolicyKind::EqualShare);
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        s.submit(a).unwrap();
        s.submit(a).unwrap();
        let Decision::Run(d) = s.decide() else {
            panic!()
        };
        assert_eq!(s.remove_tenant(a).unwrap().len(), 1);
        assert_eq!(s.submit(a), Err(SchedError::UnknownTenant(a)));
        clock.advance(MS);
        s.complete(d.job, MS).unwrap();
        assert!(s.tenants().is_empty());
        assert_eq!(s.decide(), Decision::Idle { until: None });
    }

    #[test]
    fn bad_input_is_rejected() {
        let (_, mut s) = sched(PolicyKind::Weighted);
        assert_eq!(
            s.add_tenant(TenantSpec::new("x").weight(0)),
            Err(SchedError::Weight(0))
        );
        assert_eq!(
            s.add_tenant(TenantSpec::new("x").weight(17)),
            Err(SchedError::Weight(17))
        );
        assert_eq!(
            s.add_tenant(TenantSpec::new("x").share(101)),
            Err(SchedError::Share(101))
        );
        assert_eq!(
            s.add_tenant(TenantSpec::new("x").share(0)),
            Err(SchedError::Share(0))
        );
        assert_eq!(
            s.submit(TenantId(9)),
            Err(SchedError::UnknownTenant(TenantId(9)))
        );
        assert_eq!(
            s.complete(JobId(3), 1),
            Err(SchedError::NotRunning(JobId(3)))
        );
        let bad = Params::default().with_slice(40 * MS);
        assert!(Scheduler::new(SimClock::new(), bad, PolicyKind::Fair).is_err());
    }

    #[test]
    fn fixed_share_idles_with_work_queued() {
        let (clock, mut s) = sched(PolicyKind::FixedShare);
        let a = s.add_tenant(TenantSpec::new("a")).unwrap();
        for _ in 0..10 {
            s.submit(a).unwrap();
        }
        run_job(&clock, &mut s, 2 * MS);
        // 1 of 8 instances: 2 ms per 16 ms period.
        assert_eq!(
            s.decide(),
            Decision::Idle {
                until: Some(16 * MS)
            }
        );
        clock.set(16 * MS);
        assert!(matches!(s.decide(), Decision::Run(_)));
    }
}
