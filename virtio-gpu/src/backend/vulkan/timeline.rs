//! Fence timelines of the Vulkan backend.
//!
//! A fence signals once the GPU has passed its marker on the timeline semaphore (all work
//! submitted before it is done) and once the ring's DELAY_US time, as it stood when the fence was
//! created, has elapsed. Per timeline both only grow, so fences signal in creation order; the
//! global timeline waits for every ring.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use gpu_interface::FenceTimeline;

/// A pending fence: its id, its timeline-semaphore value and its deadline.
#[derive(Debug, Clone, Copy)]
struct Pending {
    id: u64,
    value: u64,
    deadline: Instant,
}

#[derive(Debug, Default)]
struct Timeline {
    busy_until: Option<Instant>,
    pending: VecDeque<Pending>,
}

#[derive(Debug, Default)]
pub struct Timelines {
    timelines: HashMap<FenceTimeline, Timeline>,
}

impl Timelines {
    /// Keeps `timeline` busy for `delay` more after what was already queued on it.
    pub fn add_work(&mut self, timeline: FenceTimeline, delay: Duration) {
        let now = Instant::now();
        let t = self.timelines.entry(timeline).or_default();
        let start = t.busy_until.map_or(now, |b| b.max(now));
        t.busy_until = Some(start.checked_add(delay).unwrap_or(start));
    }

    /// Queues fence `id`, which the GPU signals by reaching `value`, on `timeline`.
    pub fn create_fence(&mut self, timeline: FenceTimeline, id: u64, value: u64) {
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
        let deadline = t
            .pending
            .back()
            .map_or(deadline, |p| p.deadline.max(deadline));
        t.busy_until = Some(t.busy_until.map_or(deadline, |b| b.max(deadline)));
        t.pending.push_back(Pending {
            id,
            value,
            deadline,
        });
    }

    /// Fences the GPU has passed (`completed` is the semaphore value) whose deadline has passed,
    /// in order per timeline.
    pub fn poll(&mut self, completed: u64) -> Vec<(FenceTimeline, u64)> {
        let now = Instant::now();
        let mut done = Vec::new();
        for (timeline, t) in &mut self.timelines {
            while let Some(p) = t.pending.front() {
                if p.value > completed || p.deadline > now {
                    break;
                }
                done.push((*timeline, p.id));
                t.pending.pop_front();
            }
        }
        done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fences_wait_for_gpu_value_and_delay() {
        let ring = FenceTimeline::Ring {
            ctx_id: 1,
            ring_idx: 0,
        };
        let mut t = Timelines::default();
        t.create_fence(ring, 1, 1);
        t.add_work(ring, Duration::from_millis(30));
        t.create_fence(ring, 2, 2);
        t.create_fence(FenceTimeline::Global, 3, 3);
        assert!(t.poll(0).is_empty(), "GPU has not reached any marker");
        assert_eq!(
            t.poll(3),
            vec![(ring, 1)],
            "the delayed ring holds fences 2 and 3"
        );
        std::thread::sleep(Duration::from_millis(40));
        let mut rest = t.poll(3);
        rest.sort();
        assert_eq!(rest, vec![(FenceTimeline::Global, 3), (ring, 2)]);
    }
}
