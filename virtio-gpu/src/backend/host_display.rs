//! The display half kept in host memory, shared by the software and Vulkan backends: each
//! scanout shows a front copy of its rectangle (refreshed by SET_SCANOUT and by flushes of what
//! changed), a 64x64 ARGB8888 cursor taken at SET_CURSOR time, and composition on read-back.
//!
//! Display listeners (vhost-user updates, screenshots) read pixels with the CPU, so this is where
//! they live whatever renders the resources: the backend hands in the host image of a resource,
//! made current first where a GPU wrote it last.

use gpu_interface::display::RectView;
use gpu_interface::{
    CursorImage, Frame, GpuError, GpuResult, Rect, Resource2dDesc, ResourceId, ScanoutId,
};

use super::compose::{self, ImageRef};
use super::scanouts::{self, Cursor, Scanouts, Shown};
use super::software::resources::Image;

/// The scanouts of a device, with front buffers and cursors in host memory.
#[derive(Debug, Default)]
pub(crate) struct HostDisplay {
    scanouts: Scanouts<Image, Vec<u8>>,
}

impl HostDisplay {
    /// Stops showing a destroyed resource anywhere.
    pub fn forget_resource(&mut self, id: ResourceId) {
        self.scanouts.forget_resource(id);
    }

    /// Checks a guest-given scanout id (before anything else about a scanout command).
    pub fn check_scanout(&self, scanout: ScanoutId) -> GpuResult<()> {
        self.scanouts.index(scanout).map(drop)
    }

    /// SET_SCANOUT: `image` (resource `id`) or nothing; a front of at most `limit` bytes.
    pub fn set_scanout(
        &mut self,
        scanout: ScanoutId,
        shown: Option<(ResourceId, &Image)>,
        rect: Rect,
        limit: u64,
    ) -> GpuResult<()> {
        self.scanouts.get_mut(scanout)?;
        let Some((id, image)) = shown else {
            self.scanouts.get_mut(scanout)?.shown = None;
            return Ok(());
        };
        let format = image
            .format
            .ok_or(GpuError::InvalidParameter("resource has no 2D format"))?;
        scanouts::check_scanout_rect(rect, image.width, image.height)?;
        let desc = Resource2dDesc {
            width: rect.width,
            height: rect.height,
            format,
        };
        let mut front = Image::new_2d(desc, limit)?;
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

    /// RESOURCE_FLUSH of `rect` of `image` (resource `id`): copies what changed since the last
    /// flush onto every front showing it, and returns that box (`None`: nothing changed).
    pub fn flush_changed(
        &mut self,
        id: ResourceId,
        image: &mut Image,
        rect: Rect,
    ) -> GpuResult<Option<Rect>> {
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

    /// UPDATE_CURSOR: the cursor `image` shows (resource `cursor.resource`), or none.
    pub fn set_cursor(
        &mut self,
        scanout: ScanoutId,
        cursor: Option<(CursorImage, &Image)>,
    ) -> GpuResult<()> {
        self.scanouts.get_mut(scanout)?;
        let cursor = match cursor {
            None => None,
            Some((cursor_image, img)) => {
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

    pub fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.scanouts.move_cursor(scanout, x, y)
    }

    /// The front of `scanout` with its cursor composed on top.
    pub fn read_scanout(&self, scanout: ScanoutId) -> GpuResult<Frame> {
        let s = self.scanouts.get(scanout)?;
        let front = &s.shown()?.front;
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

    /// Lends `rect` of the front of `scanout` to `f`: no copy, no composition.
    pub fn read_scanout_rect(
        &self,
        scanout: ScanoutId,
        rect: Rect,
        f: &mut dyn FnMut(&RectView<'_>),
    ) -> GpuResult<()> {
        let front = &self.scanouts.get(scanout)?.shown()?.front;
        let format = front
            .format
            .ok_or(GpuError::InvalidParameter("scanout has no format"))?;
        let size = (front.width, front.height);
        scanouts::lend_rect(&front.data, size, front.stride, format, rect, f)
    }
}
