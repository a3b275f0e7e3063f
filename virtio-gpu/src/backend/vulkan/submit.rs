//! Queue submission: one command buffer recorded and submitted per operation, and a timeline
//! semaphore that fence markers signal in queue order.

use std::sync::Arc;

use ash::vk;

use super::device::GpuDevice;
use super::VulkanError;

/// How long a submission may take before the device is considered hung.
const SUBMIT_TIMEOUT_NS: u64 = 10_000_000_000;

/// Owns the command pool, the one reusable command buffer, its fence and the fence timeline.
pub struct Submitter {
    dev: Arc<GpuDevice>,
    pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
    timeline: vk::Semaphore,
    /// The last value a submission was asked to signal on `timeline`.
    last_value: u64,
    /// Set once a submission failed or timed out: the command buffer may still be pending, so
    /// it is never recorded again and every later submission fails.
    broken: bool,
    /// The slice's submit gate, where the backend serves one: each batch waits its turn and
    /// is charged the time until its fence signals.
    pub(super) gate: Option<Arc<dyn gpu_interface::SubmitGate>>,
}

impl Submitter {
    pub fn new(dev: &Arc<GpuDevice>) -> Result<Self, VulkanError> {
        let d = &dev.device;
        let pool_info = vk::CommandPoolCreateInfo::default()
            .queue_family_index(dev.queue_family)
            .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER);
        // SAFETY: valid create-info for this device's queue family.
        let pool = unsafe { d.create_command_pool(&pool_info, None) }
            .map_err(VulkanError::vk("vkCreateCommandPool"))?;
        let mut this = Submitter {
            dev: dev.clone(),
            pool,
            cmd: vk::CommandBuffer::null(),
            fence: vk::Fence::null(),
            timeline: vk::Semaphore::null(),
            last_value: 0,
            broken: false,
            gate: None,
        };
        let alloc = vk::CommandBufferAllocateInfo::default()
            .command_pool(pool)
            .level(vk::CommandBufferLevel::PRIMARY)
            .command_buffer_count(1);
        // SAFETY: the pool is live; the buffer is freed with the pool in Drop.
        this.cmd = unsafe { d.allocate_command_buffers(&alloc) }
            .map_err(VulkanError::vk("vkAllocateCommandBuffers"))?
            .first()
            .copied()
            .ok_or(VulkanError::Other("no command buffer returned".into()))?;
        // SAFETY: default fence create-info; destroyed in Drop.
        this.fence = unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) }
            .map_err(VulkanError::vk("vkCreateFence"))?;
        let mut kind = vk::SemaphoreTypeCreateInfo::default()
            .semaphore_type(vk::SemaphoreType::TIMELINE)
            .initial_value(0);
        let sem_info = vk::SemaphoreCreateInfo::default().push_next(&mut kind);
        // SAFETY: timeline semaphores were enabled at device creation; `kind` outlives the call.
        this.timeline = unsafe { d.create_semaphore(&sem_info, None) }
            .map_err(VulkanError::vk("vkCreateSemaphore(timeline)"))?;
        Ok(this)
    }

    /// Records commands with `record`, submits them in one batch and waits for completion.
    ///
    /// A full memory barrier opens the batch (earlier batches' writes are visible to it) and a
    /// device-to-host barrier closes it (its writes are visible to the host after the wait).
    pub fn run(
        &mut self,
        record: impl FnOnce(&ash::Device, vk::CommandBuffer),
    ) -> Result<(), VulkanError> {
        self.check_usable()?;
        let d = &self.dev.device;
        let begin = vk::CommandBufferBeginInfo::default()
            .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT);
        // SAFETY: the command buffer is not pending (the previous submission was waited for) and
        // its pool allows implicit reset on begin.
        unsafe { d.begin_command_buffer(self.cmd, &begin) }
            .map_err(VulkanError::vk("vkBeginCommandBuffer"))?;
        self.barrier(
            vk::PipelineStageFlags::ALL_COMMANDS | vk::PipelineStageFlags::HOST,
            vk::AccessFlags::MEMORY_WRITE | vk::AccessFlags::HOST_WRITE,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::AccessFlags::MEMORY_READ | vk::AccessFlags::MEMORY_WRITE,
        );
        record(d, self.cmd);
        self.barrier(
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::AccessFlags::MEMORY_WRITE,
            vk::PipelineStageFlags::HOST,
            vk::AccessFlags::HOST_READ,
        );
        // SAFETY: recording state, begun above.
        unsafe { d.end_command_buffer(self.cmd) }.map_err(VulkanError::vk("vkEndCommandBuffer"))?;
        let cmds = [self.cmd];
        let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
        let turn = self
            .gate
            .clone()
            .map(|g| (g.enter(), std::time::Instant::now(), g));
        // SAFETY: the fence is unsignalled (reset after each wait, created unsignalled), the
        // command buffer is executable, and the queue is only used through `&mut self`.
        let submitted = unsafe { d.queue_submit(self.dev.queue, &submit, self.fence) }
            .map_err(VulkanError::vk("vkQueueSubmit"));
        // Until the wait succeeds, the command buffer and fence may still be in use.
        let waited = submitted.and_then(|()| {
            self.broken = true;
            self.wait_fence()
        });
        if let Some((ticket, granted, gate)) = turn {
            gate.leave(ticket, granted.elapsed().as_nanos() as u64);
        }
        waited?;
        self.broken = false;
        Ok(())
    }

    fn check_usable(&self) -> Result<(), VulkanError> {
        if self.broken {
            return Err(VulkanError::Other(
                "an earlier submission failed or hung; the device is unusable".into(),
            ));
        }
        Ok(())
    }

    fn wait_fence(&mut self) -> Result<(), VulkanError> {
        let d = &self.dev.device;
        let fences = [self.fence];
        // SAFETY: the fence belongs to this device and was submitted with work just now.
        unsafe { d.wait_for_fences(&fences, true, SUBMIT_TIMEOUT_NS) }
            .map_err(VulkanError::vk("vkWaitForFences"))?;
        // SAFETY: the fence has signalled, so no pending submission uses it.
        unsafe { d.reset_fences(&fences) }.map_err(VulkanError::vk("vkResetFences"))
    }

    fn barrier(
        &self,
        src_stage: vk::PipelineStageFlags,
        src_access: vk::AccessFlags,
        dst_stage: vk::PipelineStageFlags,
        dst_access: vk::AccessFlags,
    ) {
        let barrier = [vk::MemoryBarrier::default()
            .src_access_mask(src_access)
            .dst_access_mask(dst_access)];
        // SAFETY: called only while `cmd` is recording.
        unsafe {
            self.dev.device.cmd_pipeline_barrier(
                self.cmd,
                src_stage,
                dst_stage,
                vk::DependencyFlags::empty(),
                &barrier,
                &[],
                &[],
            )
        };
    }

    /// Submits an empty batch that signals the next timeline value once everything submitted
    /// before it has completed, and returns that value.
    pub fn signal_marker(&mut self) -> Result<u64, VulkanError> {
        self.check_usable()?;
        let value = self.last_value + 1;
        let values = [value];
        let sems = [self.timeline];
        let mut timeline_info =
            vk::TimelineSemaphoreSubmitInfo::default().signal_semaphore_values(&values);
        let submit = [vk::SubmitInfo::default()
            .signal_semaphores(&sems)
            .push_next(&mut timeline_info)];
        // SAFETY: signalling a timeline semaphore with a strictly increasing value; all arrays
        // outlive the call; the queue is only used through `&mut self`.
        unsafe {
            self.dev
                .device
                .queue_submit(self.dev.queue, &submit, vk::Fence::null())
        }
        .map_err(VulkanError::vk("vkQueueSubmit(fence marker)"))?;
        self.last_value = value;
        Ok(value)
    }

    /// The highest timeline value the device has signalled.
    pub fn completed_value(&self) -> Result<u64, VulkanError> {
        // SAFETY: the semaphore is a live timeline semaphore of this device.
        unsafe { self.dev.device.get_semaphore_counter_value(self.timeline) }
            .map_err(VulkanError::vk("vkGetSemaphoreCounterValue"))
    }
}

impl Drop for Submitter {
    fn drop(&mut self) {
        let d = &self.dev.device;
        // SAFETY: waiting idle first guarantees that neither the command buffer nor the fence
        // nor the semaphore is in use when they are destroyed.
        let _ = unsafe { d.device_wait_idle() };
        // SAFETY: see above; null handles are ignored by vkDestroy*.
        unsafe { d.destroy_semaphore(self.timeline, None) };
        // SAFETY: see above.
        unsafe { d.destroy_fence(self.fence, None) };
        // SAFETY: see above; destroying the pool frees its command buffer.
        unsafe { d.destroy_command_pool(self.pool, None) };
    }
}
