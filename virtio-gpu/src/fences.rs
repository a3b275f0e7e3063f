//! Fenced control commands waiting for their fence.
//!
//! A command with VIRTIO_GPU_FLAG_FENCE is executed at once, but its response is held here and
//! written (and the chain marked used) only once the backend reports its fence signalled. Each
//! timeline (the global one, or one ring of one context) completes strictly in submission order:
//! Linux signals every fence up to the id in a response, so completing a later fence early would
//! signal unfinished work.

use std::collections::{HashMap, VecDeque};

use gpu_interface::FenceTimeline;

use crate::chain::ResponseBuffer;

/// A response waiting for its fence.
#[derive(Debug)]
pub struct PendingResponse {
    pub head: u16,
    pub buffer: ResponseBuffer,
    pub response: Vec<u8>,
}

#[derive(Debug)]
struct Entry {
    fence_id: u64,
    signalled: bool,
    pending: PendingResponse,
}

/// The most responses held at once; past it, new fenced commands complete immediately.
pub const MAX_PENDING: usize = 4096;

#[derive(Debug, Default)]
pub struct FenceQueue {
    timelines: HashMap<FenceTimeline, VecDeque<Entry>>,
    count: usize,
}

impl FenceQueue {
    pub fn is_full(&self) -> bool {
        self.count >= MAX_PENDING
    }

    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// Holds `pending` until fence `fence_id` of `timeline` signals (or at once, when
    /// `signalled`, still behind earlier fences of the timeline).
    pub fn push(
        &mut self,
        timeline: FenceTimeline,
        fence_id: u64,
        signalled: bool,
        pending: PendingResponse,
    ) {
        self.timelines
            .entry(timeline)
            .or_default()
            .push_back(Entry {
                fence_id,
                signalled,
                pending,
            });
        self.count += 1;
    }

    /// The backend signalled `fence_id` on `timeline`: it and every earlier fence there are done.
    pub fn signal(&mut self, timeline: FenceTimeline, fence_id: u64) {
        let Some(queue) = self.timelines.get_mut(&timeline) else {
            return;
        };
        let Some(pos) = queue
            .iter()
            .position(|e| e.fence_id == fence_id && !e.signalled)
        else {
            return;
        };
        for e in queue.iter_mut().take(pos + 1) {
            e.signalled = true;
        }
    }

    /// Responses now ready, in order per timeline.
    pub fn take_ready(&mut self) -> Vec<PendingResponse> {
        let mut ready = Vec::new();
        for queue in self.timelines.values_mut() {
            while queue.front().is_some_and(|e| e.signalled) {
                if let Some(e) = queue.pop_front() {
                    ready.push(e.pending);
                }
            }
        }
        self.timelines.retain(|_, q| !q.is_empty());
        self.count = self.count.saturating_sub(ready.len());
        ready
    }

    /// Drops every pending response (device reset).
    pub fn clear(&mut self) {
        self.timelines.clear();
        self.count = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(head: u16) -> PendingResponse {
        PendingResponse {
            head,
            buffer: ResponseBuffer::default(),
            response: vec![],
        }
    }

    #[test]
    fn completes_in_order_per_timeline() {
        let mut q = FenceQueue::default();
        let r0 = FenceTimeline::Ring {
            ctx_id: 1,
            ring_idx: 0,
        };
        let r1 = FenceTimeline::Ring {
            ctx_id: 1,
            ring_idx: 1,
        };
        q.push(r0, 1, false, pending(1));
        q.push(r0, 2, false, pending(2));
        q.push(r1, 3, false, pending(3));
        q.push(r0, 4, true, pending(4));
        q.signal(r0, 2);
        let heads: Vec<u16> = q.take_ready().iter().map(|p| p.head).collect();
        assert_eq!(heads, vec![1, 2, 4]);
        assert!(!q.is_empty());
        q.signal(r0, 3); // wrong timeline: nothing
        assert!(q.take_ready().is_empty());
        q.signal(r1, 3);
        assert_eq!(q.take_ready().len(), 1);
        assert!(q.is_empty());
    }
}
