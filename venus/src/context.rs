//! One venus context (what a virtio-gpu context or a vtest client gets): its objects, its
//! shared-memory resources, its rings and the host Vulkan state, and the loop that runs a command
//! stream. The generated `Handlers` trait is implemented here by delegating each command to the
//! file of its object family under `vk/` (and `transport.rs` for the MESA commands).

use std::{
    collections::HashMap,
    sync::{
        atomic::{AtomicBool, Ordering},
        Arc, Mutex,
    },
};

use gpu_interface::{QuotaCharge, SliceLimits};
use tracing::warn;

use crate::{
    objects::{ObjectError, ObjectTable},
    protocol::{
        generated::*,
        wire::{Arena, Cursor, DecodeError, Encoder},
    },
    resource::{ResourceError, SharedMemory},
    ring::Ring,
    vk::Host,
};

#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("malformed stream: {0}")]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Object(#[from] ObjectError),
    #[error(transparent)]
    Resource(#[from] ResourceError),
    #[error("host Vulkan could not be loaded: {0}")]
    Load(String),
    #[error("{0}")]
    Invalid(String),
    #[error("the context hit a fatal error earlier")]
    Fatal,
}

/// Which host physical device the context exposes.
#[derive(Clone, Debug, Default)]
pub enum DeviceSelector {
    #[default]
    All,
    Index(usize),
    /// The first device whose name contains this.
    Name(String),
}

/// Where a stream's replies go, set by vkSetReplyCommandStreamMESA.
pub struct ReplyStream {
    mem: Arc<SharedMemory>,
    start: usize,
    end: usize,
    pos: usize,
}

/// Per-stream dispatch state.
#[derive(Default)]
pub struct StreamCx {
    pub(crate) reply: Option<ReplyStream>,
    /// The ring this stream runs on; `None` for the context's own (virtqueue) stream.
    pub(crate) ring: Option<u64>,
    pub(crate) nested: bool,
}

impl StreamCx {
    pub fn for_ring(id: u64) -> Self {
        StreamCx {
            ring: Some(id),
            ..Default::default()
        }
    }

    pub(crate) fn set_reply(
        &mut self,
        mem: Arc<SharedMemory>,
        offset: usize,
        size: usize,
    ) -> Result<(), RenderError> {
        let end = offset.checked_add(size).filter(|&e| e <= mem.size());
        let end = end.ok_or(ResourceError::OutOfBounds {
            offset,
            len: size,
            size: mem.size(),
        })?;
        self.reply = Some(ReplyStream {
            mem,
            start: offset,
            end,
            pos: offset,
        });
        Ok(())
    }

    pub(crate) fn seek_reply(&mut self, position: usize) -> Result<(), RenderError> {
        let r = self
            .reply
            .as_mut()
            .ok_or_else(|| RenderError::Invalid("seek without a reply stream".into()))?;
        r.pos = r
            .start
            .checked_add(position)
            .filter(|&p| p <= r.end)
            .ok_or_else(|| {
                RenderError::Invalid(format!("reply seek to {position} past the stream's end"))
            })?;
        Ok(())
    }
}

pub struct Context {
    pub(crate) objects: ObjectTable,
    pub(crate) resources: Mutex<HashMap<u32, Arc<SharedMemory>>>,
    pub(crate) rings: Mutex<HashMap<u64, Arc<Ring>>>,
    pub(crate) host: Host,
    pub(crate) monitor: crate::ring::Monitor,
    /// Host-visible device memory by the driver's memory id: the memfd the memory was imported
    /// from, which becomes the blob when the driver maps it.
    pub(crate) memory_blobs: Mutex<HashMap<u64, Arc<SharedMemory>>>,
    /// Held around every host call on a queue (see `Handlers::queue_lock`).
    pub(crate) queue_lock: Mutex<()>,
    pub(crate) timelines: crate::timeline::Timelines,
    /// The slice this context serves, if any: its memory quota and submit gate.
    pub(crate) limits: SliceLimits,
    /// What each device memory holds of the quota, by the driver's memory id.
    pub(crate) memory_charges: Mutex<HashMap<u64, QuotaCharge>>,
    /// The gate's GPU timers, by host queue (None: the queue has no timestamps).
    pub(crate) gate_timers: Mutex<HashMap<u64, Option<Arc<crate::vk::queue_timer::QueueTimer>>>>,
    fatal: AtomicBool,
    me: std::sync::Weak<Context>,
}

