//! Workload generators: when tenants submit jobs and how long each job runs. The same drivers
//! feed the simulated and the Vulkan executors.

use crate::clock::{Nanos, MS};

/// A small deterministic generator (SplitMix64): runs repeat exactly for a given seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// How long jobs run on the device (exclusively).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum JobLength {
    Fixed(Nanos),
    Uniform(Nanos, Nanos),
    /// Exponential with this mean, clipped to 10x the mean.
    Exponential(Nanos),
}

impl JobLength {
    pub fn sample(&self, rng: &mut Rng) -> Nanos {
        match *self {
            JobLength::Fixed(n) => n,
            JobLength::Uniform(lo, hi) => lo + ((hi - lo) as f64 * rng.unit()) as Nanos,
            JobLength::Exponential(mean) => {
                let x = -(1.0 - rng.unit()).ln() * mean as f64;
                (x.min(10.0 * mean as f64) as Nanos).max(1)
            }
        }
    }
}

/// When jobs arrive.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Arrival {
    /// Always `depth` jobs outstanding: the tenant would use the whole device.
    Saturating { depth: usize },
    /// One job, then a pause of `think` after it completes (an interactive loop).
    ThinkTime { think: Nanos },
    /// One job every `period` (frame pacing), whether or not the last one finished.
    Periodic { period: Nanos },
    /// Poisson arrivals with this mean gap.
    Poisson { mean_gap: Nanos },
    /// Saturating while on, silent while off.
    OnOff { on: Nanos, off: Nanos },
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Workload {
    pub arrival: Arrival,
    pub length: JobLength,
}

impl Workload {
    /// AI training: long kernels, back to back.
    pub fn training() -> Self {
        Self {
            arrival: Arrival::Saturating { depth: 2 },
            length: JobLength::Uniform(4 * MS, 12 * MS),
        }
    }

    /// Inference: short bursts of small kernels.
    pub fn inference() -> Self {
        Self {
            arrival: Arrival::OnOff {
                on: 150 * MS,
                off: 250 * MS,
            },
            length: JobLength::Exponential(MS / 2),
        }
    }

    /// Graphics: one frame of work every 16.7 ms.
    pub fn graphics() -> Self {
        Self {
            arrival: Arrival::Periodic { period: 16_667_000 },
            length: JobLength::Uniform(3 * MS, 6 * MS),
        }
    }

    /// Adversarial: very long non-preemptible kernels, back to back.
    pub fn adversarial() -> Self {
        Self {
            arrival: Arrival::Saturating { depth: 2 },
            length: JobLength::Fixed(40 * MS),
        }
    }

    /// Interactive: 1 ms of work, then 9 ms of thinking.
    pub fn interactive() -> Self {
        Self {
            arrival: Arrival::ThinkTime { think: 9 * MS },
            length: JobLength::Fixed(MS),
        }
    }

    /// Identical saturating tenants with mixed short kernels.
    pub fn saturating(lo: Nanos, hi: Nanos) -> Self {
        Self {
            arrival: Arrival::Saturating { depth: 2 },
            length: JobLength::Uniform(lo, hi),
        }
    }

    pub fn bursty() -> Self {
        Self {
            arrival: Arrival::OnOff {
                on: 200 * MS,
                off: 300 * MS,
            },
            length: JobLength::Uniform(MS / 2, 2 * MS),
        }
    }
}

/// One tenant's generator state: turns completions and timers into submissions.
#[derive(Debug, Clone)]
pub struct TenantDriver {
    workload: Workload,
    rng: Rng,
    outstanding: usize,
    timer: Option<Nanos>,
    on: bool,
    /// Intervals in which the tenant wanted the whole device (saturating, or an on phase).
    pub saturated: Vec<(Nanos, Nanos)>,
    saturated_since: Option<Nanos>,
}

impl TenantDriver {
    pub fn new(workload: Workload, seed: u64) -> Self {
        Self {
            workload,
            rng: Rng::new(seed),
            outstanding: 0,
            timer: None,
            on: false,
            saturated: Vec::new(),
            saturated_since: None,
        }
    }

    pub fn workload(&self) -> &Workload {
        &self.workload
    }

    /// The tenant joins at `now`: job lengths to submit now.
    pub fn start(&mut self, now: Nanos) -> Vec<Nanos> {
        match self.workload.arrival {
            Arrival::Saturating { .. } => {
                self.saturated_since = Some(now);
                self.fill()
            }
            Arrival::ThinkTime { .. } | Arrival::Periodic { .. } => {
                self.timer = self.next_period(now);
                self.emit(1)
            }
            Arrival::Poisson { mean_gap } => {
                self.timer = Some(now + self.exp(mean_gap));
                Vec::new()
            }
            Arrival::OnOff { on, .. } => {
                self.on = true;
                self.saturated_since = Some(now);
                self.timer = Some(now + on);
                self.fill()
            }
        }
    }

