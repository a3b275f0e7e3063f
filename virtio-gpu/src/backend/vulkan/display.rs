//! The display half of the Vulkan backend: 2D resources, scanout front buffers (updated on set
//! and flush, by GPU copies), the cursor plane and GPU composition on read-back.
//!
//! Semantics follow the software backend exactly (the conformance suite compares them pixel for
//! pixel): a scanout shows a front copy of its rectangle, refreshed by SET_SCANOUT and by flushes;
//! the cursor image is taken at SET_CURSOR time; `read_scanout` composes front plus cursor.

use ash::vk;
use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, DisplayBackend, Frame, GpuError, GpuResult, PixelFormat, Rect, Resource2dDesc,
    ResourceId, RowSink, RowSource, ScanoutId,
};

use super::super::compose;
use super::super::contexts::ContextTable;
use super::super::scanouts::{self, Cursor, Shown};
use super::memory::{GpuBuffer, MemoryUse};
use super::pipeline::ComposeBuffers;
use super::resources::{ImageShape, Resource};
use super::shader::{pack_shifts, ComposeParams};
use super::transfer::{rect_regions, Linear};
use super::VulkanBackend;

/// The cursor plane's edge length.
const CURSOR_SIZE: u32 = 64;

/// The cursor's pixels (top-left 64x64 of its resource, in the resource's format) as of
/// SET_CURSOR.
pub(super) struct CursorPixels {
    format: PixelFormat,
    /// Visible part of the 64x64 plane (smaller resources leave the rest transparent).
    size: (u32, u32),
    buffer: GpuBuffer,
}

/// Where composition writes (a scanout's `extra`); kept while the scanout size stays the same.
#[derive(Default)]
pub(super) struct FrameBuffer(Option<GpuBuffer>);

/// Front buffers are host-visible GPU buffers, copied into on set and flush.
pub(super) type Scanouts = scanouts::Scanouts<GpuBuffer, CursorPixels, FrameBuffer>;

impl VulkanBackend {
    /// Copies `rect` of image `id` to (`dx`, `dy`) of `dst`, on the GPU.
    fn copy_from_image(
        &mut self,
        id: ResourceId,
        rect: Rect,
        dst: Linear,
        dx: u32,
        dy: u32,
    ) -> GpuResult<()> {
        let src = self.image(id)?.linear();
        let regions = rect_regions(src, rect, dst, dx, dy);
        if regions.is_empty() {
            return Ok(());
        }
        self.submitter.run(|d, cmd| {
            // SAFETY: `cmd` is recording; both buffers are live and the callers checked `rect`
            // against the source image and the destination size.
            unsafe { d.cmd_copy_buffer(cmd, src.buffer, dst.buffer, &regions) }
        })?;
        Ok(())
    }

    /// Makes sure scanout `index` (which shows something) has a host-visible frame buffer of
    /// its size; returns that size in bytes.
    fn frame_buffer(&mut self, index: usize) -> GpuResult<u64> {
        let s = &self.scanouts[index];
        let shown = s.shown()?;
        let frame_bytes = u64::from(shown.rect.width) * u64::from(shown.rect.height) * 4;
        let reuse = s.extra.0.as_ref().is_some_and(|f| f.size == frame_bytes);
        if !reuse {
            self.scanouts[index].extra.0 = None;
            let usage = vk::BufferUsageFlags::STORAGE_BUFFER | vk::BufferUsageFlags::TRANSFER_DST;
            let frame = GpuBuffer::new(&self.dev, frame_bytes, usage, MemoryUse::Readback)?;
            self.scanouts[index].extra.0 = Some(frame);
        }
        Ok(frame_bytes)
    }