impl Context {
    pub fn new(selector: DeviceSelector) -> Result<Arc<Self>, RenderError> {
        Self::with_limits(selector, SliceLimits::none())
    }

    /// A context of a slice: its allocations charge the slice's quota and its queue work
    /// passes the slice's submit gate.
    pub fn with_limits(
        selector: DeviceSelector,
        limits: SliceLimits,
    ) -> Result<Arc<Self>, RenderError> {
        let host = Host::load(selector)?;
        Ok(Arc::new_cyclic(|me| Context {
            objects: ObjectTable::default(),
            resources: Mutex::new(HashMap::new()),
            rings: Mutex::new(HashMap::new()),
            host,
            monitor: crate::ring::Monitor::default(),
            memory_blobs: Mutex::new(HashMap::new()),
            queue_lock: Mutex::new(()),
            timelines: Default::default(),
            limits,
            memory_charges: Mutex::new(HashMap::new()),
            gate_timers: Mutex::new(HashMap::new()),
            fatal: AtomicBool::new(false),
            me: me.clone(),
        }))
    }

    /// A handle for threads this context starts (rings, the monitor).
    pub(crate) fn weak(&self) -> std::sync::Weak<Context> {
        self.me.clone()
    }

    pub fn add_resource(&self, id: u32, mem: Arc<SharedMemory>) {
        self.resources.lock().unwrap().insert(id, mem);
    }

    pub fn remove_resource(&self, id: u32) -> Option<Arc<SharedMemory>> {
        self.resources.lock().unwrap().remove(&id)
    }

    pub fn resource(&self, id: u32) -> Result<Arc<SharedMemory>, RenderError> {
        let r = self.resources.lock().unwrap().get(&id).cloned();
        r.ok_or_else(|| RenderError::Invalid(format!("resource {id} does not exist")))
    }

    /// The shared memory behind device memory `id`, for a blob the driver maps.
    pub fn memory_blob(&self, id: u64) -> Result<Arc<SharedMemory>, RenderError> {
        let m = self.memory_blobs.lock().unwrap().get(&id).cloned();
        m.ok_or_else(|| {
            RenderError::Invalid(format!(
                "device memory {id:#x} is not host-visible memory of ours"
            ))
        })
    }

    pub fn is_fatal(&self) -> bool {
        self.fatal.load(Ordering::Acquire)
    }

    /// Marks the context dead: every ring reports FATAL and no stream runs any more.
    pub fn set_fatal(&self, why: &RenderError) {
        if !self.fatal.swap(true, Ordering::AcqRel) {
            warn!("venus context: fatal: {why}");
            for ring in self.rings.lock().unwrap().values() {
                ring.set_fatal_status();
            }
        }
    }

    /// Runs every command in `bytes` (the context's stream, or a nested command stream).
    pub fn execute(&self, cx: &mut StreamCx, bytes: &[u8]) -> Result<(), RenderError> {
        let mut cursor = Cursor::new(bytes);
        let mut arena = Arena::default();
        while cursor.has_command() {
            self.execute_one(cx, &mut cursor, &mut arena)?;
        }
        Ok(())
    }

    /// Runs one command; a failure makes the context fatal.
    pub fn execute_one(
        &self,
        cx: &mut StreamCx,
        cursor: &mut Cursor<'_>,
        arena: &mut Arena,
    ) -> Result<(), RenderError> {
        if self.is_fatal() {
            return Err(RenderError::Fatal);
        }
        if let Some(t) = cursor.peek_u32() {
            tracing::trace!(
                "venus {}: {}",
                cx.ring
                    .map_or("context".to_string(), |r| format!("ring {r:#x}")),
                command_name(t)
            );
        }
        let result = dispatch_one(self, cx, cursor, arena);
        if let Err(e) = &result {
            self.set_fatal(e);
        }
        result
    }

