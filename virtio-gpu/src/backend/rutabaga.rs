//! The rutabaga backend: 2D resources live in rutabaga_gfx's 2D component, scanouts are composed
//! on the CPU with [`super::compose`].
//!
//! rutabaga reads a transfer from the iovecs attached to a resource as backing, so every resource
//! has a host backing buffer laid out like the resource (`stride = width * 4`): `write_rect` fills
//! the rectangle's rows into it from the [`RowSource`] and `transfer_write` copies them into the
//! resource; `read_rect` is `transfer_read` into the backing, then rows to the [`RowSink`].
//!
//! No capset is offered, in particular not cross-domain, for three reasons: rutabaga 0.1.85 makes
//! cross-domain the *default* component whenever its capset is enabled and then skips the 2D
//! component, so 2D resources and cross-domain cannot share one `Rutabaga`; a cross-domain context
//! answers every query (CROSS_DOMAIN_CMD_INIT, GET_IMAGE_REQUIREMENTS) by writing into a "query
//! ring", a guest-memory blob attached to the context, and guest-memory blobs never reach a
//! backend through `gpu_interface`; and its channels need a host Wayland socket (`RutabagaPath`).
//! virgl and gfxstream stay behind the `virgl`/`gfxstream` cargo features (host libraries missing
//! here) and are not wired into this backend.

use std::collections::{HashMap, HashSet};
use std::io::IoSliceMut;
use std::ptr::NonNull;
use std::sync::{Arc, Mutex};

use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, DisplayBackend, FenceTimeline, Frame, GpuBackend, GpuError, GpuResult,
    PixelFormat, Rect, Resource2dDesc, ResourceId, RowSink, RowSource, ScanoutId,
};
use rutabaga_gfx::{
    ResourceCreate3D, Rutabaga, RutabagaBuilder, RutabagaComponentType, RutabagaFence,
    RutabagaHandler, RutabagaIovec, Transfer3D,
};
use tracing::warn;

use super::compose::{self, ImageRef};
use super::contexts::ContextTable;
use super::scanouts::{self, Cursor, Scanouts, Shown};

/// Host memory the backend lets resources use in all (backing and rutabaga's copy count once).
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// Gallium's PIPE_TEXTURE_2D, the target of 2D resources.
const PIPE_TEXTURE_2D: u32 = 2;
/// PIPE_BIND_RENDER_TARGET | PIPE_BIND_SAMPLER_VIEW | PIPE_BIND_SCANOUT, as crosvm uses for 2D.
const BIND_2D: u32 = (1 << 1) | (1 << 3) | (1 << 18);

/// Why the rutabaga backend could not start.
#[derive(Debug, thiserror::Error)]
pub enum RutabagaBackendError {
    #[error("rutabaga_gfx failed to build its 2D component: {0}")]
    Build(String),
}

/// The virtio-gpu format code of a DRM format (virtio names bytes in memory order).
fn virtio_format(format: PixelFormat) -> u32 {
    match format {
        PixelFormat::ARGB8888 => 1,   // B8G8R8A8_UNORM
        PixelFormat::XRGB8888 => 2,   // B8G8R8X8_UNORM
        PixelFormat::BGRA8888 => 3,   // A8R8G8B8_UNORM
        PixelFormat::BGRX8888 => 4,   // X8R8G8B8_UNORM
        PixelFormat::ABGR8888 => 67,  // R8G8B8A8_UNORM
        PixelFormat::RGBX8888 => 68,  // X8B8G8R8_UNORM
        PixelFormat::RGBA8888 => 121, // A8B8G8R8_UNORM
        _ => 134,                     // XBGR8888: R8G8B8X8_UNORM
    }
}

