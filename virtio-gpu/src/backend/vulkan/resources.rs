//! Resources of the Vulkan backend: linear images (2D, or 3D context resources with layers) in
//! Vulkan buffers, and HOST3D blobs in exportable memory.

use ash::vk;
use gpu_interface::{GpuError, GpuResult, PixelFormat, Rect, ResourceId, Transfer3d};

use super::memory::{ExportableMemory, GpuBuffer, MemoryUse};
use super::transfer::Linear;
use super::VulkanBackend;

/// Gallium's PIPE_BUFFER target: a 3D resource that is a linear byte buffer (1 byte per pixel).
pub const PIPE_BUFFER: u32 = 0;

/// Rows of pixels in a `VkBuffer`: `layers` images of `height` rows, `stride` bytes apart.
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub layers: u32,
    pub bpp: u32,
    pub stride: u32,
    /// The format when the image is a 2D (displayable) resource.
    pub format: Option<PixelFormat>,
    pub buffer: GpuBuffer,
}

impl Image {
    pub fn linear(&self) -> Linear {
        Linear {
            buffer: self.buffer.buffer,
            stride: self.stride,
            bpp: self.bpp,
            rows: self.height,
        }
    }

    /// Checks that `rect` x `depth` layers from `layer` lies inside the image.
    pub fn check_box(&self, rect: &Rect, layer: u32, depth: u32) -> GpuResult<()> {
        let layers_end = layer.checked_add(depth);
        if !rect.fits_in(self.width, self.height) || layers_end.is_none_or(|e| e > self.layers) {
            return Err(GpuError::InvalidParameter("box outside the resource"));
        }
        Ok(())
    }

    /// The box of a 3D transfer (level 0 only), as (rect, first layer, layer count).
    pub fn transfer_box(&self, t: &Transfer3d) -> GpuResult<(Rect, u32, u32)> {
        super::super::transfer_box(t, |rect, layer, depth| self.check_box(rect, layer, depth))
    }
}

/// A HOST3D blob: exportable memory and whether the guest has it mapped.
pub struct Blob {
    pub memory: ExportableMemory,
    pub mapped: bool,
}

pub enum Resource {
    Image(Image),
    Blob(Blob),
}

impl Resource {
    pub fn bytes(&self) -> u64 {
        match self {
            Resource::Image(img) => img.buffer.size,
            Resource::Blob(b) => b.memory.size,
        }
    }
}

/// The shape of an image to create.
pub struct ImageShape {
    pub width: u32,
    pub height: u32,
    pub layers: u32,
    pub bpp: u32,
    pub format: Option<PixelFormat>,
}

impl VulkanBackend {
    pub(super) fn image(&self, id: ResourceId) -> GpuResult<&Image> {
        match self.resources.get(&id) {
            Some(Resource::Image(img)) => Ok(img),
            Some(Resource::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    /// Creates a zeroed image in device memory, within the memory budget, and inserts it as `id`.
    pub(super) fn insert_image(&mut self, id: ResourceId, shape: ImageShape) -> GpuResult<()> {
        if shape.width == 0 || shape.height == 0 || shape.layers == 0 {
            return Err(GpuError::InvalidParameter("zero-sized resource"));
        }
        let stride = shape
            .width
            .checked_mul(shape.bpp)
            .ok_or(GpuError::InvalidParameter("too wide"))?;
        let size = u64::from(stride)
            .checked_mul(u64::from(shape.height))
            .and_then(|n| n.checked_mul(u64::from(shape.layers)))
            .filter(|&n| n <= super::MEMORY_LIMIT)
            .ok_or(GpuError::OutOfDeviceMemory)?;
        if id == 0 || self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        // Vulkan fills and copies want 4-byte multiples; 1-byte images round up.
        let alloc = size.next_multiple_of(4);
        self.charge(alloc)?;
        let usage = vk::BufferUsageFlags::TRANSFER_SRC
            | vk::BufferUsageFlags::TRANSFER_DST
            | vk::BufferUsageFlags::STORAGE_BUFFER;
        let buffer = match GpuBuffer::new(&self.dev, alloc, usage, MemoryUse::DeviceLocal) {
            Ok(buffer) => buffer,
            Err(e) => {
                self.memory_used -= alloc;
                return Err(e.into());
            }
        };
        let target = buffer.buffer;
        let image = Image {
            width: shape.width,
            height: shape.height,
            layers: shape.layers,
            bpp: shape.bpp,
            stride,
            format: shape.format,
            buffer,
        };
        self.resources.insert(id, Resource::Image(image));
        // Fresh device memory may still hold someone else's pixels: clear it.
        self.submitter.run(|d, cmd| {
            // SAFETY: `cmd` is recording; the buffer is live, has TRANSFER_DST usage, and its
            // size is a multiple of 4, so a WHOLE_SIZE fill is valid.
            unsafe { d.cmd_fill_buffer(cmd, target, 0, vk::WHOLE_SIZE, 0) }
        })?;
        Ok(())
    }
}