    /// Composes `scanout` into its frame buffer and returns the frame.
    fn compose(&mut self, index: usize) -> GpuResult<Frame> {
        let s = &self.scanouts[index];
        let shown = s.shown()?;
        let (w, h) = (shown.rect.width, shown.rect.height);
        let mut params = ComposeParams {
            width: w,
            height: h,
            plane_shifts: pack_shifts(shown.format.channel_offsets()),
            ..Default::default()
        };
        if let Some(c) = &s.cursor {
            let x = i64::from(s.cursor_pos.0) - i64::from(c.image.hot_x.min(CURSOR_SIZE));
            let y = i64::from(s.cursor_pos.1) - i64::from(c.image.hot_y.min(CURSOR_SIZE));
            let visible = x < i64::from(w) && y < i64::from(h) && x > -64 && y > -64;
            if let (true, Ok(x), Ok(y)) = (visible, i32::try_from(x), i32::try_from(y)) {
                params.cursor_x = x;
                params.cursor_y = y;
                params.cursor_w = c.pixels.size.0;
                params.cursor_h = c.pixels.size.1;
                params.cursor_shifts = pack_shifts(c.pixels.format.channel_offsets());
                params.cursor_has_alpha = u32::from(c.pixels.format.has_alpha());
                // Only the part of the cursor inside the frame is dispatched.
                let x0 = x.max(0) as u32;
                let y0 = y.max(0) as u32;
                let x1 = (i64::from(x) + i64::from(c.pixels.size.0)).clamp(0, i64::from(w)) as u32;
                let y1 = (i64::from(y) + i64::from(c.pixels.size.1)).clamp(0, i64::from(h)) as u32;
                params.origin_x = x0;
                params.origin_y = y0;
                params.extent_w = x1.saturating_sub(x0);
                params.extent_h = y1.saturating_sub(y0);
            }
        }
        let frame_bytes = self.frame_buffer(index)?;
        let s = &self.scanouts[index];
        let (Some(shown), Some(frame)) = (s.shown.as_ref(), s.extra.0.as_ref()) else {
            return Err(GpuError::Backend("scanout state".into()));
        };
        let params_buf = self
            .params
            .bytes_mut()
            .ok_or(GpuError::Backend("params not mapped".into()))?;
        params_buf[..ComposeParams::BYTES].copy_from_slice(&params.to_bytes());
        let cursor = s
            .cursor
            .as_ref()
            .map_or(self.no_cursor.buffer, |c| c.pixels.buffer.buffer);
        let buffers = ComposeBuffers {
            plane: shown.front.buffer,
            bytes: frame_bytes,
            cursor,
            frame: frame.buffer,
            params: self.params.buffer,
        };
        self.compose.bind(&buffers);
        let pipeline = &self.compose;
        self.submitter
            .run(|d, cmd| pipeline.record(d, cmd, &buffers, &params))?;
        let format = shown.format;
        let data = frame
            .bytes()
            .ok_or(GpuError::Backend("frame not mapped".into()))?;
        Ok(Frame {
            width: w,
            height: h,
            stride: w * 4,
            format,
            data: data.to_vec(),
        })
    }
}

/// The smallest rectangle holding `a` and `b`.
fn bounding_box(a: Rect, b: Rect) -> Rect {
    let (x0, y0) = (a.x.min(b.x), a.y.min(b.y));
    let x1 = (a.x + a.width).max(b.x + b.width);
    let y1 = (a.y + a.height).max(b.y + b.height);
    Rect::new(x0, y0, x1 - x0, y1 - y0)
}

impl DisplayBackend for VulkanBackend {
    fn create_resource_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()> {
        let shape = ImageShape {
            width: desc.width,
            height: desc.height,
            layers: 1,
            bpp: desc.format.bytes_per_pixel(),
            format: Some(desc.format),
        };
        self.insert_image(id, shape)
    }

    fn destroy_resource(&mut self, id: ResourceId) -> GpuResult<()> {
        if self.venus.owns_resource(id) {
            return self.venus.destroy_resource(id);
        }
        let resource = self
            .resources
            .remove(&id)
            .ok_or(GpuError::InvalidResourceId(id))?;
        self.memory_used = self.memory_used.saturating_sub(resource.bytes());
        self.scanouts.forget_resource(id);
        self.contexts.forget_resource(id);
        Ok(())
    }

    fn write_rect(
        &mut self,
        id: ResourceId,
        rect: Rect,
        source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        let img = self.image(id)?;
        img.check_box(&rect, 0, 1)?;
        let dst = img.linear();
        self.staging
            .upload(&mut self.submitter, dst, rect, (0, 1), source)
    }

