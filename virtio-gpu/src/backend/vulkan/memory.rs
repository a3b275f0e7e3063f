//! Buffers in Vulkan memory: resource storage (device-local), staging for uploads and
//! read-back (host-visible, persistently mapped), and exportable host blobs.

use std::os::fd::{FromRawFd, OwnedFd};
use std::ptr::NonNull;
use std::sync::Arc;

use ash::vk;

use super::device::GpuDevice;
use super::VulkanError;

/// Where a buffer's memory should live.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MemoryUse {
    /// Fast for the GPU; the host never touches it.
    DeviceLocal,
    /// Host writes, GPU reads (staging for uploads).
    Upload,
    /// GPU writes, host reads (read-back, composed frames); cached when the device offers it.
    Readback,
}

/// A `VkBuffer` with its own memory allocation; destroyed on drop.
pub struct GpuBuffer {
    dev: Arc<GpuDevice>,
    pub buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    pub size: u64,
    /// Host mapping of the whole buffer, for `Upload` and `Readback` buffers.
    mapped: Option<NonNull<u8>>,
}

// SAFETY: the mapping pointer refers to memory this buffer owns exclusively; it is only
// dereferenced through `&self`/`&mut self`, so moving the buffer to another thread is sound.
unsafe impl Send for GpuBuffer {}

