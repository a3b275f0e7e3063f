//! The display half of the Vulkan backend: 2D resources and what scanouts show.
//!
//! Everything a display listener reads (fronts, cursors, composed frames) is read by the CPU, so
//! 2D resources keep their pixels in host memory and the scanouts are the software backend's
//! ([`HostDisplay`]): a guest's transfer is one copy from guest memory, a flush copies only what
//! changed, and no pixel crosses to the GPU and back on the way to the screen. A 2D resource gets
//! a device copy when a GPU consumer (a VG context filling or copying it) first needs one, and
//! each copy catches up with the other's writes when it is next used (`resources::Stale`).
//! Semantics are the software backend's exactly (the conformance suite compares them).

use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, DisplayBackend, Frame, GpuError, GpuResult, Rect, Resource2dDesc, ResourceId,
    RowSink, RowSource, ScanoutId,
};

use super::super::contexts::ContextTable;
use super::super::scanouts;
use super::super::software::resources::Image as HostImage;
use super::resources::Resource;
use super::VulkanBackend;

impl DisplayBackend for VulkanBackend {
    fn create_resource_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()> {
        self.insert_2d(id, desc)
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
        let img = self.image(id)?;
        img.check_box(&rect, 0, 1)?;
        if img.host.is_none() {
            // A 3D resource: written where it lives.
            let dst = img.linear()?;
            return self
                .staging
                .upload(&mut self.submitter, dst, rect, (0, 1), source);
        }
        self.on_host(id)?;
        let mut scratch = std::mem::take(&mut self.scratch);
        let host = self.image_mut(id)?.host.as_mut();
        let result = host.map(|host| host.write_rect_tracked(rect, source, &mut scratch));
        self.scratch = scratch;
        result.transpose()?;
        self.host_wrote(id, rect);
        Ok(())
    }

    fn read_rect(&mut self, id: ResourceId, rect: Rect, sink: &mut dyn RowSink) -> GpuResult<()> {
        self.image(id)?.check_box(&rect, 0, 1)?;
        if let Some(host) = self.host_copy(id)? {
            return host.read_rect(rect, 0, sink);
        }
        // A 3D resource: read where it lives.
        let src = self.image(id)?.linear()?;
        self.staging
            .download(&mut self.submitter, src, rect, (0, 1), sink)
    }

    fn set_scanout(
        &mut self,
        scanout: ScanoutId,
        id: Option<ResourceId>,
        rect: Rect,
    ) -> GpuResult<()> {
        self.display.check_scanout(scanout)?;
        if let Some(id) = id {
            self.on_host(id)?;
        }
        let shown = match id {
            Some(id) => Some((id, host_of(&self.resources, id)?)),
            None => None,
        };
        let limit = super::MEMORY_LIMIT;
        self.display.set_scanout(scanout, shown, rect, limit)
    }

    fn flush(&mut self, id: ResourceId, rect: Rect) -> GpuResult<()> {
        self.flush_changed(id, rect).map(|_| ())
    }

    fn flush_changed(&mut self, id: ResourceId, rect: Rect) -> GpuResult<Option<Rect>> {
        match self.resources.get(&id) {
            Some(Resource::Blob(_)) => return Ok(None),
            None => return Err(GpuError::InvalidResourceId(id)),
            Some(Resource::Image(_)) => {}
        }
        self.on_host(id)?;
        let Some(Resource::Image(img)) = self.resources.get_mut(&id) else {
            return Err(GpuError::InvalidResourceId(id));
        };
        let (width, height) = (img.width, img.height);
        match img.host.as_mut() {
            Some(host) => self.display.flush_changed(id, host, rect),
            None => {
                // A 3D resource: no scanout can show it.
                scanouts::check_flush_rect(rect, width, height)?;
                Ok(None)
            }
        }
    }

    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()> {
        self.display.check_scanout(scanout)?;
        if let Some(c) = &image {
            self.on_host(c.resource)?;
        }
        let cursor = match image {
            Some(c) => Some((c, host_of(&self.resources, c.resource)?)),
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

/// The host copy of 2D resource `id` of `resources` (current once `on_host` ran).
fn host_of(
    resources: &std::collections::HashMap<ResourceId, Resource>,
    id: ResourceId,
) -> GpuResult<&HostImage> {
    match resources.get(&id) {
        Some(Resource::Image(img)) => img
            .host
            .as_ref()
            .ok_or(GpuError::InvalidParameter("resource is not a 2D resource")),
        Some(Resource::Blob(_)) => Err(GpuError::InvalidParameter("resource is a blob")),
        None => Err(GpuError::InvalidResourceId(id)),
    }
}
