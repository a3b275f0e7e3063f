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
    /// GPU writes, host reads (read-back staging); cached when the device offers it.
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

/// Host memory for a HOST3D blob: a memfd mapped here and imported into Vulkan
/// (`VK_EXT_external_memory_host`), so a transport can mmap the same pages into the guest
/// through the fd while the device can use them as Vulkan memory.
///
/// (Exporting Vulkan memory as an `OPAQUE_FD` would not do: an opaque fd is only defined for
/// importing into another Vulkan device, not for mmap; lavapipe's, for one, has a header in front
/// of the memory.)
pub struct ExportableMemory {
    dev: Arc<GpuDevice>,
    memory: vk::DeviceMemory,
    /// A transfer buffer over the whole imported memory, so GPU commands can write the blob.
    pub buffer: vk::Buffer,
    file: std::fs::File,
    ptr: NonNull<u8>,
    /// The mapped (and imported) length: `size` rounded up to the import alignment.
    mapped_len: usize,
    pub size: u64,
}

// SAFETY: the mapping is owned by this value, which never dereferences it (only Vulkan and the
// guest, through exported fds, access the pages), so moving it to another thread is sound.
unsafe impl Send for ExportableMemory {}

impl ExportableMemory {
    /// Allocates `size` bytes of shared host memory the device imports.
    pub fn new(dev: &Arc<GpuDevice>, size: u64) -> Result<Self, VulkanError> {
        if size == 0 {
            return Err(VulkanError::ZeroSize);
        }
        let (ext, align) = dev
            .external_host
            .as_ref()
            .ok_or(VulkanError::NoExternalMemory)?;
        let len = size.next_multiple_of(*align);
        let mapped_len = usize::try_from(len).map_err(|_| VulkanError::OutOfRange)?;
        // SAFETY: a static NUL-terminated name and valid flags; the call only creates an fd.
        let fd = unsafe { libc::memfd_create(c"vgpu-vk-blob".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(VulkanError::Other(format!(
                "memfd_create: {}",
                std::io::Error::last_os_error()
            )));
        }
        // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
        let file = std::fs::File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len(len)
            .map_err(|e| VulkanError::Other(format!("blob size: {e}")))?;
        // SAFETY: a fresh shared mapping of the whole file; unmapped in Drop (or just below).
        let raw = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                mapped_len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                std::os::fd::AsRawFd::as_raw_fd(&file),
                0,
            )
        };
        if raw == libc::MAP_FAILED {
            return Err(VulkanError::Other(format!(
                "mmap: {}",
                std::io::Error::last_os_error()
            )));
        }
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(VulkanError::Other("mmap: null".into()))?;
        let mut this = ExportableMemory {
            dev: dev.clone(),
            memory: vk::DeviceMemory::null(),
            buffer: vk::Buffer::null(),
            file,
            ptr,
            mapped_len,
            size,
        };
        let handle = vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT;
        let mut props = vk::MemoryHostPointerPropertiesEXT::default();
        // SAFETY: `ptr` is a live mapping aligned to (at least) the import alignment; `props`
        // outlives the call.
        let got = unsafe {
            (ext.fp().get_memory_host_pointer_properties_ext)(
                dev.device.handle(),
                handle,
                raw.cast_const(),
                &mut props,
            )
        };
        got.result()
            .map_err(VulkanError::vk("vkGetMemoryHostPointerPropertiesEXT"))?;
        let mut external = vk::ExternalMemoryBufferCreateInfo::default().handle_types(handle);
        let info = vk::BufferCreateInfo::default()
            .size(len)
            .usage(vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST)
            .sharing_mode(vk::SharingMode::EXCLUSIVE)
            .push_next(&mut external);
        // SAFETY: valid create-info whose chain outlives the call; destroyed in Drop.
        this.buffer = unsafe { dev.device.create_buffer(&info, None) }
            .map_err(VulkanError::vk("vkCreateBuffer(blob)"))?;
        // SAFETY: the buffer is live.
        let reqs = unsafe { dev.device.get_buffer_memory_requirements(this.buffer) };
        if reqs.size > len {
            return Err(VulkanError::NoMemoryType);
        }
        let host = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let type_index = dev
            .memory_type(
                props.memory_type_bits & reqs.memory_type_bits,
                vk::MemoryPropertyFlags::empty(),
                host,
            )
            .ok_or(VulkanError::NoMemoryType)?;
        let mut import = vk::ImportMemoryHostPointerInfoEXT::default()
            .handle_type(handle)
            .host_pointer(raw);
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(len)
            .memory_type_index(type_index)
            .push_next(&mut import);
        // SAFETY: imports `len` bytes at `ptr`, which stay mapped until after the memory is
        // freed in Drop; the chain (`import`) outlives the call.
        this.memory = unsafe { dev.device.allocate_memory(&alloc, None) }
            .map_err(VulkanError::vk("vkAllocateMemory(host import)"))?;
        // SAFETY: buffer and memory are fresh objects of this device; the type fits the
        // buffer's requirements and the memory is at least `reqs.size` long.
        unsafe { dev.device.bind_buffer_memory(this.buffer, this.memory, 0) }
            .map_err(VulkanError::vk("vkBindBufferMemory(blob)"))?;
        Ok(this)
    }

    /// A new fd referring to this memory (offset 0, `size` bytes), for mmap.
    pub fn export_fd(&self) -> Result<OwnedFd, VulkanError> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| VulkanError::Other(format!("dup: {e}")))?;
        Ok(OwnedFd::from(file))
    }
}

impl Drop for ExportableMemory {
    fn drop(&mut self) {
        // SAFETY: no submission using the buffer is pending (every one is waited for); a null
        // handle from a failed `new` is ignored.
        unsafe { self.dev.device.destroy_buffer(self.buffer, None) };
        if self.memory != vk::DeviceMemory::null() {
            // SAFETY: no GPU work uses blob memory when the backend drops it (every submission
            // is waited for); freed before the pages it imports are unmapped.
            unsafe { self.dev.device.free_memory(self.memory, None) };
        }
        // SAFETY: the mapping made in `new`, unmapped once; exported fds keep the file alive.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.mapped_len) };
    }
}