impl GpuBuffer {
    /// Creates a buffer of `size` (> 0) bytes for `usage`, with memory for `mem_use`.
    pub fn new(
        dev: &Arc<GpuDevice>,
        size: u64,
        usage: vk::BufferUsageFlags,
        mem_use: MemoryUse,
    ) -> Result<Self, VulkanError> {
        if size == 0 {
            return Err(VulkanError::ZeroSize);
        }
        let d = &dev.device;
        let info = vk::BufferCreateInfo::default()
            .size(size)
            .usage(usage)
            .sharing_mode(vk::SharingMode::EXCLUSIVE);
        // SAFETY: `info` is a valid create-info; the buffer is destroyed on every path below.
        let buffer =
            unsafe { d.create_buffer(&info, None) }.map_err(VulkanError::vk("vkCreateBuffer"))?;
        let mut this = GpuBuffer {
            dev: dev.clone(),
            buffer,
            memory: vk::DeviceMemory::null(),
            size,
            mapped: None,
        };
        // SAFETY: `buffer` is a live buffer of this device.
        let reqs = unsafe { d.get_buffer_memory_requirements(buffer) };
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let (required, preferred) = match mem_use {
            MemoryUse::DeviceLocal => (
                vk::MemoryPropertyFlags::empty(),
                vk::MemoryPropertyFlags::DEVICE_LOCAL,
            ),
            MemoryUse::Upload => (host, vk::MemoryPropertyFlags::empty()),
            MemoryUse::Readback => (host, vk::MemoryPropertyFlags::HOST_CACHED),
        };
        let type_index = dev
            .memory_type(reqs.memory_type_bits, required, preferred)
            .ok_or(VulkanError::NoMemoryType)?;
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(reqs.size)
            .memory_type_index(type_index);
        // SAFETY: the allocation info names a memory type of this device; `this` frees it on drop.
        this.memory = unsafe { d.allocate_memory(&alloc, None) }
            .map_err(VulkanError::vk("vkAllocateMemory"))?;
        // SAFETY: fresh buffer and memory of this device; the memory type fits the requirements.
        unsafe { d.bind_buffer_memory(buffer, this.memory, 0) }
            .map_err(VulkanError::vk("vkBindBufferMemory"))?;
        if mem_use != MemoryUse::DeviceLocal {
            // SAFETY: host-visible memory, not mapped yet, whole range.
            let ptr = unsafe {
                d.map_memory(this.memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
            }
            .map_err(VulkanError::vk("vkMapMemory"))?;
            this.mapped = NonNull::new(ptr.cast::<u8>());
            if this.mapped.is_none() {
                return Err(VulkanError::Other("vkMapMemory returned null".into()));
            }
        }
        Ok(this)
    }

    /// The mapped bytes (host-coherent), for `Upload` and `Readback` buffers.
    pub fn bytes(&self) -> Option<&[u8]> {
        let len = usize::try_from(self.size).ok()?;
        // SAFETY: `mapped` covers the whole buffer (`size` bytes, host-coherent) for as long as
        // `self` lives; GPU writes into it are complete whenever the host holds `&self`, because
        // every submission is waited for before returning.
        self.mapped
            .map(|p| unsafe { std::slice::from_raw_parts(p.as_ptr(), len) })
    }

    /// The mapped bytes, writable.
    pub fn bytes_mut(&mut self) -> Option<&mut [u8]> {
        let len = usize::try_from(self.size).ok()?;
        // SAFETY: as in `bytes`, and `&mut self` makes this the only view of the mapping.
        self.mapped
            .map(|p| unsafe { std::slice::from_raw_parts_mut(p.as_ptr(), len) })
    }
}

impl Drop for GpuBuffer {
    fn drop(&mut self) {
        let d = &self.dev.device;
        // SAFETY: the buffer is not in use: every submission is waited for before the call that
        // made it returns, and the backend waits idle before dropping its state.
        unsafe { d.destroy_buffer(self.buffer, None) };
        if self.memory != vk::DeviceMemory::null() {
            // SAFETY: as above; freeing also unmaps the memory.
            unsafe { d.free_memory(self.memory, None) };
        }
    }
}

/// Host memory for a HOST3D blob, allocated exportable so a transport can mmap it as an fd.
pub struct ExportableMemory {
    dev: Arc<GpuDevice>,
    memory: vk::DeviceMemory,
    pub size: u64,
}

impl ExportableMemory {
    /// Allocates `size` bytes of host-visible memory that can be exported as an opaque fd.
    pub fn new(dev: &Arc<GpuDevice>, size: u64) -> Result<Self, VulkanError> {
        if size == 0 {
            return Err(VulkanError::ZeroSize);
        }
        if dev.external_fd.is_none() {
            return Err(VulkanError::NoExternalMemory);
        }
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let type_index = dev
            .memory_type(u32::MAX, host, vk::MemoryPropertyFlags::HOST_CACHED)
            .ok_or(VulkanError::NoMemoryType)?;
        let mut export = vk::ExportMemoryAllocateInfo::default()
            .handle_types(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(size)
            .memory_type_index(type_index)
            .push_next(&mut export);
        // SAFETY: valid allocation info whose chain (`export`) outlives the call; freed on drop.
        let memory = unsafe { dev.device.allocate_memory(&alloc, None) }
            .map_err(VulkanError::vk("vkAllocateMemory(export)"))?;
        Ok(ExportableMemory {
            dev: dev.clone(),
            memory,
            size,
        })
    }

    /// A new fd referring to this memory (each call exports a fresh one).
    pub fn export_fd(&self) -> Result<OwnedFd, VulkanError> {
        let ext = self
            .dev
            .external_fd
            .as_ref()
            .ok_or(VulkanError::NoExternalMemory)?;
        let info = vk::MemoryGetFdInfoKHR::default()
            .memory(self.memory)
            .handle_type(vk::ExternalMemoryHandleTypeFlags::OPAQUE_FD);
        // SAFETY: the memory was allocated exportable as OPAQUE_FD by this device.
        let fd =
            unsafe { ext.get_memory_fd(&info) }.map_err(VulkanError::vk("vkGetMemoryFdKHR"))?;
        if fd < 0 {
            return Err(VulkanError::Other(format!(
                "vkGetMemoryFdKHR returned fd {fd}"
            )));
        }
        // SAFETY: vkGetMemoryFdKHR hands ownership of a new fd to the caller.
        Ok(unsafe { OwnedFd::from_raw_fd(fd) })
    }
}

impl Drop for ExportableMemory {
    fn drop(&mut self) {
        // SAFETY: no GPU work uses blob memory (no command stream reaches it); exported fds keep
        // their own reference to the underlying memory.
        unsafe { self.dev.device.free_memory(self.memory, None) };
    }
}
