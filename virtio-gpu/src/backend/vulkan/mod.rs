//! The Vulkan backend: 3D resources live in Vulkan memory (transfers go through a host-visible
//! staging buffer with one queue submission per transfer), 2D resources in host memory with a
//! device copy made when the GPU first uses one, scanouts in host memory where display listeners
//! read them, the private "VG" capset's command stream runs as GPU copies and fills, and fences
//! are markers on a timeline semaphore.
//!
//! Layout: [`device`] (loader, physical device choice, queue), [`memory`] (buffers and exportable
//! blob memory), `resources` (images and blobs), `submit` (command recording, submission, the
//! timeline semaphore), `transfer` (staging and row copies), `display` (the `DisplayBackend` half), `compute` (contexts, fences, 3D
//! resources, host blobs), `stream` (the VG command stream), `timeline` (fence ordering) and
//! `venus` (capset VENUS contexts, served by the `venus` renderer).
//!
//! Every device image is a linear `VkBuffer` (`stride = width * bytes per pixel`): transfers and
//! the VG commands are then plain buffer copies and fills.

mod compute;
pub mod device;
mod display;
pub mod memory;
mod resources;
mod stream;
mod submit;
mod timeline;
mod transfer;
mod venus;

use std::collections::HashMap;
use std::sync::Arc;

use ash::vk;
use gpu_interface::{GpuBackend, GpuError, ResourceId};

use super::host_display::HostDisplay;
use device::GpuDevice;
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
    display: HostDisplay,
    contexts: HashMap<u32, Context>,
    venus: venus::VenusContexts,
    timelines: timeline::Timelines,
    memory_used: u64,
    staging: Staging,
    /// One row of a 2D transfer, compared with the resource before it is written.
    scratch: Vec<u8>,
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
        Ok(VulkanBackend {
            resources: HashMap::new(),
            display: HostDisplay::default(),
            contexts: HashMap::new(),
            venus: venus::VenusContexts::default(),
            timelines: timeline::Timelines::default(),
            memory_used: 0,
            staging: Staging::new(&dev),
            scratch: Vec::new(),
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

    fn set_slice_limits(&mut self, limits: gpu_interface::SliceLimits) {
        self.submitter.gate = limits.gate.clone();
        self.venus.limits = limits;
    }
}

impl Drop for VulkanBackend {
    fn drop(&mut self) {
        // SAFETY: the device is live (this backend holds an Arc to it); waiting idle before the
        // fields drop guarantees no buffer, pipeline or command buffer is destroyed while in use.
        let _ = unsafe { self.dev.device.device_wait_idle() };
    }
}
