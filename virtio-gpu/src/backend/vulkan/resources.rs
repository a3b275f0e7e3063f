//! Resources of the Vulkan backend: linear images (2D, or 3D context resources with layers) in
//! Vulkan buffers, and HOST3D blobs in exportable memory.

use ash::vk;
use gpu_interface::{GpuError, GpuResult, Rect, Resource2dDesc, ResourceId, Transfer3d};

use super::memory::{ExportableMemory, GpuBuffer, MemoryUse};
use super::transfer::Linear;
use super::VulkanBackend;
use crate::backend::software::resources::Image as HostImage;

/// Gallium's PIPE_BUFFER target: a 3D resource that is a linear byte buffer (1 byte per pixel).
pub const PIPE_BUFFER: u32 = 0;

/// Rows of pixels: `layers` images of `height` rows, `stride` bytes apart.
///
/// A 3D resource lives in a `VkBuffer` only. A 2D resource lives in host memory, where the
/// display and the guest's transfers use it, and gets a `VkBuffer` copy on its first GPU use
/// (a VG context filling or copying it); each copy is brought up to date from the other when it
/// is next used after the other was written (`stale`).
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub layers: u32,
    pub bpp: u32,
    pub stride: u32,
    /// The device copy.
    pub gpu: Option<GpuBuffer>,
    /// The host copy (2D resources).
    pub host: Option<HostImage>,
    pub stale: Stale,
}

/// Which copy of an image with both lacks the other's latest writes, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stale {
    Neither,
    Gpu(Rect),
    Host(Rect),
}

impl Image {
    /// The device copy as a linear image; [`VulkanBackend::on_gpu`] makes it exist.
    pub fn linear(&self) -> GpuResult<Linear> {
        let gpu = self
            .gpu
            .as_ref()
            .ok_or(GpuError::Backend("image has no device copy".into()))?;
        Ok(Linear {
            buffer: gpu.buffer,
            stride: self.stride,
            bpp: self.bpp,
            rows: self.height,
        })
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

    fn bytes(&self) -> u64 {
        let gpu = self.gpu.as_ref().map_or(0, |b| b.size);
        gpu + self.host.as_ref().map_or(0, |h| h.data.len() as u64)
    }

    fn full(&self) -> Rect {
        Rect::full(self.width, self.height)
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
            Resource::Image(img) => img.bytes(),
            Resource::Blob(b) => b.memory.size,
        }
    }
}

/// The shape of a device image to create.
pub struct ImageShape {
    pub width: u32,
    pub height: u32,
    pub layers: u32,
    pub bpp: u32,
}