/// A heap buffer rutabaga holds a raw pointer to (the attached iovec). It is only ever accessed
/// through that same base pointer, never through a reference that could assert uniqueness over
/// rutabaga's alias, and it lives until after the resource is unreferenced in rutabaga.
struct Backing {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: the buffer is owned exclusively by this value (rutabaga's alias is only used during
// calls made through the owning backend), so it may move between threads like a Box<[u8]>.
unsafe impl Send for Backing {}

impl Backing {
    fn new(len: usize) -> GpuResult<Self> {
        let mut v = Vec::new();
        v.try_reserve_exact(len)
            .map_err(|_| GpuError::OutOfHostMemory)?;
        v.resize(len, 0u8);
        let raw = Box::into_raw(v.into_boxed_slice());
        let ptr = NonNull::new(raw.cast::<u8>()).ok_or(GpuError::OutOfHostMemory)?;
        Ok(Backing { ptr, len })
    }

    fn iovec(&self) -> RutabagaIovec {
        RutabagaIovec {
            base: self.ptr.as_ptr().cast(),
            len: self.len,
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: `ptr` owns `len` initialised bytes; `&mut self` excludes other views on our
        // side, and rutabaga touches the buffer only inside calls made while no slice is live.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for Backing {
    fn drop(&mut self) {
        let slice = std::ptr::slice_from_raw_parts_mut(self.ptr.as_ptr(), self.len);
        // SAFETY: `ptr`/`len` came from Box::into_raw of a boxed slice of exactly `len` bytes,
        // and this is the only place that frees it.
        drop(unsafe { Box::from_raw(slice) });
    }
}

struct Resource {
    desc: Resource2dDesc,
    stride: u32,
    backing: Backing,
}

/// `Rutabaga` built with only its 2D component.
struct Rutabaga2d(Rutabaga);

// SAFETY: `Rutabaga` is not `Send` only because its components are boxed trait objects. This one
// is built with the 2D component alone (`RutabagaComponentType::Rutabaga2D`, capset mask 0), whose
// state is a fence handler (`Arc<dyn Fn + Send + Sync>`), plus resources holding `Vec<u8>` and
// `Send` iovecs; there are no contexts, no GL/EGL state and no thread-local state.
unsafe impl Send for Rutabaga2d {}

/// A [`GpuBackend`] on rutabaga_gfx's 2D component.
pub struct RutabagaBackend {
    // Declared before `resources`: rutabaga drops its iovec aliases before the backings go.
    rutabaga: Rutabaga2d,
    resources: HashMap<ResourceId, Resource>,
    /// Front buffers as packed pixels; cursors as 64x64 ARGB8888.
    scanouts: Scanouts<Vec<u8>, Vec<u8>>,
    contexts: HashMap<u32, HashSet<ResourceId>>,
    /// Fences rutabaga has signalled through its handler (global timeline).
    signalled: Arc<Mutex<Vec<u64>>>,
    /// Fences on context rings: the 2D component runs no commands, so they complete at once.
    ring_done: Vec<(FenceTimeline, u64)>,
    memory_used: u64,
}

impl RutabagaBackend {
    pub fn new() -> Result<Self, RutabagaBackendError> {
        let signalled = Arc::new(Mutex::new(Vec::new()));
        let sink = signalled.clone();
        let handler = RutabagaHandler::new(move |fence: RutabagaFence| {
            if let Ok(mut v) = sink.lock() {
                v.push(fence.fence_id);
            }
        });
        let rutabaga = RutabagaBuilder::new(0, handler)
            .set_default_component(RutabagaComponentType::Rutabaga2D)
            .build()
            .map_err(|e| RutabagaBackendError::Build(e.to_string()))?;
        Ok(RutabagaBackend {
            rutabaga: Rutabaga2d(rutabaga),
            resources: HashMap::new(),
            scanouts: Scanouts::default(),
            contexts: HashMap::new(),
            signalled,
            ring_done: Vec::new(),
            memory_used: 0,
        })
    }

    fn resource(&self, id: ResourceId) -> GpuResult<&Resource> {
        self.resources
            .get(&id)
            .ok_or(GpuError::InvalidResourceId(id))
    }

    /// Has rutabaga copy `rect` of resource `id` into its backing; returns the backing bytes.
    fn read_into_backing(&mut self, id: ResourceId, rect: Rect) -> GpuResult<&[u8]> {
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(GpuError::InvalidResourceId(id))?;
        if !rect.fits_in(r.desc.width, r.desc.height) {
            return Err(GpuError::InvalidParameter("box outside the resource"));
        }
        let mut transfer = Transfer3D::new_2d(rect.x, rect.y, rect.width, rect.height, 0);
        transfer.stride = r.stride;
        let buf = IoSliceMut::new(r.backing.bytes_mut());
        self.rutabaga
            .0
            .transfer_read(0, id, transfer, Some(buf))
            .map_err(|e| GpuError::Backend(format!("rutabaga transfer_read: {e}")))?;
        Ok(r.backing.bytes_mut())
    }

    /// Copies `rect` of resource `id` (read through rutabaga) into a tightly packed image.
    fn snapshot(&mut self, id: ResourceId, rect: Rect) -> GpuResult<Vec<u8>> {
        let stride = self.resource(id)?.stride;
        let (w, h) = {
            let d = &self.resource(id)?.desc;
            (d.width, d.height)
        };
        let src = self.read_into_backing(id, rect)?;
        let mut out = vec![0u8; rect.width as usize * rect.height as usize * 4];
        compose::copy_rect(
            src,
            stride,
            (w, h),
            rect,
            &mut out,
            rect.width * 4,
            (rect.width, rect.height),
            0,
            0,
        )?;
        Ok(out)
    }
}

impl GpuBackend for RutabagaBackend {
    fn name(&self) -> &'static str {
        "rutabaga"
    }
}

impl DisplayBackend for RutabagaBackend {
    fn create_resource_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()> {
        if desc.width == 0 || desc.height == 0 {
            return Err(GpuError::InvalidParameter("zero-sized resource"));
        }
        let stride = desc
            .stride()
            .ok_or(GpuError::InvalidParameter("too wide"))?;
        let size = u64::from(stride) * u64::from(desc.height);
        let total = self
            .memory_used
            .checked_add(size)
            .filter(|&t| t <= MEMORY_LIMIT);
        let Some(total) = total else {
            return Err(GpuError::OutOfHostMemory);
        };
        if id == 0 || self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        let len = usize::try_from(size).map_err(|_| GpuError::OutOfHostMemory)?;
        let backing = Backing::new(len)?;
        let create = ResourceCreate3D {
            target: PIPE_TEXTURE_2D,
            format: virtio_format(desc.format),
            bind: BIND_2D,
            width: desc.width,
            height: desc.height,
            depth: 1,
            array_size: 1,
            last_level: 0,
            nr_samples: 0,
            flags: 0,
        };
        let rb = &mut self.rutabaga.0;
        rb.resource_create_3d(id, create)
            .map_err(|e| GpuError::Backend(format!("rutabaga resource_create_3d: {e}")))?;
        if let Err(e) = rb.attach_backing(id, vec![backing.iovec()]) {
            let _ = rb.unref_resource(id);
            return Err(GpuError::Backend(format!("rutabaga attach_backing: {e}")));
        }
        self.memory_used = total;
        self.resources.insert(
            id,
            Resource {
                desc,
                stride,
                backing,
            },
        );
        Ok(())
    }

    fn destroy_resource(&mut self, id: ResourceId) -> GpuResult<()> {
        if !self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        // rutabaga forgets the iovec before the backing is freed.
        if let Err(e) = self.rutabaga.0.unref_resource(id) {
            warn!(id, %e, "rutabaga: unref_resource failed");
        }
        if let Some(r) = self.resources.remove(&id) {
            self.memory_used = self.memory_used.saturating_sub(r.backing.len as u64);
        }
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
        let r = self
            .resources
            .get_mut(&id)
            .ok_or(GpuError::InvalidResourceId(id))?;
        if !rect.fits_in(r.desc.width, r.desc.height) {
            return Err(GpuError::InvalidParameter("box outside the resource"));
        }
        let stride = r.stride as usize;
        let (x, row_len) = (rect.x as usize * 4, rect.width as usize * 4);
        let bytes = r.backing.bytes_mut();
        for i in 0..rect.height {
            let start = (rect.y + i) as usize * stride + x;
            let dst = bytes
                .get_mut(start..start + row_len)
                .ok_or(GpuError::InvalidParameter("box outside the resource"))?;
            source.fill_row(i, dst)?;
        }
        let transfer = Transfer3D::new_2d(rect.x, rect.y, rect.width, rect.height, 0);
        self.rutabaga
            .0
            .transfer_write(0, id, transfer, None)
            .map_err(|e| GpuError::Backend(format!("rutabaga transfer_write: {e}")))
    }

    fn read_rect(&mut self, id: ResourceId, rect: Rect, sink: &mut dyn RowSink) -> GpuResult<()> {
        let stride = self.resource(id)?.stride as usize;
        let bytes = self.read_into_backing(id, rect)?;
        let (x, row_len) = (rect.x as usize * 4, rect.width as usize * 4);
        for i in 0..rect.height {
            let start = (rect.y + i) as usize * stride + x;
            let row = bytes
                .get(start..start + row_len)
                .ok_or(GpuError::InvalidParameter("box outside the resource"))?;
            sink.take_row(i, row)?;
        }
        Ok(())
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
        let desc = self.resource(id)?.desc;
        scanouts::check_scanout_rect(rect, desc.width, desc.height)?;
        let front = self.snapshot(id, rect)?;
        self.scanouts[index].shown = Some(Shown {
            resource: id,
            rect,
            format: desc.format,
            front,
        });
        Ok(())
    }

    fn flush(&mut self, id: ResourceId, rect: Rect) -> GpuResult<()> {
        let desc = self.resource(id)?.desc;
        scanouts::check_flush_rect(rect, desc.width, desc.height)?;
        for index in 0..self.scanouts.len() {
            let Some(shown) = self.scanouts[index]
                .shown
                .as_ref()
                .filter(|s| s.resource == id)
            else {
                continue;
            };
            let Some(damage) = rect.intersect(&shown.rect) else {
                continue;
            };
            let (sr, dx, dy) = (shown.rect, damage.x - shown.rect.x, damage.y - shown.rect.y);
            let pixels = self.snapshot(id, damage)?;
            if let Some(shown) = self.scanouts[index].shown.as_mut() {
                let size = (sr.width, sr.height);
                let full = Rect::full(damage.width, damage.height);
                let dims = (damage.width, damage.height);
                compose::copy_rect(
                    &pixels,
                    damage.width * 4,
                    dims,
                    full,
                    &mut shown.front,
                    sr.width * 4,
                    size,
                    dx,
                    dy,
                )?;
            }
        }
        Ok(())
    }

    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()> {
        let index = self.scanouts.index(scanout)?;
        let Some(cursor_image) = image else {
            self.scanouts[index].cursor = None;
            return Ok(());
        };
        let desc = self.resource(cursor_image.resource)?.desc;
        let visible = Rect::full(
            desc.width.min(compose::CURSOR_SIZE),
            desc.height.min(compose::CURSOR_SIZE),
        );
        let pixels = self.snapshot(cursor_image.resource, visible)?;
        let argb = compose::cursor_to_argb(&ImageRef {
            width: visible.width,
            height: visible.height,
            stride: visible.width * 4,
            format: desc.format,
            data: &pixels,
        })?;
        self.scanouts[index].cursor = Some(Cursor {
            image: cursor_image,
            pixels: argb,
        });
        Ok(())
    }

    fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.scanouts.move_cursor(scanout, x, y)
    }

    fn read_scanout(&mut self, scanout: ScanoutId) -> GpuResult<Frame> {
        let s = self.scanouts.get(scanout)?;
        let shown = s.shown()?;
        let primary = ImageRef {
            width: shown.rect.width,
            height: shown.rect.height,
            stride: shown.rect.width * 4,
            format: shown.format,
            data: &shown.front,
        };
        let cursor = s.cursor_plane(|argb| argb);
        compose::compose(&primary, cursor)
    }

    fn read_scanout_rect(
        &mut self,
        scanout: ScanoutId,
        rect: Rect,
        f: &mut dyn FnMut(&RectView<'_>),
    ) -> GpuResult<()> {
        let s = self.scanouts.get(scanout)?;
        let shown = s.shown()?;
        let size = (shown.rect.width, shown.rect.height);
        scanouts::lend_rect(&shown.front, size, size.0 * 4, shown.format, rect, f)
    }
}

#[path = "rutabaga_compute.rs"]
mod compute;
