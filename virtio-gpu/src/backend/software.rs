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
pub(crate) mod resources;
pub mod stream;
mod timeline;

use std::collections::HashMap;

use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, DisplayBackend, Frame, GpuBackend, GpuError, GpuResult, Rect, Resource2dDesc,
    ResourceId, RowSink, RowSource, ScanoutId,
};

use super::contexts::ContextTable;
use super::host_display::HostDisplay;
use resources::{Image, Resource, Storage};

/// Host memory the software backend lets resources use in all by default, so a guest cannot
/// exhaust the host ([`SoftwareBackend::with_memory_limit`] changes it).
pub const MEMORY_LIMIT: u64 = 1 << 30;

/// A CPU-only [`GpuBackend`].
#[derive(Debug)]
pub struct SoftwareBackend {
    resources: HashMap<ResourceId, Resource>,
    display: HostDisplay,
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
            display: HostDisplay::default(),
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
        image_in(&self.resources, id)
    }

    fn image_mut(&mut self, id: ResourceId) -> GpuResult<&mut Image> {
        match self.resources.get_mut(&id).map(|r| &mut r.storage) {
            Some(Storage::Image(img)) => Ok(img),
            Some(Storage::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }
}

/// Image `id` of `resources` (a function of the map, so the display can be borrowed beside it).
fn image_in(resources: &HashMap<ResourceId, Resource>, id: ResourceId) -> GpuResult<&Image> {
    match resources.get(&id).map(|r| &r.storage) {
        Some(Storage::Image(img)) => Ok(img),
        Some(Storage::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
        None => Err(GpuError::InvalidResourceId(id)),
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
        self.display.forget_resource(id);
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
        self.display.check_scanout(scanout)?;
        let shown = match id {
            Some(id) => Some((id, image_in(&self.resources, id)?)),
            None => None,
        };
        self.display
            .set_scanout(scanout, shown, rect, self.memory_limit)
    }

    fn flush(&mut self, id: ResourceId, rect: Rect) -> GpuResult<()> {
        self.flush_changed(id, rect).map(|_| ())
    }

    fn flush_changed(&mut self, id: ResourceId, rect: Rect) -> GpuResult<Option<Rect>> {
        match self.resources.get_mut(&id).map(|r| &mut r.storage) {
            Some(Storage::Image(image)) => self.display.flush_changed(id, image, rect),
            Some(Storage::Blob(_)) => Ok(None),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()> {
        self.display.check_scanout(scanout)?;
        let cursor = match image {
            Some(c) => Some((c, image_in(&self.resources, c.resource)?)),
            None => None,
        };
        self.display.set_cursor(scanout, cursor)
    }

    fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.display.move_cursor(scanout, x, y)
    }

    fn read_scanout(&mut self, scanout: ScanoutId) -> GpuResult<Frame> {
        self.display.read_scanout(scanout)
    }

    fn read_scanout_rect(
        &mut self,
        scanout: ScanoutId,
        rect: Rect,
        f: &mut dyn FnMut(&RectView<'_>),
    ) -> GpuResult<()> {
        self.display.read_scanout_rect(scanout, rect, f)
    }
}

#[cfg(test)]
mod tests;
