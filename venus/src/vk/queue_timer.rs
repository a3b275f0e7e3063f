//! GPU timestamps around a slice's jobs, where the queue has them: one command buffer writes a
//! timestamp before the tenant's work and one after it, in submissions of their own on the same
//! queue, so the device time charged to the slice is the GPU's and not the wall time until the
//! fence was seen. One timer per queue of a context; the gate lets one job of it run at a time.

// Each unsafe block is one step of Vulkan calls on objects this module makes, under the one
// argument its SAFETY comment states.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use std::sync::{
    atomic::{AtomicBool, Ordering},
    Arc,
};

use ash::vk::{self, Handle as _};

use crate::{context::Context, vk::QueueInfo};

pub(crate) struct QueueTimer {
    device: Arc<ash::Device>,
    pool: vk::CommandPool,
    /// Resets the queries and writes the first timestamp.
    pub(crate) begin: vk::CommandBuffer,
    /// Writes the second.
    pub(crate) end: vk::CommandBuffer,
    queries: vk::QueryPool,
    period_ns: f64,
    mask: u64,
    /// A job gave its turn up before its fence: its timestamps may still land, so the timer
    /// is not used again.
    broken: AtomicBool,
}

impl QueueTimer {
    /// A timer for `queue`, or None where its family has no timestamps or the objects cannot
    /// be made (the gate then charges the time until the fence).
    pub(crate) fn new(ctx: &Context, info: &QueueInfo) -> Option<Arc<Self>> {
        let device = ctx.host.device(info.device).ok()?;
        let pd_raw = ctx.host.device_info(info.device).ok()?.physical_device;
        let instance = ctx.host.instance_of(pd_raw).ok()?;
        let pd = vk::PhysicalDevice::from_raw(pd_raw);
        // SAFETY: a physical device of this live instance.
        let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
        let bits = families.get(info.family as usize)?.timestamp_valid_bits;
        // SAFETY: as above.
        let period = unsafe { instance.get_physical_device_properties(pd) }
            .limits
            .timestamp_period;
        if bits == 0 || period <= 0.0 {
            return None;
        }
        let mask = if bits >= 64 {
            u64::MAX
        } else {
            (1u64 << bits) - 1
        };
        let pool_info = vk::CommandPoolCreateInfo::default().queue_family_index(info.family);
        // SAFETY: valid create infos on a live device; everything made here is destroyed in
        // Drop (or below, where a later step fails).
        unsafe {
            let pool = device.create_command_pool(&pool_info, None).ok()?;
            let query_info = vk::QueryPoolCreateInfo::default()
                .query_type(vk::QueryType::TIMESTAMP)
                .query_count(2);
            let Ok(queries) = device.create_query_pool(&query_info, None) else {
                device.destroy_command_pool(pool, None);
                return None;
            };
            let Some((begin, end)) = record(&device, pool, queries) else {
                device.destroy_query_pool(queries, None);
                device.destroy_command_pool(pool, None);
                return None;
            };
            Some(Arc::new(Self {
                device: device.clone(),
                pool,
                begin,
                end,
                queries,
                period_ns: f64::from(period),
                mask,
                broken: AtomicBool::new(false),
            }))
        }
    }

    pub(crate) fn usable(&self) -> bool {
        !self.broken.load(Ordering::Acquire)
    }

    /// The GPU time between the two timestamps, once the job's fence has signalled; None (and
    /// the timer retired) where they are not there.
    pub(crate) fn read_ns(&self) -> Option<u64> {
        let mut stamps = [0u64; 2];
        // SAFETY: two 64-bit results into a two-element array, no WAIT: the fence behind the
        // `end` submission has signalled when this is called on time; otherwise NOT_READY.
        let read = unsafe {
            self.device.get_query_pool_results(
                self.queries,
                0,
                &mut stamps,
                vk::QueryResultFlags::TYPE_64,
            )
        };
        if read.is_err() {
            self.broken.store(true, Ordering::Release);
            return None;
        }
        let ticks = stamps[1].wrapping_sub(stamps[0]) & self.mask;
        Some((ticks as f64 * self.period_ns) as u64)
    }
}

/// Records the two command buffers (simultaneous use: a refused job's `begin` may still be
/// pending when the next job submits it).
///
/// # Safety
/// `pool` and `queries` are live objects of `d`.
unsafe fn record(
    d: &ash::Device,
    pool: vk::CommandPool,
    queries: vk::QueryPool,
) -> Option<(vk::CommandBuffer, vk::CommandBuffer)> {
    let alloc = vk::CommandBufferAllocateInfo::default()
        .command_pool(pool)
        .command_buffer_count(2);
    // SAFETY: the caller's promise; the buffers are recorded once and only submitted after.
    unsafe {
        let cbs = d.allocate_command_buffers(&alloc).ok()?;
        let begin_info = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::SIMULTANEOUS_USE);
        for (i, &cb) in cbs.iter().enumerate() {
            d.begin_command_buffer(cb, &begin_info).ok()?;
            if i == 0 {
                d.cmd_reset_query_pool(cb, queries, 0, 2);
                d.cmd_write_timestamp(cb, vk::PipelineStageFlags::TOP_OF_PIPE, queries, 0);
            } else {
                d.cmd_write_timestamp(cb, vk::PipelineStageFlags::BOTTOM_OF_PIPE, queries, 1);
            }
            d.end_command_buffer(cb).ok()?;
        }
        Some((cbs[0], cbs[1]))
    }
}

impl Drop for QueueTimer {
    fn drop(&mut self) {
        // SAFETY: dropped once the device is idle (device teardown waits for it first) or no
        // job of this timer is pending; the pool frees its command buffers.
        unsafe {
            self.device.destroy_query_pool(self.queries, None);
            self.device.destroy_command_pool(self.pool, None);
        }
    }
}
