//! The software backend: every resource lives in host memory and the CPU does all the work.
//!
//! Display: 2D resources, 16 scanouts with a front buffer each (updated on flush), a 64x64 cursor
//! plane per scanout, and composition through [`super::compose`].
//!
//! Compute: one private capset, [`stream::CAPSET_ID`] (30, "VG"), whose command stream
//! (documented in [`stream`]) fills and copies rectangles of context resources, fills host blobs
//! and delays a ring, so that contexts, SUBMIT_3D, per-ring fence timelines, 3D resources, 3D
//! transfers and HOST3D blobs (memfd-backed, so `map_blob` returns a real fd) all do real work.

mod compute;
mod resources;
pub mod stream;
mod timeline;

use std::collections::HashMap;

use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, DisplayBackend, Frame, GpuBackend, GpuError, GpuResult, Rect, Resource2dDesc,
    ResourceId, RowSink, RowSource, ScanoutId,
};

use super::compose::{self, ImageRef};
use super::contexts::ContextTable;
use super::scanouts::{self, Cursor, Scanouts, Shown};
use resources::{Image, Resource, Storage};

/// Host memory the software backend lets resources use in all by default, so a guest cannot
/// exhaust the host ([`SoftwareBackend::with_memory_limit`] changes it).
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// A CPU-only [`GpuBackend`].
#[derive(Debug)]
pub struct SoftwareBackend {
    resources: HashMap<ResourceId, Resource>,
    /// Front buffers as images; cursors as 64x64 ARGB8888, taken at UPDATE_CURSOR time.
    scanouts: Scanouts<Image, Vec<u8>>,
    contexts: HashMap<u32, compute::Context>,
    timelines: timeline::Timelines,
    memory_used: u64,
    memory_limit: u64,
    /// One row of a 2D transfer, compared with the resource before it is written.
    scratch: Vec<u8>,
}

impl Default for SoftwareBackend {
    fn default() -> Self {
        Self::new()
    }
}

impl SoftwareBackend {
    pub fn new() -> Self {
        SoftwareBackend {
            resources: HashMap::new(),
            scanouts: Scanouts::default(),
            contexts: HashMap::new(),
            timelines: timeline::Timelines::default(),
            memory_used: 0,
            memory_limit: MEMORY_LIMIT,
            scratch: Vec::new(),
        }
    }

    /// A backend whose resources may use at most `bytes` of host memory in all.
    pub fn with_memory_limit(bytes: u64) -> Self {
        SoftwareBackend {
            memory_limit: bytes,
            ..Self::new()
        }
    }

    /// Reserves `bytes` of the memory budget.
    fn charge(&mut self, bytes: u64) -> GpuResult<()> {
        match self.memory_used.checked_add(bytes) {
            Some(total) if total <= self.memory_limit => {
                self.memory_used = total;
                Ok(())
            }
            _ => Err(GpuError::OutOfHostMemory),
        }
    }

    fn insert_resource(&mut self, id: ResourceId, resource: Resource) -> GpuResult<()> {
        if id == 0 || self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        self.charge(resource.bytes())?;
        self.resources.insert(id, resource);
        Ok(())
    }

