//! The Vulkan executor: tenants submit compute dispatches to the host GPU (lavapipe here)
//! through ash, the scheduler gates submissions (one job on the device at a time, as a
//! non-preemptible GPU context would run), and each job's device time comes from timestamp
//! queries. Time is real: the scheduler runs on the monotonic clock.

pub mod device;
pub mod shader;

use std::time::{Duration, Instant};

pub use device::DeviceError;
use device::{Context, Gpu};

use super::{Population, TenantPlan};
use crate::clock::{Clock, MonotonicClock, Nanos, MS};
use crate::metrics::{JobRecord, RunTrace};
use crate::params::Params;
use crate::policy::PolicyKind;
use crate::scheduler::{Decision, SchedError, Scheduler};
use crate::tenant::JobId;

#[derive(Debug, thiserror::Error)]
pub enum VulkanError {
    #[error(transparent)]
    Device(#[from] DeviceError),
    #[error("scheduler: {0}")]
    Sched(#[from] SchedError),
    #[error(
        "calibration: the kernel's time does not grow with its loop count ({0:.3} ns per step)"
    )]
    Calibration(f64),
}

/// Maps a wanted job length to a loop count, fitted from timed runs of the kernel.
#[derive(Debug, Clone, Copy)]
pub struct Calibration {
    pub fixed_ns: f64,
    pub ns_per_iteration: f64,
}

impl Calibration {
    pub fn iterations_for(&self, ns: Nanos) -> u32 {
        ((ns as f64 - self.fixed_ns).max(0.0) / self.ns_per_iteration).round() as u32
    }
}

pub struct VulkanExecutor {
    gpu: Gpu,
    calibration: Calibration,
}

struct InFlight {
    job: JobId,
    ctx: usize,
    record: JobRecord,
    warned: bool,
}

impl VulkanExecutor {
    /// Opens the first Vulkan device with a compute queue and timestamps, and calibrates the
    /// kernel on it.
    pub fn new() -> Result<Self, VulkanError> {
        let gpu = Gpu::new()?;
        let calibration = calibrate(&gpu)?;
        tracing::info!(
            fixed_us = calibration.fixed_ns / 1e3,
            ns_per_iteration = calibration.ns_per_iteration,
            "kernel calibrated"
        );
        Ok(Self { gpu, calibration })
    }

    pub fn device_name(&self) -> &str {
        self.gpu.name()
    }

    pub fn calibration(&self) -> Calibration {
        self.calibration
    }

    /// Runs one job of about `ns` alone on the device; returns its measured device time.
    pub fn time_one(&self, ns: Nanos) -> Result<Nanos, VulkanError> {
        let ctx = self.gpu.context()?;
        let r = time_job(&self.gpu, &ctx, self.calibration.iterations_for(ns));
        self.gpu.destroy_context(ctx);
        Ok(r?)
    }

    /// Runs the tenants for `duration` of real time under `policy`.
    pub fn run(
        &mut self,
        params: &Params,
        policy: PolicyKind,
        plans: &[TenantPlan],
        duration: Nanos,
        seed: u64,
    ) -> Result<RunTrace, VulkanError> {
        let mut contexts = Vec::with_capacity(plans.len());
        for _ in plans {
            match self.gpu.context() {
                Ok(c) => contexts.push(c),
                Err(e) => {
                    contexts
                        .into_iter()
                        .for_each(|c| self.gpu.destroy_context(c));
                    return Err(e.into());
                }
            }
        }
        let result = self.run_with(&contexts, params, policy, plans, duration, seed);
        for c in contexts {
            self.gpu.destroy_context(c);
        }
        result
    }