impl VulkanBackend {
    pub(super) fn image(&self, id: ResourceId) -> GpuResult<&Image> {
        match self.resources.get(&id) {
            Some(Resource::Image(img)) => Ok(img),
            Some(Resource::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    pub(super) fn image_mut(&mut self, id: ResourceId) -> GpuResult<&mut Image> {
        match self.resources.get_mut(&id) {
            Some(Resource::Image(img)) => Ok(img),
            Some(Resource::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    /// Creates a zeroed 2D image in host memory, within the memory budget, as `id`.
    pub(super) fn insert_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()> {
        let host = HostImage::new_2d(desc, super::MEMORY_LIMIT)?;
        if id == 0 || self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        self.charge(host.data.len() as u64)?;
        let image = Image {
            width: host.width,
            height: host.height,
            layers: 1,
            bpp: host.bpp,
            stride: host.stride,
            gpu: None,
            host: Some(host),
            stale: Stale::Neither,
        };
        self.resources.insert(id, Resource::Image(image));
        Ok(())
    }

    /// A zeroed device buffer of `size` bytes (rounded up to 4), charged to the budget.
    fn device_buffer(&mut self, size: u64) -> GpuResult<GpuBuffer> {
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
        // Fresh device memory may still hold someone else's pixels: clear it.
        self.submitter.run(|d, cmd| {
            // SAFETY: `cmd` is recording; the buffer is live, has TRANSFER_DST usage, and its
            // size is a multiple of 4, so a WHOLE_SIZE fill is valid.
            unsafe { d.cmd_fill_buffer(cmd, target, 0, vk::WHOLE_SIZE, 0) }
        })?;
        Ok(buffer)
    }

    /// Creates a zeroed image in device memory (a 3D resource), within the memory budget, and
    /// inserts it as `id`.
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
        let buffer = self.device_buffer(size)?;
        let image = Image {
            width: shape.width,
            height: shape.height,
            layers: shape.layers,
            bpp: shape.bpp,
            stride,
            gpu: Some(buffer),
            host: None,
            stale: Stale::Neither,
        };
        self.resources.insert(id, Resource::Image(image));
        Ok(())
    }

    /// Makes the device copy of image `id` exist and hold its latest pixels.
    pub(super) fn on_gpu(&mut self, id: ResourceId) -> GpuResult<()> {
        let img = self.image(id)?;
        if img.gpu.is_none() {
            let size = u64::from(img.stride) * u64::from(img.height) * u64::from(img.layers);
            let full = img.full();
            let buffer = self.device_buffer(size)?;
            let img = self.image_mut(id)?;
            img.gpu = Some(buffer);
            img.stale = Stale::Gpu(full);
        }
        let Some(Resource::Image(img)) = self.resources.get_mut(&id) else {
            return Err(GpuError::InvalidResourceId(id));
        };
        let Stale::Gpu(rect) = img.stale else {
            return Ok(());
        };
        let (dst, host) = (img.linear()?, img.host.as_ref());
        let host = host.ok_or(GpuError::Backend(
            "stale device copy without a host one".into(),
        ))?;
        let mut rows = |row: u32, out: &mut [u8]| {
            let range = host.row(0, rect.y + row, rect.x, rect.width)?;
            let src = host
                .data
                .get(range)
                .ok_or(GpuError::Backend("row".into()))?;
            out.copy_from_slice(src);
            Ok(())
        };
        self.staging
            .upload(&mut self.submitter, dst, rect, (0, 1), &mut rows)?;
        img.stale = Stale::Neither;
        Ok(())
    }

    /// Makes the host copy of image `id` (a 2D resource) hold its latest pixels; what the GPU
    /// changed counts as changed for the next flush.
    pub(super) fn on_host(&mut self, id: ResourceId) -> GpuResult<()> {
        let Some(Resource::Image(img)) = self.resources.get_mut(&id) else {
            return self.image(id).map(drop);
        };
        let Stale::Host(rect) = img.stale else {
            return Ok(());
        };
        let src = img.linear()?;
        let mut rows: Vec<u8> = Vec::new();
        let mut take = |_: u32, row: &[u8]| {
            rows.extend_from_slice(row);
            Ok(())
        };
        self.staging
            .download(&mut self.submitter, src, rect, (0, 1), &mut take)?;
        let host = img.host.as_mut().ok_or(GpuError::Backend(
            "stale host copy without a host one".into(),
        ))?;
        let row_len = rect.width as usize * host.bpp as usize;
        let mut source = |row: u32, out: &mut [u8]| {
            let start = row as usize * row_len;
            let src = rows
                .get(start..start + row_len)
                .ok_or(GpuError::Backend("short read-back".into()))?;
            out.copy_from_slice(src);
            Ok(())
        };
        host.write_rect_tracked(rect, &mut source, &mut self.scratch)?;
        img.stale = Stale::Neither;
        Ok(())
    }

    /// The host copy of image `id`, brought up to date; `None` for a device-only (3D) image.
    pub(super) fn host_copy(&mut self, id: ResourceId) -> GpuResult<Option<&mut HostImage>> {
        self.on_host(id)?;
        Ok(self.image_mut(id)?.host.as_mut())
    }

    /// Records that the host copy of `id` was written in `rect` (after [`Self::on_host`]).
    pub(super) fn host_wrote(&mut self, id: ResourceId, rect: Rect) {
        if let Ok(img) = self.image_mut(id) {
            if img.gpu.is_some() && !rect.is_empty() {
                img.stale = Stale::Gpu(match img.stale {
                    Stale::Gpu(r) => r.bounding_box(&rect),
                    _ => rect,
                });
            }
        }
    }

    /// Records that the device copy of `id` was written in `rect` (after [`Self::on_gpu`]).
    pub(super) fn gpu_wrote(&mut self, id: ResourceId, rect: Rect) {
        if let Ok(img) = self.image_mut(id) {
            if img.host.is_some() && !rect.is_empty() {
                img.stale = Stale::Host(match img.stale {
                    Stale::Host(r) => r.bounding_box(&rect),
                    _ => rect,
                });
            }
        }
    }
}
