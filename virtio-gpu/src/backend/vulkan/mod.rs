//! The Vulkan backend: resources live in Vulkan memory, transfers go through a host-visible
//! staging buffer with one queue submission per transfer, scanouts are composed by a compute
//! shader, the private "VG" capset's command stream runs as GPU copies and fills, and fences are
//! markers on a timeline semaphore.
//!
//! Layout: [`device`] (loader, physical device choice, queue), [`memory`] (buffers and exportable
//! blob memory), `resources` (images and blobs), `submit` (command recording, submission, the
//! timeline semaphore), `transfer` (staging and row copies), [`shader`] and `pipeline` (the
//! compose shader), `display` (the `DisplayBackend` half), `compute` (contexts, fences, 3D
//! resources, host blobs), `stream` (the VG command stream), `timeline` (fence ordering) and
//! `venus` (capset VENUS contexts, served by the `venus` renderer).
//!
//! Every image is a linear `VkBuffer` (`stride = width * bytes per pixel`): composition then
//! needs only buffer copies and one compute dispatch, and transfers are plain row copies.

mod compute;
pub mod device;
mod display;
pub mod memory;
mod pipeline;
mod resources;
pub mod shader;
mod stream;
mod submit;
mod timeline;
mod transfer;
mod venus;

use std::collections::HashMap;
use std::sync::Arc;

use ash::vk;
use gpu_interface::{GpuBackend, GpuError, ResourceId};

use device::GpuDevice;
use display::Scanouts;
use memory::{GpuBuffer, MemoryUse};
use pipeline::ComposePipeline;
use resources::Resource;
use submit::Submitter;
use transfer::Staging;

/// Device memory the backend lets resources use in all, so a guest cannot exhaust the GPU.
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// What went wrong inside the Vulkan backend.
#[derive(Debug, thiserror::Error)]
pub enum VulkanError {
    #[error("cannot load the Vulkan loader: {0}")]
    Load(String),
    #[error("no usable Vulkan device: {0}")]
    NoDevice(String),
    #[error("{call} failed: {result}")]
    Call {
        call: &'static str,
        result: vk::Result,
    },
    #[error("no Vulkan memory type fits the request")]
    NoMemoryType,
    #[error("zero-sized allocation")]
    ZeroSize,
    #[error("size does not fit this host")]
    OutOfRange,
    #[error("the device lacks VK_EXT_external_memory_host")]
    NoExternalMemory,
    #[error("compose shader: {0}")]
    Shader(String),
    #[error("{0}")]
    Other(String),
}

impl VulkanError {
    /// Maps the failure of Vulkan entry point `call`.
    pub fn vk(call: &'static str) -> impl Fn(vk::Result) -> VulkanError {
        move |result| VulkanError::Call { call, result }
    }
}

impl From<VulkanError> for GpuError {
    fn from(e: VulkanError) -> Self {
        match e {
            VulkanError::Call {
                result: vk::Result::ERROR_OUT_OF_HOST_MEMORY,
                ..
            } => GpuError::OutOfHostMemory,
            VulkanError::Call {
                result: vk::Result::ERROR_OUT_OF_DEVICE_MEMORY,
                ..
            } => GpuError::OutOfDeviceMemory,
            VulkanError::NoExternalMemory => {
                GpuError::Unsupported("host blobs need VK_EXT_external_memory_host")
            }
            VulkanError::ZeroSize => GpuError::InvalidParameter("zero-sized allocation"),
            VulkanError::OutOfRange => GpuError::OutOfHostMemory,
            other => GpuError::Backend(other.to_string()),
        }
    }
}

/// A context: the resources attached to it (commands name only attached resources).
#[derive(Debug, Default)]
struct Context {
    resources: std::collections::HashSet<ResourceId>,
}

/// A [`GpuBackend`] on host Vulkan.
pub struct VulkanBackend {
    resources: HashMap<ResourceId, Resource>,
    scanouts: Scanouts,
    contexts: HashMap<u32, Context>,
    venus: venus::VenusContexts,
    timelines: timeline::Timelines,
    memory_used: u64,
    staging: Staging,
    compose: ComposePipeline,
    /// Parameters of the compose shader, rewritten before each dispatch.
    params: GpuBuffer,
    /// Bound as the cursor when a scanout has none (a binding must name a live buffer).
    no_cursor: GpuBuffer,
    submitter: Submitter,
    dev: Arc<GpuDevice>,
}

impl VulkanBackend {
    /// Opens the device named by the `VGPU_VULKAN_DEVICE` environment variable, or the best one.
    pub fn new() -> Result<Self, VulkanError> {
        Self::with_device(None)
    }

    /// Opens the device `selector` names (index or name substring), or the best one if `None`.
    pub fn with_device(selector: Option<&str>) -> Result<Self, VulkanError> {
        let dev = Arc::new(GpuDevice::open(selector)?);
        let storage = vk::BufferUsageFlags::STORAGE_BUFFER;
        Ok(VulkanBackend {
            resources: HashMap::new(),
            scanouts: Scanouts::default(),
            contexts: HashMap::new(),
            venus: venus::VenusContexts::default(),
            timelines: timeline::Timelines::default(),
            memory_used: 0,
            staging: Staging::new(&dev),
            compose: ComposePipeline::new(&dev)?,
            params: GpuBuffer::new(
                &dev,
                shader::ComposeParams::BYTES as u64,
                storage,
                MemoryUse::Upload,
            )?,
            no_cursor: GpuBuffer::new(&dev, 256, storage, MemoryUse::DeviceLocal)?,
            submitter: Submitter::new(&dev)?,
            dev,
        })
    }

    /// The name of the physical device in use.
    pub fn device_name(&self) -> &str {
        &self.dev.name
    }

    /// Reserves `bytes` of the memory budget.
    fn charge(&mut self, bytes: u64) -> Result<(), GpuError> {
        match self.memory_used.checked_add(bytes) {
            Some(total) if total <= MEMORY_LIMIT => {
                self.memory_used = total;
                Ok(())
            }
            _ => Err(GpuError::OutOfDeviceMemory),
        }
    }
}

impl GpuBackend for VulkanBackend {
    fn name(&self) -> &'static str {
        "vulkan"
    }
}

impl Drop for VulkanBackend {
    fn drop(&mut self) {
        // SAFETY: the device is live (this backend holds an Arc to it); waiting idle before the
        // fields drop guarantees no buffer, pipeline or command buffer is destroyed while in use.
        let _ = unsafe { self.dev.device.device_wait_idle() };
    }
}
