//! The scheduler's notion of time, injected so that every policy runs deterministically in tests.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Instant;

/// Nanoseconds since the clock's epoch.
pub type Nanos = u64;

/// One millisecond in [`Nanos`].
pub const MS: Nanos = 1_000_000;

/// A source of monotonic time.
pub trait Clock: Send {
    fn now(&self) -> Nanos;
}

/// Simulated time, moved only by whoever drives the simulation. Clones share one time line, so
/// the executor that advances it and the scheduler that reads it agree.
#[derive(Debug, Clone, Default)]
pub struct SimClock {
    now: Arc<AtomicU64>,
}

impl SimClock {
    pub fn new() -> Self {
        Self::default()
    }

    /// Moves time to `t`; time never goes backwards, so an earlier `t` is ignored.
    pub fn set(&self, t: Nanos) {
        self.now.fetch_max(t, Ordering::Relaxed);
    }

    pub fn advance(&self, by: Nanos) {
        self.now.fetch_add(by, Ordering::Relaxed);
    }
}

impl Clock for SimClock {
    fn now(&self) -> Nanos {
        self.now.load(Ordering::Relaxed)
    }
}

/// Wall-clock monotonic time since construction, for real executors.
#[derive(Debug, Clone, Copy)]
pub struct MonotonicClock {
    epoch: Instant,
}

impl MonotonicClock {
    pub fn new() -> Self {
        Self {
            epoch: Instant::now(),
        }
    }
}

impl Default for MonotonicClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for MonotonicClock {
    fn now(&self) -> Nanos {
        self.epoch.elapsed().as_nanos() as Nanos
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sim_clock_is_shared_and_monotonic() {
        let a = SimClock::new();
        let b = a.clone();
        a.set(5 * MS);
        assert_eq!(b.now(), 5 * MS);
        a.set(MS);
        assert_eq!(b.now(), 5 * MS, "time must not go backwards");
        b.advance(MS);
        assert_eq!(a.now(), 6 * MS);
    }

    #[test]
    fn monotonic_clock_advances() {
        let c = MonotonicClock::new();
        let t0 = c.now();
        std::thread::sleep(std::time::Duration::from_millis(2));
        assert!(c.now() >= t0 + MS);
    }
}
