//! Fence timelines of the Vulkan backend.
//!
//! A fence signals once the GPU has passed its marker on the timeline semaphore (all work
//! submitted before it is done) and once the ring's DELAY_US time, as it stood when the fence was
//! created, has elapsed (see [`crate::backend::fence_timeline`]).

/// Vulkan fences also wait for their timeline-semaphore value.
pub type Timelines = crate::backend::fence_timeline::Timelines<u64>;

#[cfg(test)]
mod tests {
    use super::*;
    use gpu_interface::FenceTimeline;
    use std::time::Duration;

    #[test]
    fn fences_wait_for_gpu_value_and_delay() {
        let ring = FenceTimeline::Ring {
            ctx_id: 1,
            ring_idx: 0,
        };
        let upto = |completed: u64| move |value: u64| value <= completed;
        let mut t = Timelines::default();
        t.create_fence(ring, 1, 1);
        t.add_work(ring, Duration::from_millis(30));
        t.create_fence(ring, 2, 2);
        t.create_fence(FenceTimeline::Global, 3, 3);
        assert!(t.poll(upto(0)).is_empty(), "GPU has not reached any marker");
        assert_eq!(
            t.poll(upto(3)),
            vec![(ring, 1)],
            "the delayed ring holds fences 2 and 3"
        );
        std::thread::sleep(Duration::from_millis(40));
        let mut rest = t.poll(upto(3));
        rest.sort();
        assert_eq!(rest, vec![(FenceTimeline::Global, 3), (ring, 2)]);
    }
}