    fn image(&self, id: ResourceId) -> GpuResult<&Image> {
        match self.resources.get(&id).map(|r| &r.storage) {
            Some(Storage::Image(img)) => Ok(img),
            Some(Storage::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    fn image_mut(&mut self, id: ResourceId) -> GpuResult<&mut Image> {
        match self.resources.get_mut(&id).map(|r| &mut r.storage) {
            Some(Storage::Image(img)) => Ok(img),
            Some(Storage::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }
}

impl GpuBackend for SoftwareBackend {
    fn name(&self) -> &'static str {
        "software"
    }
}

impl DisplayBackend for SoftwareBackend {
    fn create_resource_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()> {
        let image = Image::new_2d(desc, self.memory_limit)?;
        self.insert_resource(id, Resource::new(Storage::Image(image)))
    }

    fn destroy_resource(&mut self, id: ResourceId) -> GpuResult<()> {
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
        let mut scratch = std::mem::take(&mut self.scratch);
        let result = self
            .image_mut(id)
            .and_then(|img| img.write_rect_tracked(rect, source, &mut scratch));
        self.scratch = scratch;
        result
    }

    fn read_rect(&mut self, id: ResourceId, rect: Rect, sink: &mut dyn RowSink) -> GpuResult<()> {
        self.image(id)?.read_rect(rect, 0, sink)
    }

    fn set_scanout(
        &mut self,
        scanout: ScanoutId,
        id: Option<ResourceId>,
        rect: Rect,
    ) -> GpuResult<()> {
        self.scanouts.get_mut(scanout)?;
        let Some(id) = id else {
            self.scanouts.get_mut(scanout)?.shown = None;
            return Ok(());
        };
        let image = self.image(id)?;
        let format = image
            .format
            .ok_or(GpuError::InvalidParameter("resource has no 2D format"))?;
        scanouts::check_scanout_rect(rect, image.width, image.height)?;
        let desc = Resource2dDesc {
            width: rect.width,
            height: rect.height,
            format,
        };
        let mut front = Image::new_2d(desc, self.memory_limit)?;
        // What the resource holds now is shown at once; later changes appear on flush.
        image.copy_to(rect, &mut front, 0, 0)?;
        self.scanouts.get_mut(scanout)?.shown = Some(Shown {
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
        let image = match self.resources.get_mut(&id).map(|r| &mut r.storage) {
            Some(Storage::Image(img)) => img,
            Some(Storage::Blob(_)) => return Ok(None),
            None => return Err(GpuError::InvalidResourceId(id)),
        };
        scanouts::check_flush_rect(rect, image.width, image.height)?;
        // Pixels outside `changed` already are on every front buffer showing them.
        let Some(changed) = image.changed.and_then(|c| c.intersect(&rect)) else {
            return Ok(None);
        };
        for scanout in self.scanouts.iter_mut() {
            let Some(shown) = scanout.shown.as_mut().filter(|s| s.resource == id) else {
                continue;
            };
            let Some(damage) = changed.intersect(&shown.rect) else {
                continue;
            };
            let (dx, dy) = (damage.x - shown.rect.x, damage.y - shown.rect.y);
            image.copy_to(damage, &mut shown.front, dx, dy)?;
        }
        image.presented(rect);
        Ok(Some(changed))
    }

    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()> {
        self.scanouts.get_mut(scanout)?;
        let cursor = match image {
            None => None,
            Some(cursor_image) => {
                let img = self.image(cursor_image.resource)?;
                let format = img
                    .format
                    .ok_or(GpuError::InvalidParameter("cursor has no 2D format"))?;
                let argb = compose::cursor_to_argb(&ImageRef {
                    width: img.width,
                    height: img.height,
                    stride: img.stride,
                    format,
                    data: &img.data,
                })?;
                Some(Cursor {
                    image: cursor_image,
                    pixels: argb,
                })
            }
        };
        self.scanouts.get_mut(scanout)?.cursor = cursor;
        Ok(())
    }

    fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.scanouts.move_cursor(scanout, x, y)
    }

    fn read_scanout(&mut self, scanout: ScanoutId) -> GpuResult<Frame> {
        let s = self.scanouts.get_mut(scanout)?;
        let shown = s.shown()?;
        let front = &shown.front;
        let format = front
            .format
            .ok_or(GpuError::InvalidParameter("scanout has no format"))?;
        let primary = ImageRef {
            width: front.width,
            height: front.height,
            stride: front.stride,
            format,
            data: &front.data,
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
        let s = self.scanouts.get_mut(scanout)?;
        let front = &s.shown()?.front;
        let format = front
            .format
            .ok_or(GpuError::InvalidParameter("scanout has no format"))?;
        // The front buffer itself is lent: no copy, no composition.
        let size = (front.width, front.height);
        scanouts::lend_rect(&front.data, size, front.stride, format, rect, f)
    }
}

#[cfg(test)]
mod tests;
