//! Fence timelines of the software backend.
//!
//! Commands run at submit time, but a ring stays "busy" for the DELAY_US its commands asked for:
//! each ring has a `busy_until` instant and a fence signals once that instant (as it was when the
//! fence was created) has passed. Per timeline, deadlines never decrease, so fences signal in
//! creation order.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use gpu_interface::FenceTimeline;

#[derive(Debug, Default)]
struct Timeline {
    busy_until: Option<Instant>,
    /// (fence id, deadline), oldest first.
    pending: VecDeque<(u64, Instant)>,
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

    /// Queues fence `id` on `timeline`. The global timeline waits for every ring.
    pub fn create_fence(&mut self, timeline: FenceTimeline, id: u64) {
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
        let deadline = t.pending.back().map_or(deadline, |&(_, d)| d.max(deadline));
        t.busy_until = Some(t.busy_until.map_or(deadline, |b| b.max(deadline)));
        t.pending.push_back((id, deadline));
    }

    /// Fences whose deadline has passed, in order per timeline.
    pub fn poll(&mut self) -> Vec<(FenceTimeline, u64)> {
        let now = Instant::now();
        let mut done = Vec::new();
        for (timeline, t) in &mut self.timelines {
            while let Some(&(id, deadline)) = t.pending.front() {
                if deadline > now {
                    break;
                }
                t.pending.pop_front();
                done.push((*timeline, id));
            }
        }
        done
    }

    /// Whether any fence is still pending.
    pub fn busy(&self) -> bool {
        self.timelines.values().any(|t| !t.pending.is_empty())
    }
}
