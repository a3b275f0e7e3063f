//! Per-timeline fence bookkeeping shared by the software and Vulkan backends.
//!
//! Each ring has a `busy_until` instant that DELAY_US commands push forward; a fence gets the
//! deadline its timeline had when it was created (the global timeline waits for every ring) and,
//! optionally, a backend marker such as a timeline-semaphore value. It signals once its deadline
//! has passed and the backend says the marker is reached. Per timeline, deadlines never decrease
//! (and markers are expected to grow), so fences signal in creation order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use gpu_interface::FenceTimeline;

/// A pending fence: its id, its backend marker and its deadline.
#[derive(Debug, Clone, Copy)]
struct Pending<M> {
    id: u64,
    marker: M,
    deadline: Instant,
}

#[derive(Debug)]
struct Timeline<M> {
    busy_until: Option<Instant>,
    /// Oldest first.
    pending: VecDeque<Pending<M>>,
}

impl<M> Default for Timeline<M> {
    fn default() -> Self {
        Self {
            busy_until: None,
            pending: VecDeque::new(),
        }
    }
}

/// The fence timelines of one backend; `M` is what else a fence waits for (`()` for nothing).
#[derive(Debug)]
pub struct Timelines<M = ()> {
    timelines: HashMap<FenceTimeline, Timeline<M>>,
}

impl<M> Default for Timelines<M> {
    fn default() -> Self {
        Self {
            timelines: HashMap::new(),
        }
    }
}

impl<M: Copy> Timelines<M> {
    /// Keeps `timeline` busy for `delay` more after what was already queued on it.
    pub fn add_work(&mut self, timeline: FenceTimeline, delay: Duration) {
        let now = Instant::now();
        let t = self.timelines.entry(timeline).or_default();
        let start = t.busy_until.map_or(now, |b| b.max(now));
        t.busy_until = Some(start.checked_add(delay).unwrap_or(start));
    }

    /// DELAY_US: keeps `timeline` busy for `us` more microseconds.
    pub fn delay_us(&mut self, timeline: FenceTimeline, us: u32) {
        self.add_work(timeline, Duration::from_micros(u64::from(us)));
    }

    /// Queues fence `id` on `timeline`, also waiting for `marker`. The global timeline waits
    /// for every ring.
    pub fn create_fence(&mut self, timeline: FenceTimeline, id: u64, marker: M) {
        let now = Instant::now();
        let deadline = match timeline {
            FenceTimeline::Global => self
                .timelines
                .values()
                .filter_map(|t| t.busy_until)
                .fold(now, Instant::max),
            ring => self
                .timelines
                .get(&ring)
                .and_then(|t| t.busy_until)
                .unwrap_or(now),
        };
        let t = self.timelines.entry(timeline).or_default();
        // Never earlier than a fence already queued on this timeline.
        let deadline = t
            .pending
            .back()
            .map_or(deadline, |p| p.deadline.max(deadline));
        t.busy_until = Some(t.busy_until.map_or(deadline, |b| b.max(deadline)));
        t.pending.push_back(Pending {
            id,
            marker,
            deadline,
        });
    }

    /// Fences whose deadline has passed and whose marker is `reached`, in order per timeline.
    pub fn poll(&mut self, reached: impl Fn(M) -> bool) -> Vec<(FenceTimeline, u64)> {
        let now = Instant::now();
        let mut done = Vec::new();
        for (timeline, t) in &mut self.timelines {
            while let Some(p) = t.pending.front() {
                if p.deadline > now || !reached(p.marker) {
                    break;
                }
                done.push((*timeline, p.id));
                t.pending.pop_front();
            }
        }
        done
    }

    /// Whether any fence is still pending.
    pub fn busy(&self) -> bool {
        self.timelines.values().any(|t| !t.pending.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RING: FenceTimeline = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 0,
    };

    #[test]
    fn delay_holds_later_fences_and_global_waits_for_rings() {
        let mut t = Timelines::<()>::default();
        t.create_fence(RING, 1, ());
        t.add_work(RING, Duration::from_millis(30));
        t.create_fence(RING, 2, ());
        t.create_fence(FenceTimeline::Global, 3, ());
        assert!(t.busy());
        assert_eq!(t.poll(|()| true), vec![(RING, 1)]);
        std::thread::sleep(Duration::from_millis(40));
        let mut rest = t.poll(|()| true);
        rest.sort();
        assert_eq!(rest, vec![(FenceTimeline::Global, 3), (RING, 2)]);
        assert!(!t.busy());
    }

    #[test]
    fn unreached_marker_holds_the_rest_of_its_timeline() {
        let mut t = Timelines::<u64>::default();
        t.create_fence(RING, 1, 5);
        t.create_fence(RING, 2, 1);
        assert!(t.poll(|v| v <= 4).is_empty(), "fence 1 blocks fence 2");
        assert_eq!(t.poll(|v| v <= 5), vec![(RING, 1), (RING, 2)]);
    }
}