    /// Stops every ring (joining their threads) and drops all host objects.
    pub fn shutdown(&self) {
        let rings: Vec<Arc<Ring>> = self.rings.lock().unwrap().drain().map(|(_, r)| r).collect();
        for ring in rings {
            ring.stop();
        }
        self.monitor.stop();
        self.timelines.stop();
        for device in self.host.device_handles() {
            crate::vk::device::destroy_device_and_children(self, device);
        }
        self.host.destroy_all();
    }
}

impl Drop for Context {
    fn drop(&mut self) {
        self.shutdown();
    }
}

/// Delegates each generated handler to its family's function.
macro_rules! handlers {
    ($($cmd:ident($args:ident) => $f:path),* $(,)?) => {
        impl Handlers for Context {
            type Cx = StreamCx;
            type Error = RenderError;

            fn objects(&self) -> &dyn Lookup {
                &self.objects
            }

            fn device_commands(&self, objtype: i32, raw: u64) -> Result<Arc<DeviceCommands>, RenderError> {
                self.host.device_commands(objtype, raw)
            }

            fn queue_lock(&self) -> std::sync::MutexGuard<'_, ()> {
                self.queue_lock.lock().unwrap()
            }

            fn submit_work(&self, queue: u64, submit: &mut dyn FnMut() -> Result<i32, DecodeError>) -> Result<(), RenderError> {
                crate::vk::queue::submit_work(self, queue, submit)
            }

            fn reply(&self, cx: &mut StreamCx, reply: Encoder) -> Result<(), RenderError> {
                let bytes = reply.finish()?;
                let r = cx.reply.as_mut().ok_or_else(|| RenderError::Invalid("reply without a reply stream".into()))?;
                if bytes.len() > r.end - r.pos {
                    return Err(RenderError::Invalid(format!("a {}-byte reply overflows the reply stream", bytes.len())));
                }
                r.mem.write(r.pos, &bytes)?;
                r.pos += bytes.len();
                Ok(())
            }

            $(fn $cmd(&self, cx: &mut StreamCx, a: &mut $args) -> Result<(), RenderError> {
                $f(self, cx, a)
            })*
        }
    };
}

use crate::{
    transport as t,
    vk::{
        buffer as buf, command_buffer as cb, descriptor as desc, device as dev, image as img,
        instance as inst, memory as mem, physical_device as pd, pipeline as pipe, query,
        render_pass as rp, sync,
    },
};

