//! Queue timelines. Work the driver marks with ring index N > 0 (a vtest batch's syncs; for
//! guests, a virtio-gpu fence on ring N) is done when the GPU has finished what was submitted
//! before it to the queue bound to ring N (VkDeviceQueueTimelineInfoMESA). We submit a fence to
//! that queue and one thread per timeline waits for its fences in order, then runs the
//! completion.

use std::{
    collections::HashMap,
    sync::{mpsc, Arc, Condvar, Mutex},
    thread::JoinHandle,
    time::Duration,
};

use ash::vk::{self, Handle as _};
use tracing::warn;

use crate::context::{Context, RenderError};

/// What runs when a timeline point is reached.
pub type Completion = Box<dyn FnOnce() + Send>;

struct Job {
    device: Arc<ash::Device>,
    fence: vk::Fence,
    done: Completion,
    /// Run `done` after this even if the fence has not signalled yet.
    give_up_after: Option<Duration>,
}

impl Job {
    /// Waits for the fence, destroys it, runs the completion and counts the job done.
    fn finish(self, ring_idx: u32, pending: &(Mutex<usize>, Condvar)) {
        let wait = |limit: Duration| {
            // SAFETY: a fence of this live device (devices are only destroyed after `flush`),
            // submitted once.
            unsafe {
                self.device
                    .wait_for_fences(&[self.fence], true, limit.as_nanos() as u64)
            }
        };
        let mut done = Some(self.done);
        if let Some(limit) = self.give_up_after {
            if wait(limit) == Err(vk::Result::TIMEOUT) {
                warn!("venus: a job is not done after {limit:?}; its turn on the device ends");
                if let Some(d) = done.take() {
                    d();
                }
            }
        }
        while wait(STUCK_AFTER) == Err(vk::Result::TIMEOUT) {
            warn!("venus: timeline {ring_idx} waits on its fence for over 5 s");
        }
        // SAFETY: signalled (or the device lost), and destroyed once.
        unsafe { self.device.destroy_fence(self.fence, None) };
        if let Some(d) = done {
            d();
        }
        let (count, cond) = pending;
        *count.lock().unwrap() -= 1;
        cond.notify_all();
    }
}

struct Timeline {
    jobs: mpsc::Sender<Job>,
    thread: JoinHandle<()>,
}

/// The timelines of one context.
#[derive(Default)]
pub struct Timelines {
    timelines: Mutex<HashMap<u32, Timeline>>,
    /// Fences submitted and not yet waited for and destroyed.
    pending: Arc<(Mutex<usize>, Condvar)>,
}

/// The timeline key of the submit gate's fences (ring indices are below 64).
const GATE_TIMELINE: u32 = u32::MAX;

/// How long a timeline waits on one fence before it says so (and waits on).
const STUCK_AFTER: Duration = Duration::from_secs(5);

impl Timelines {
    fn start(&self, ring_idx: u32) -> mpsc::Sender<Job> {
        let mut t = self.timelines.lock().unwrap();
        if let Some(tl) = t.get(&ring_idx) {
            return tl.jobs.clone();
        }
        let (tx, rx) = mpsc::channel::<Job>();
        let pending = self.pending.clone();
        let thread = std::thread::Builder::new()
            .name(format!("venus-timeline-{ring_idx}"))
            .spawn(move || {
                for job in rx {
                    job.finish(ring_idx, &pending);
                }
            })
            .expect("spawn timeline thread");
        t.insert(
            ring_idx,
            Timeline {
                jobs: tx.clone(),
                thread,
            },
        );
        tx
    }

    /// Hands a submitted fence to the timeline's thread.
    fn push(&self, ring_idx: u32, job: Job) {
        *self.pending.0.lock().unwrap() += 1;
        let jobs = self.start(ring_idx);
        if let Err(mpsc::SendError(job)) = jobs.send(job) {
            // The thread is gone (the context is stopping): wait here instead.
            job.finish(ring_idx, &self.pending);
        }
    }

    /// Runs `done` once `fence` (submitted on `device`) signals, or after `give_up_after` if
    /// that comes first, and destroys the fence once it has signalled. For the submit gate:
    /// its fences are waited for in order on a timeline of their own.
    pub(crate) fn watch(
        &self,
        device: Arc<ash::Device>,
        fence: vk::Fence,
        give_up_after: Duration,
        done: Completion,
    ) {
        let job = Job {
            device,
            fence,
            done,
            give_up_after: Some(give_up_after),
        };
        self.push(GATE_TIMELINE, job);
    }

    /// Waits until every fence submitted so far has been waited for and destroyed (before a
    /// device goes).
    pub fn flush(&self) {
        let (count, cond) = &*self.pending;
        let mut c = count.lock().unwrap();
        while *c > 0 {
            c = cond.wait(c).unwrap();
        }
    }

    /// Ends every timeline thread once its fences are done.
    pub fn stop(&self) {
        let all: Vec<Timeline> = self
            .timelines
            .lock()
            .unwrap()
            .drain()
            .map(|(_, t)| t)
            .collect();
        for t in all {
            drop(t.jobs);
            let _ = t.thread.join();
        }
    }
}

impl Context {
    /// Runs `done` when the work submitted so far to the queue bound to `ring_idx` has finished
    /// on the GPU. A ring index no queue is bound to is the driver's error.
    pub fn submit_fence(&self, ring_idx: u32, done: Completion) -> Result<(), RenderError> {
        let (queue, info) = self.host.queue_for_ring(ring_idx).ok_or_else(|| {
            RenderError::Invalid(format!("no queue is bound to ring index {ring_idx}"))
        })?;
        let device = self.host.device(info.device)?;
        // SAFETY: a valid create info on a live device.
        let fence = unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(|e| RenderError::Invalid(format!("timeline fence: {e}")))?;
        let submitted = {
            let _queue = self.queue_lock.lock().unwrap();
            // SAFETY: an empty submission on a live queue of this device, under the queue lock.
            unsafe { device.queue_submit(vk::Queue::from_raw(queue), &[], fence) }
        };
        if let Err(e) = submitted {
            // SAFETY: the fence was never submitted.
            unsafe { device.destroy_fence(fence, None) };
            return Err(RenderError::Invalid(format!("timeline submit: {e}")));
        }
        self.timelines.push(
            ring_idx,
            Job {
                device,
                fence,
                done,
                give_up_after: None,
            },
        );
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;
    use crate::driver_stream::live_context;

    #[test]
    fn a_timeline_point_completes_after_the_gpu_and_only_on_a_bound_ring() {
        let Some((ctx, _)) = live_context("timeline") else {
            return;
        };
        let (tx, rx) = mpsc::channel();
        for point in 1..=3u32 {
            let tx = tx.clone();
            ctx.submit_fence(1, Box::new(move || tx.send(point).unwrap()))
                .expect("ring 1 has a queue");
        }
        let got: Vec<u32> = (0..3)
            .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("completed"))
            .collect();
        assert_eq!(got, [1, 2, 3], "in submission order");
        let err = ctx.submit_fence(2, Box::new(|| {})).unwrap_err();
        assert!(err.to_string().contains("ring index 2"), "{err}");
        ctx.shutdown();
    }
}
