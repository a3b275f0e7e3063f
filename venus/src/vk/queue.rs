//! Queue submissions. Work a slice's tenant puts on a queue passes the slice's submit gate: the
//! scheduler says when it may go, and its device time is charged to the slice when a fence
//! submitted right behind it signals, on a thread of the context's, so the stream goes on while
//! the GPU works. The device time is the GPU's own, from timestamps written around the work
//! ([`QueueTimer`]), where the queue has them; else the time from the grant to the fence.

use std::time::{Duration, Instant};

use ash::vk::{self, Handle as _};

use super::queue_timer::QueueTimer;
use crate::{
    context::{Context, RenderError},
    protocol::wire::DecodeError,
};

/// A job that has not completed after this gives its turn up (its fence may wait on a semaphore
/// the tenant signals later): the scheduler is told it ran this long, and others run.
const TURN_LIMIT: Duration = Duration::from_secs(2);

pub(crate) fn submit_work(
    ctx: &Context,
    queue: u64,
    submit: &mut dyn FnMut() -> Result<i32, DecodeError>,
) -> Result<(), RenderError> {
    let Some(gate) = ctx.limits.gate.clone() else {
        let _queue = ctx.queue_lock.lock().unwrap();
        submit()?;
        return Ok(());
    };
    let info = ctx
        .host
        .queue(queue)
        .ok_or_else(|| RenderError::Invalid(format!("queue {queue:#x} is not ours")))?;
    let device = ctx.host.device(info.device)?;
    // SAFETY: a valid create info on a live device.
    let fence = unsafe { device.create_fence(&vk::FenceCreateInfo::default(), None) }
        .map_err(|e| RenderError::Invalid(format!("gate fence: {e}")))?;
    let timer = ctx
        .gate_timers
        .lock()
        .unwrap()
        .entry(queue)
        .or_insert_with(|| QueueTimer::new(ctx, &info))
        .clone()
        .filter(|t| t.usable());
    let ticket = gate.enter();
    let granted = Instant::now();
    let host_queue = vk::Queue::from_raw(queue);
    // Ok(true): the work and the fence behind it went; Ok(false): the host refused the work
    // (the driver gets its error in the reply).
    let submitted = {
        let _queue = ctx.queue_lock.lock().unwrap();
        let stamp = |cb: vk::CommandBuffer, fence: vk::Fence| {
            let cbs = [cb];
            let batch = [vk::SubmitInfo::default().command_buffers(&cbs)];
            // SAFETY: a recorded simultaneous-use command buffer of this queue's family, on a
            // live queue, under the queue lock.
            unsafe { device.queue_submit(host_queue, &batch, fence) }
        };
        let timed = timer
            .as_ref()
            .filter(|t| stamp(t.begin, vk::Fence::null()).is_ok());
        match submit() {
            Ok(r) if r == vk::Result::SUCCESS.as_raw() => {
                let behind = match timed {
                    Some(t) => stamp(t.end, fence),
                    // SAFETY: an empty submission on a live queue of this device, under the
                    // queue lock: it signals once the work just submitted is done.
                    None => unsafe { device.queue_submit(host_queue, &[], fence) },
                };
                behind
                    .map(|()| true)
                    .map_err(|e| RenderError::Invalid(format!("gate fence submit: {e}")))
            }
            Ok(_) => Ok(false),
            Err(e) => Err(e.into()),
        }
    };
    let timed = timer.filter(|_| matches!(submitted, Ok(true)));
    let release = move || {
        let waited = granted.elapsed().as_nanos() as u64;
        // The GPU's figure, never more than the wall time it can have taken.
        let gpu = timed.and_then(|t| t.read_ns()).map(|ns| ns.min(waited));
        gate.leave(ticket, gpu.unwrap_or(waited));
    };
    if let Ok(true) = submitted {
        ctx.timelines
            .watch(device, fence, TURN_LIMIT, Box::new(release));
    } else {
        // SAFETY: the fence was never submitted.
        unsafe { device.destroy_fence(fence, None) };
        release();
    }
    submitted.map(|_| ())
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use gpu_interface::{GateTicket, MemoryQuota, SliceLimits, SubmitGate};

    use crate::driver_stream::{live_context_with, Stream, DEVICE, QUEUE};

    /// Records what passes the gate: enters, and the device time of each leave.
    #[derive(Default)]
    struct RecordingGate {
        enters: Mutex<u64>,
        leaves: Mutex<Vec<(u64, u64)>>,
    }

    impl SubmitGate for RecordingGate {
        fn enter(&self) -> GateTicket {
            let mut n = self.enters.lock().unwrap();
            *n += 1;
            GateTicket(*n)
        }
        fn leave(&self, ticket: GateTicket, device_ns: u64) {
            self.leaves.lock().unwrap().push((ticket.0, device_ns));
        }
    }

    /// vkAllocateMemory(device, {size, type 0}, NULL, pMemory = id)
    fn allocate(s: &mut Stream, size: u64, id: u64) {
        s.command(21, false).u64(DEVICE).some();
        s.u32(5).none().u64(size).u32(0);
        s.none().some().u64(id);
    }

    #[test]
    fn a_slice_context_charges_its_quota_and_gates_its_submissions() {
        let quota = MemoryQuota::new(1 << 20);
        let gate = Arc::new(RecordingGate::default());
        let limits = SliceLimits {
            quota: Some(quota.clone()),
            gate: Some(gate.clone()),
        };
        let Some((ctx, mut cx)) = live_context_with("slice context", limits) else {
            return;
        };
        let mut s = Stream::default();
        allocate(&mut s, 512 << 10, 0x500);
        allocate(&mut s, 512 << 10, 0x501);
        allocate(&mut s, 4096, 0x502); // over the quota: refused
        ctx.execute(&mut cx, &s.0).expect("stream runs");
        assert_eq!(quota.used(), 1 << 20);
        let live = |id| {
            let memory = ash::vk::ObjectType::DEVICE_MEMORY.as_raw();
            crate::protocol::wire::Lookup::lookup(&ctx.objects, id, memory).is_some()
        };
        assert!(live(0x500) && live(0x501) && !live(0x502));

        // vkFreeMemory gives its part back; the next allocation fits.
        let mut s = Stream::default();
        s.command(22, false).u64(DEVICE).u64(0x500).none();
        allocate(&mut s, 4096, 0x503);
        // Two vkQueueSubmit(queue, 0, NULL, VK_NULL_HANDLE): each passes the gate.
        for _ in 0..2 {
            s.command(18, false).u64(QUEUE).u32(0).none().u64(0);
        }
        ctx.execute(&mut cx, &s.0).expect("stream runs");
        assert_eq!(quota.used(), (512 << 10) + 4096);
        assert_eq!(*gate.enters.lock().unwrap(), 2);
        // Each turn ends when its fence signals, on the context's gate timeline, charged the
        // GPU's timestamps (lavapipe has them): empty batches take next to no device time.
        ctx.timelines.flush();
        let leaves = gate.leaves.lock().unwrap().clone();
        assert_eq!(leaves.iter().map(|l| l.0).collect::<Vec<_>>(), [1, 2]);
        assert!(leaves.iter().all(|l| l.1 < 50_000_000), "{leaves:?}");
        let timers = ctx.gate_timers.lock().unwrap();
        let timer = timers.values().next().expect("the queue got a timer");
        assert!(
            timer.as_ref().is_some_and(|t| t.usable()),
            "timestamps in use"
        );
        drop(timers);

        // The context going (its tenant gone) returns everything.
        ctx.shutdown();
        drop(ctx);
        assert_eq!(quota.used(), 0);
    }
}