handlers! {
    vkSetReplyCommandStreamMESA(vkSetReplyCommandStreamMESA_args) => t::set_reply_command_stream,
    vkSeekReplyCommandStreamMESA(vkSeekReplyCommandStreamMESA_args) => t::seek_reply_command_stream,
    vkExecuteCommandStreamsMESA(vkExecuteCommandStreamsMESA_args) => t::execute_command_streams,
    vkCreateRingMESA(vkCreateRingMESA_args) => t::create_ring,
    vkDestroyRingMESA(vkDestroyRingMESA_args) => t::destroy_ring,
    vkNotifyRingMESA(vkNotifyRingMESA_args) => t::notify_ring,
    vkWriteRingExtraMESA(vkWriteRingExtraMESA_args) => t::write_ring_extra,
    vkSubmitVirtqueueSeqnoMESA(vkSubmitVirtqueueSeqnoMESA_args) => t::submit_virtqueue_seqno,
    vkWaitVirtqueueSeqnoMESA(vkWaitVirtqueueSeqnoMESA_args) => t::wait_virtqueue_seqno,
    vkWaitRingSeqnoMESA(vkWaitRingSeqnoMESA_args) => t::wait_ring_seqno,
    vkEnumerateInstanceVersion(vkEnumerateInstanceVersion_args) => inst::enumerate_instance_version,
    vkEnumerateInstanceExtensionProperties(vkEnumerateInstanceExtensionProperties_args) => inst::enumerate_instance_extension_properties,
    vkEnumerateInstanceLayerProperties(vkEnumerateInstanceLayerProperties_args) => inst::enumerate_instance_layer_properties,
    vkCreateInstance(vkCreateInstance_args) => inst::create_instance,
    vkDestroyInstance(vkDestroyInstance_args) => inst::destroy_instance,
    vkEnumeratePhysicalDevices(vkEnumeratePhysicalDevices_args) => pd::enumerate_physical_devices,
    vkEnumeratePhysicalDeviceGroups(vkEnumeratePhysicalDeviceGroups_args) => pd::enumerate_physical_device_groups,
    vkGetPhysicalDeviceProperties(vkGetPhysicalDeviceProperties_args) => pd::get_properties,
    vkGetPhysicalDeviceProperties2(vkGetPhysicalDeviceProperties2_args) => pd::get_properties2,
    vkGetPhysicalDeviceFeatures(vkGetPhysicalDeviceFeatures_args) => pd::get_features,
    vkGetPhysicalDeviceFeatures2(vkGetPhysicalDeviceFeatures2_args) => pd::get_features2,
    vkGetPhysicalDeviceQueueFamilyProperties(vkGetPhysicalDeviceQueueFamilyProperties_args) => pd::get_queue_family_properties,
    vkGetPhysicalDeviceQueueFamilyProperties2(vkGetPhysicalDeviceQueueFamilyProperties2_args) => pd::get_queue_family_properties2,
    vkGetPhysicalDeviceMemoryProperties(vkGetPhysicalDeviceMemoryProperties_args) => pd::get_memory_properties,
    vkGetPhysicalDeviceMemoryProperties2(vkGetPhysicalDeviceMemoryProperties2_args) => pd::get_memory_properties2,
    vkGetPhysicalDeviceFormatProperties(vkGetPhysicalDeviceFormatProperties_args) => pd::get_format_properties,
    vkGetPhysicalDeviceFormatProperties2(vkGetPhysicalDeviceFormatProperties2_args) => pd::get_format_properties2,
    vkGetPhysicalDeviceImageFormatProperties(vkGetPhysicalDeviceImageFormatProperties_args) => pd::get_image_format_properties,
    vkGetPhysicalDeviceImageFormatProperties2(vkGetPhysicalDeviceImageFormatProperties2_args) => pd::get_image_format_properties2,
    vkGetPhysicalDeviceSparseImageFormatProperties(vkGetPhysicalDeviceSparseImageFormatProperties_args) => pd::get_sparse_image_format_properties,
    vkGetPhysicalDeviceSparseImageFormatProperties2(vkGetPhysicalDeviceSparseImageFormatProperties2_args) => pd::get_sparse_image_format_properties2,
    vkGetPhysicalDeviceExternalBufferProperties(vkGetPhysicalDeviceExternalBufferProperties_args) => pd::get_external_buffer_properties,
    vkGetPhysicalDeviceExternalSemaphoreProperties(vkGetPhysicalDeviceExternalSemaphoreProperties_args) => pd::get_external_semaphore_properties,
    vkGetPhysicalDeviceExternalFenceProperties(vkGetPhysicalDeviceExternalFenceProperties_args) => pd::get_external_fence_properties,
    vkGetPhysicalDeviceToolProperties(vkGetPhysicalDeviceToolProperties_args) => pd::get_tool_properties,
    vkEnumerateDeviceExtensionProperties(vkEnumerateDeviceExtensionProperties_args) => pd::enumerate_device_extension_properties,
    vkEnumerateDeviceLayerProperties(vkEnumerateDeviceLayerProperties_args) => pd::enumerate_device_layer_properties,
    vkCreateDevice(vkCreateDevice_args) => dev::create_device,
    vkDestroyDevice(vkDestroyDevice_args) => dev::destroy_device,
    vkGetDeviceQueue(vkGetDeviceQueue_args) => dev::get_device_queue,
    vkGetDeviceQueue2(vkGetDeviceQueue2_args) => dev::get_device_queue2,
    vkDeviceWaitIdle(vkDeviceWaitIdle_args) => dev::device_wait_idle,
    vkCreateCommandPool(vkCreateCommandPool_args) => cb::create_command_pool,
    vkDestroyCommandPool(vkDestroyCommandPool_args) => cb::destroy_command_pool,
    vkResetCommandPool(vkResetCommandPool_args) => cb::reset_command_pool,
    vkTrimCommandPool(vkTrimCommandPool_args) => cb::trim_command_pool,
    vkAllocateCommandBuffers(vkAllocateCommandBuffers_args) => cb::allocate_command_buffers,
    vkFreeCommandBuffers(vkFreeCommandBuffers_args) => cb::free_command_buffers,
    vkBeginCommandBuffer(vkBeginCommandBuffer_args) => cb::begin_command_buffer,
    vkEndCommandBuffer(vkEndCommandBuffer_args) => cb::end_command_buffer,
    vkResetCommandBuffer(vkResetCommandBuffer_args) => cb::reset_command_buffer,
    vkCreateFence(vkCreateFence_args) => sync::create_fence,
    vkDestroyFence(vkDestroyFence_args) => sync::destroy_fence,
    vkResetFences(vkResetFences_args) => sync::reset_fences,
    vkGetFenceStatus(vkGetFenceStatus_args) => sync::get_fence_status,
    vkWaitForFences(vkWaitForFences_args) => sync::wait_for_fences,
    vkCreateSemaphore(vkCreateSemaphore_args) => sync::create_semaphore,
    vkDestroySemaphore(vkDestroySemaphore_args) => sync::destroy_semaphore,
    vkGetSemaphoreCounterValue(vkGetSemaphoreCounterValue_args) => sync::get_semaphore_counter_value,
    vkSignalSemaphore(vkSignalSemaphore_args) => sync::signal_semaphore,
    vkWaitSemaphores(vkWaitSemaphores_args) => sync::wait_semaphores,
    vkCreateEvent(vkCreateEvent_args) => sync::create_event,
    vkDestroyEvent(vkDestroyEvent_args) => sync::destroy_event,
    vkGetEventStatus(vkGetEventStatus_args) => sync::get_event_status,
    vkSetEvent(vkSetEvent_args) => sync::set_event,
    vkResetEvent(vkResetEvent_args) => sync::reset_event,
    vkAllocateMemory(vkAllocateMemory_args) => mem::allocate_memory,
    vkFreeMemory(vkFreeMemory_args) => mem::free_memory,
    vkGetMemoryResourcePropertiesMESA(vkGetMemoryResourcePropertiesMESA_args) => mem::get_memory_resource_properties,
    vkGetPhysicalDeviceCalibrateableTimeDomainsEXT(vkGetPhysicalDeviceCalibrateableTimeDomainsEXT_args) => pd::get_calibrateable_time_domains,
    vkGetDeviceMemoryCommitment(vkGetDeviceMemoryCommitment_args) => mem::get_device_memory_commitment,
    vkCreateBuffer(vkCreateBuffer_args) => buf::create_buffer,
    vkDestroyBuffer(vkDestroyBuffer_args) => buf::destroy_buffer,
    vkBindBufferMemory(vkBindBufferMemory_args) => buf::bind_buffer_memory,
    vkBindBufferMemory2(vkBindBufferMemory2_args) => buf::bind_buffer_memory2,
    vkGetBufferMemoryRequirements(vkGetBufferMemoryRequirements_args) => buf::get_buffer_memory_requirements,
    vkGetBufferMemoryRequirements2(vkGetBufferMemoryRequirements2_args) => buf::get_buffer_memory_requirements2,
    vkGetDeviceBufferMemoryRequirements(vkGetDeviceBufferMemoryRequirements_args) => buf::get_device_buffer_memory_requirements,
    vkGetBufferDeviceAddress(vkGetBufferDeviceAddress_args) => buf::get_buffer_device_address,
    vkCreateImage(vkCreateImage_args) => img::create_image,
    vkDestroyImage(vkDestroyImage_args) => img::destroy_image,
    vkBindImageMemory(vkBindImageMemory_args) => img::bind_image_memory,
    vkBindImageMemory2(vkBindImageMemory2_args) => img::bind_image_memory2,
    vkGetImageMemoryRequirements(vkGetImageMemoryRequirements_args) => img::get_image_memory_requirements,
    vkGetImageMemoryRequirements2(vkGetImageMemoryRequirements2_args) => img::get_image_memory_requirements2,
    vkGetDeviceImageMemoryRequirements(vkGetDeviceImageMemoryRequirements_args) => img::get_device_image_memory_requirements,
    vkGetImageSparseMemoryRequirements(vkGetImageSparseMemoryRequirements_args) => img::get_image_sparse_memory_requirements,
    vkGetImageSparseMemoryRequirements2(vkGetImageSparseMemoryRequirements2_args) => img::get_image_sparse_memory_requirements2,
    vkGetDeviceImageSparseMemoryRequirements(vkGetDeviceImageSparseMemoryRequirements_args) => img::get_device_image_sparse_memory_requirements,
    vkGetImageSubresourceLayout(vkGetImageSubresourceLayout_args) => img::get_image_subresource_layout,
    vkCreateImageView(vkCreateImageView_args) => img::create_image_view,
    vkDestroyImageView(vkDestroyImageView_args) => img::destroy_image_view,
    vkCreateBufferView(vkCreateBufferView_args) => img::create_buffer_view,
    vkDestroyBufferView(vkDestroyBufferView_args) => img::destroy_buffer_view,
    vkCreateSampler(vkCreateSampler_args) => img::create_sampler,
    vkDestroySampler(vkDestroySampler_args) => img::destroy_sampler,
    vkCreateShaderModule(vkCreateShaderModule_args) => pipe::create_shader_module,
    vkDestroyShaderModule(vkDestroyShaderModule_args) => pipe::destroy_shader_module,
    vkCreatePipelineLayout(vkCreatePipelineLayout_args) => pipe::create_pipeline_layout,
    vkDestroyPipelineLayout(vkDestroyPipelineLayout_args) => pipe::destroy_pipeline_layout,
    vkCreatePipelineCache(vkCreatePipelineCache_args) => pipe::create_pipeline_cache,
    vkDestroyPipelineCache(vkDestroyPipelineCache_args) => pipe::destroy_pipeline_cache,
    vkCreateComputePipelines(vkCreateComputePipelines_args) => pipe::create_compute_pipelines,
    vkCreateGraphicsPipelines(vkCreateGraphicsPipelines_args) => pipe::create_graphics_pipelines,
    vkDestroyPipeline(vkDestroyPipeline_args) => pipe::destroy_pipeline,
    vkCreateDescriptorSetLayout(vkCreateDescriptorSetLayout_args) => desc::create_descriptor_set_layout,
    vkDestroyDescriptorSetLayout(vkDestroyDescriptorSetLayout_args) => desc::destroy_descriptor_set_layout,
    vkCreateDescriptorPool(vkCreateDescriptorPool_args) => desc::create_descriptor_pool,
    vkDestroyDescriptorPool(vkDestroyDescriptorPool_args) => desc::destroy_descriptor_pool,
    vkAllocateDescriptorSets(vkAllocateDescriptorSets_args) => desc::allocate_descriptor_sets,
    vkFreeDescriptorSets(vkFreeDescriptorSets_args) => desc::free_descriptor_sets,
    vkCreateDescriptorUpdateTemplate(vkCreateDescriptorUpdateTemplate_args) => desc::create_descriptor_update_template,
    vkDestroyDescriptorUpdateTemplate(vkDestroyDescriptorUpdateTemplate_args) => desc::destroy_descriptor_update_template,
    vkCreateQueryPool(vkCreateQueryPool_args) => query::create_query_pool,
    vkDestroyQueryPool(vkDestroyQueryPool_args) => query::destroy_query_pool,
    vkCreateRenderPass(vkCreateRenderPass_args) => rp::create_render_pass,
    vkCreateRenderPass2(vkCreateRenderPass2_args) => rp::create_render_pass2,
    vkDestroyRenderPass(vkDestroyRenderPass_args) => rp::destroy_render_pass,
    vkCreateFramebuffer(vkCreateFramebuffer_args) => rp::create_framebuffer,
    vkDestroyFramebuffer(vkDestroyFramebuffer_args) => rp::destroy_framebuffer,
}