    /// The tenant leaves at `now`.
    pub fn stop(&mut self, now: Nanos) {
        if let Some(since) = self.saturated_since.take() {
            self.saturated.push((since, now));
        }
        self.timer = None;
        self.on = false;
    }

    /// A job of this tenant completed at `now`.
    pub fn completed(&mut self, now: Nanos) -> Vec<Nanos> {
        self.outstanding = self.outstanding.saturating_sub(1);
        match self.workload.arrival {
            Arrival::Saturating { .. } => self.fill(),
            Arrival::OnOff { .. } if self.on => self.fill(),
            Arrival::ThinkTime { think } => {
                self.timer = Some(now + think);
                Vec::new()
            }
            _ => Vec::new(),
        }
    }

    /// The next time [`TenantDriver::timer`] wants to be called.
    pub fn next_timer(&self) -> Option<Nanos> {
        self.timer
    }

    /// Timer expiry at `now`.
    pub fn timer(&mut self, now: Nanos) -> Vec<Nanos> {
        match self.timer {
            Some(t) if t <= now => {}
            _ => return Vec::new(),
        }
        match self.workload.arrival {
            Arrival::Saturating { .. } => {
                self.timer = None;
                Vec::new()
            }
            Arrival::ThinkTime { .. } => {
                self.timer = None;
                self.emit(1)
            }
            Arrival::Periodic { period } => {
                self.timer = self.timer.map(|t| t + period);
                self.emit(1)
            }
            Arrival::Poisson { mean_gap } => {
                self.timer = self.timer.map(|t| t + self.exp(mean_gap));
                self.emit(1)
            }
            Arrival::OnOff { on, off } => {
                let t = self.timer.unwrap_or(now);
                if self.on {
                    self.on = false;
                    if let Some(since) = self.saturated_since.take() {
                        self.saturated.push((since, t));
                    }
                    self.timer = Some(t + off);
                    Vec::new()
                } else {
                    self.on = true;
                    self.saturated_since = Some(t);
                    self.timer = Some(t + on);
                    self.fill()
                }
            }
        }
    }

    fn next_period(&self, now: Nanos) -> Option<Nanos> {
        match self.workload.arrival {
            Arrival::Periodic { period } => Some(now + period),
            _ => None,
        }
    }

    fn exp(&mut self, mean: Nanos) -> Nanos {
        (-(1.0 - self.rng.unit()).ln() * mean as f64) as Nanos + 1
    }

    fn fill(&mut self) -> Vec<Nanos> {
        let depth = match self.workload.arrival {
            Arrival::Saturating { depth } => depth,
            _ => 2,
        };
        let n = depth.saturating_sub(self.outstanding);
        self.emit(n)
    }

    fn emit(&mut self, n: usize) -> Vec<Nanos> {
        self.outstanding += n;
        (0..n)
            .map(|_| self.workload.length.sample(&mut self.rng))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saturating_keeps_depth_outstanding() {
        let mut d = TenantDriver::new(Workload::saturating(MS, MS), 1);
        assert_eq!(d.start(0), vec![MS, MS]);
        assert_eq!(d.completed(MS).len(), 1);
        d.stop(10 * MS);
        assert_eq!(d.saturated, vec![(0, 10 * MS)]);
    }

    #[test]
    fn think_time_waits_after_completion() {
        let mut d = TenantDriver::new(Workload::interactive(), 1);
        assert_eq!(d.start(0), vec![MS]);
        assert!(d.completed(MS).is_empty());
        assert_eq!(d.next_timer(), Some(10 * MS));
        assert!(d.timer(9 * MS).is_empty());
        assert_eq!(d.timer(10 * MS), vec![MS]);
    }

    #[test]
    fn on_off_records_saturated_phases() {
        let mut d = TenantDriver::new(Workload::bursty(), 3);
        assert_eq!(d.start(0).len(), 2);
        assert!(d.timer(200 * MS).is_empty());
        assert!(
            d.completed(201 * MS).is_empty(),
            "off phase submits nothing"
        );
        assert_eq!(d.next_timer(), Some(500 * MS));
        assert!(!d.timer(500 * MS).is_empty());
        assert_eq!(d.saturated, vec![(0, 200 * MS)]);
    }

    #[test]
    fn lengths_follow_their_distribution() {
        let mut rng = Rng::new(7);
        let n = 20_000;
        let mean = (0..n)
            .map(|_| JobLength::Exponential(MS).sample(&mut rng))
            .sum::<Nanos>() as f64
            / n as f64;
        assert!((mean / MS as f64 - 1.0).abs() < 0.05, "mean {mean}");
        let u = JobLength::Uniform(2 * MS, 4 * MS);
        assert!((0..1000).all(|_| (2 * MS..4 * MS).contains(&u.sample(&mut rng))));
    }
}