    fn run_with(
        &self,
        contexts: &[Context],
        params: &Params,
        policy: PolicyKind,
        plans: &[TenantPlan],
        duration: Nanos,
        seed: u64,
    ) -> Result<RunTrace, VulkanError> {
        let clock = MonotonicClock::new();
        let mut sched = Scheduler::new(clock, params.clone(), policy)?;
        let mut pop = Population::new(plans, seed, policy, duration);
        let mut device: Option<InFlight> = None;
        loop {
            let now = clock.now();
            if now >= duration {
                break;
            }
            pop.advance(&mut sched, now)?;
            if let Some(f) = device.as_mut() {
                // Wake for the next arrival so that it is submitted on time.
                let wait = pop
                    .next_event()
                    .map_or(MS, |t| t.saturating_sub(now))
                    .min(MS);
                let Some(gpu_ns) = self.gpu.poll(&contexts[f.ctx], wait)? else {
                    if let (Some((tenant, job, ran)), false) = (sched.overdue(), f.warned) {
                        tracing::warn!(
                            ?tenant,
                            ?job,
                            ran_ms = ran as f64 / 1e6,
                            "job still running past the watchdog timeout"
                        );
                        f.warned = true;
                    }
                    continue;
                };
                let end = clock.now();
                let mut record = f.record;
                record.useful = gpu_ns.min(end - record.dispatched);
                record.start = end - record.useful;
                record.end = end;
                if sched.complete(f.job, gpu_ns)?.is_some() {
                    pop.trace.watchdog_events += 1;
                }
                device = None;
                pop.completed(&mut sched, record, end)?;
                continue;
            }
            let t0 = Instant::now();
            let decision = sched.decide();
            pop.trace
                .pick_ns
                .push(t0.elapsed().as_nanos().min(u32::MAX as u128) as u32);
            match decision {
                Decision::Run(d) => {
                    let (len, tenant) = pop.take(&d);
                    pop.trace.switches += u64::from(d.switch);
                    let iterations = self.calibration.iterations_for(len);
                    self.gpu
                        .submit(&contexts[tenant], iterations, d.job.0 as u32)?;
                    device = Some(InFlight {
                        job: d.job,
                        ctx: tenant,
                        record: JobRecord {
                            tenant,
                            submitted: d.submitted_at,
                            dispatched: now,
                            start: now,
                            end: now,
                            useful: 0,
                        },
                        warned: false,
                    });
                }
                Decision::Idle { until } => {
                    let wake = [until, pop.next_event(), Some(now + MS)]
                        .into_iter()
                        .flatten()
                        .min()
                        .unwrap_or(now + MS)
                        .min(duration);
                    std::thread::sleep(Duration::from_nanos(wake.saturating_sub(now)));
                }
                Decision::Busy => {}
            }
        }
        // The job in flight at the end is not counted; wait for it so contexts can go.
        if let Some(f) = device {
            self.gpu.poll(&contexts[f.ctx], u64::MAX)?;
        }
        Ok(pop.finish(duration))
    }
}

fn time_job(gpu: &Gpu, ctx: &Context, iterations: u32) -> Result<Nanos, DeviceError> {
    gpu.submit(ctx, iterations, 1)?;
    loop {
        if let Some(ns) = gpu.poll(ctx, 100 * MS)? {
            return Ok(ns);
        }
    }
}

/// Fits device time = fixed + per-iteration x loop count from the median of a few runs at two
/// loop counts.
fn calibrate(gpu: &Gpu) -> Result<Calibration, VulkanError> {
    let ctx = gpu.context()?;
    let result = (|| {
        let median = |iterations: u32| -> Result<f64, DeviceError> {
            let mut v = (0..5)
                .map(|_| time_job(gpu, &ctx, iterations).map(|t| t as f64))
                .collect::<Result<Vec<_>, _>>()?;
            v.sort_by(f64::total_cmp);
            Ok(v[2])
        };
        let _ = median(1_000)?; // warm up: first dispatches compile and page in
        let (lo, hi) = (2_000u32, 40_000u32);
        let mut per = 0.0;
        // The second point should take a few ms; scale it once if the device is very fast.
        let mut hi = hi;
        let (mut t_lo, mut t_hi) = (median(lo)?, 0.0);
        for _ in 0..4 {
            t_hi = median(hi)?;
            per = (t_hi - t_lo) / f64::from(hi - lo);
            if t_hi >= 2e6 || hi >= 1 << 30 {
                break;
            }
            hi = hi.saturating_mul(((3e6 / t_hi.max(1e4)).ceil() as u32).clamp(2, 64));
            t_lo = median(lo)?;
        }
        if per <= 0.0 || !per.is_finite() {
            return Err(VulkanError::Calibration(per));
        }
        let fixed = (t_lo - per * f64::from(lo)).max(0.0);
        tracing::debug!(t_lo, t_hi, hi, "calibration points");
        Ok(Calibration {
            fixed_ns: fixed,
            ns_per_iteration: per,
        })
    })();
    gpu.destroy_context(ctx);
    result
}