    fn read_rect(&mut self, id: ResourceId, rect: Rect, sink: &mut dyn RowSink) -> GpuResult<()> {
        let img = self.image(id)?;
        img.check_box(&rect, 0, 1)?;
        let src = img.linear();
        self.staging
            .download(&mut self.submitter, src, rect, (0, 1), sink)
    }

    fn set_scanout(
        &mut self,
        scanout: ScanoutId,
        id: Option<ResourceId>,
        rect: Rect,
    ) -> GpuResult<()> {
        let index = self.scanouts.index(scanout)?;
        let Some(id) = id else {
            self.scanouts[index].shown = None;
            return Ok(());
        };
        let img = self.image(id)?;
        let format = img
            .format
            .ok_or(GpuError::InvalidParameter("resource has no 2D format"))?;
        scanouts::check_scanout_rect(rect, img.width, img.height)?;
        let bytes = u64::from(rect.width) * u64::from(rect.height) * 4;
        if bytes > u64::from(self.dev.limits.max_storage_buffer_range) {
            return Err(GpuError::Unsupported(
                "scanout larger than the device's storage buffers",
            ));
        }
        let usage = vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::TRANSFER_SRC;
        // Host-visible: flushes compare it with the resource on the host, listeners read it.
        let front = GpuBuffer::new(&self.dev, bytes, usage, MemoryUse::Readback)?;
        let dst = Linear::packed(front.buffer, rect.width, rect.height);
        // What the resource holds now is shown at once; later changes appear on flush.
        self.copy_from_image(id, rect, dst, 0, 0)?;
        self.scanouts[index].shown = Some(Shown {
            resource: id,
            rect,
            format,
            front,
        });
        Ok(())
    }

    fn flush(&mut self, id: ResourceId, rect: Rect) -> GpuResult<()> {
        self.flush_changed(id, rect).map(|_| ())
    }

    fn flush_changed(&mut self, id: ResourceId, rect: Rect) -> GpuResult<Option<Rect>> {
        let img = match self.resources.get(&id) {
            Some(Resource::Image(img)) => img,
            Some(Resource::Blob(_)) => return Ok(None),
            None => return Err(GpuError::InvalidResourceId(id)),
        };
        scanouts::check_flush_rect(rect, img.width, img.height)?;
        let src = img.linear();
        let mut changed: Option<Rect> = None;
        for index in 0..self.scanouts.len() {
            let Some(shown) = self.scanouts[index].shown.as_ref() else {
                continue;
            };
            if shown.resource != id {
                continue;
            }
            let Some(damage) = rect.intersect(&shown.rect) else {
                continue;
            };
            let origin = (shown.rect.x, shown.rect.y);
            let (w, h) = (shown.rect.width, shown.rect.height);
            let local = Rect::new(
                damage.x - origin.0,
                damage.y - origin.1,
                damage.width,
                damage.height,
            );
            // The damage goes to the host-visible frame buffer (front layout), then only the
            // rows that differ from the front are copied on, and reported.
            self.frame_buffer(index)?;
            let Some(frame) = self.scanouts[index].extra.0.as_ref() else {
                return Err(GpuError::Backend("scanout state".into()));
            };
            let regions = rect_regions(
                src,
                damage,
                Linear::packed(frame.buffer, w, h),
                local.x,
                local.y,
            );
            let dst = frame.buffer;
            self.submitter.run(|d, cmd| {
                // SAFETY: `cmd` is recording; the damage was clipped to the scanout rectangle,
                // which lies inside the resource and matches the frame buffer's size.
                unsafe { d.cmd_copy_buffer(cmd, src.buffer, dst, &regions) }
            })?;
            let s = &mut self.scanouts[index];
            let (Some(shown), Some(frame)) = (s.shown.as_mut(), s.extra.0.as_ref()) else {
                return Err(GpuError::Backend("scanout state".into()));
            };
            let (Some(fresh), Some(front)) = (frame.bytes(), shown.front.bytes_mut()) else {
                return Err(GpuError::Backend("front or frame not mapped".into()));
            };
            if let Some(b) = compose::copy_changed(fresh, front, w * 4, local) {
                let b = Rect::new(b.x + origin.0, b.y + origin.1, b.width, b.height);
                changed = Some(match changed {
                    None => b,
                    Some(c) => bounding_box(c, b),
                });
            }
        }
        Ok(changed)
    }

    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()> {
        let index = self.scanouts.index(scanout)?;
        let Some(cursor_image) = image else {
            self.scanouts[index].cursor = None;
            return Ok(());
        };
        let img = self.image(cursor_image.resource)?;
        let format = img
            .format
            .ok_or(GpuError::InvalidParameter("cursor has no 2D format"))?;
        let size = (img.width.min(CURSOR_SIZE), img.height.min(CURSOR_SIZE));
        let usage = vk::BufferUsageFlags::TRANSFER_DST | vk::BufferUsageFlags::STORAGE_BUFFER;
        let bytes = u64::from(CURSOR_SIZE * CURSOR_SIZE * 4);
        let pixels = GpuBuffer::new(&self.dev, bytes, usage, MemoryUse::DeviceLocal)?;
        let dst = Linear::packed(pixels.buffer, CURSOR_SIZE, CURSOR_SIZE);
        self.copy_from_image(cursor_image.resource, Rect::full(size.0, size.1), dst, 0, 0)?;
        self.scanouts[index].cursor = Some(Cursor {
            image: cursor_image,
            pixels: CursorPixels {
                format,
                size,
                buffer: pixels,
            },
        });
        Ok(())
    }

    fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.scanouts.move_cursor(scanout, x, y)
    }

    fn read_scanout(&mut self, scanout: ScanoutId) -> GpuResult<Frame> {
        let index = self.scanouts.index(scanout)?;
        self.compose(index)
    }

    fn read_scanout_rect(
        &mut self,
        scanout: ScanoutId,
        rect: Rect,
        f: &mut dyn FnMut(&RectView<'_>),
    ) -> GpuResult<()> {
        let index = self.scanouts.index(scanout)?;
        // The front buffer is host-visible: lend it as is.
        let shown = self.scanouts[index].shown()?;
        let (w, h) = (shown.rect.width, shown.rect.height);
        if let Some(data) = shown.front.bytes() {
            return scanouts::lend_rect(data, (w, h), w * 4, shown.format, rect, f);
        }
        let shown = self.scanouts[index].shown()?;
        let (w, h) = (shown.rect.width, shown.rect.height);
        if rect.is_empty() || !rect.fits_in(w, h) {
            return Err(GpuError::InvalidParameter("rectangle outside the scanout"));
        }
        // Only the damaged rectangle of the front buffer is copied to the host-visible frame
        // buffer (same layout); no composition, no cursor.
        self.frame_buffer(index)?;
        let s = &self.scanouts[index];
        let (Some(shown), Some(frame)) = (s.shown.as_ref(), s.extra.0.as_ref()) else {
            return Err(GpuError::Backend("scanout state".into()));
        };
        let layout = |buffer| Linear::packed(buffer, w, h);
        let regions = rect_regions(
            layout(shown.front.buffer),
            rect,
            layout(frame.buffer),
            rect.x,
            rect.y,
        );
        let (src, dst) = (shown.front.buffer, frame.buffer);
        self.submitter.run(|d, cmd| {
            // SAFETY: `cmd` is recording; both buffers hold the scanout's `w` x `h` pixels and
            // `rect` was checked to lie inside it.
            unsafe { d.cmd_copy_buffer(cmd, src, dst, &regions) }
        })?;
        let s = &self.scanouts[index];
        let (Some(shown), Some(frame)) = (s.shown.as_ref(), s.extra.0.as_ref()) else {
            return Err(GpuError::Backend("scanout state".into()));
        };
        let data = frame
            .bytes()
            .ok_or(GpuError::Backend("frame not mapped".into()))?;
        scanouts::lend_rect(data, (w, h), w * 4, shown.format, rect, f)
    }
}
