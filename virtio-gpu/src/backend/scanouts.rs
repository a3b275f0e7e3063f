//! Per-scanout state every backend keeps the same way: what each scanout shows, its cursor and
//! the cursor's position, the scanout id check, and forgetting a destroyed resource.
//!
//! Front buffers and cursor pixels are backend types: they live where the backend renders.

use std::ops::{Deref, DerefMut};

use gpu_interface::display::{RectView, MAX_SCANOUTS};
use gpu_interface::{CursorImage, GpuError, GpuResult, PixelFormat, Rect, ResourceId, ScanoutId};

use super::compose::CursorPlane;

/// What a scanout shows: `rect` of `resource`, in `format`, copied into the backend's `front`.
#[derive(Debug)]
pub(crate) struct Shown<F> {
    pub resource: ResourceId,
    pub rect: Rect,
    pub format: PixelFormat,
    pub front: F,
}

/// A scanout's cursor: the image as set by UPDATE_CURSOR and the backend's copy of its pixels.
#[derive(Debug)]
pub(crate) struct Cursor<P> {
    pub image: CursorImage,
    pub pixels: P,
}

/// One scanout: what it shows and its cursor.
#[derive(Debug)]
pub(crate) struct Scanout<F, P> {
    pub shown: Option<Shown<F>>,
    pub cursor: Option<Cursor<P>>,
    pub cursor_pos: (u32, u32),
}

impl<F, P> Default for Scanout<F, P> {
    fn default() -> Self {
        Scanout {
            shown: None,
            cursor: None,
            cursor_pos: (0, 0),
        }
    }
}

impl<F, P> Scanout<F, P> {
    /// What the scanout shows, or an error if it is disabled.
    pub fn shown(&self) -> GpuResult<&Shown<F>> {
        self.shown
            .as_ref()
            .ok_or(GpuError::InvalidParameter("scanout is disabled"))
    }

    /// The cursor as a plane for [`super::compose::compose`], with its ARGB8888 pixels.
    pub fn cursor_plane<'a>(
        &'a self,
        argb: impl FnOnce(&'a P) -> &'a [u8],
    ) -> Option<CursorPlane<'a>> {
        self.cursor.as_ref().map(|c| CursorPlane {
            argb: argb(&c.pixels),
            x: self.cursor_pos.0,
            y: self.cursor_pos.1,
            hot_x: c.image.hot_x,
            hot_y: c.image.hot_y,
        })
    }
}

/// The [`MAX_SCANOUTS`] scanouts of a device; indexes like a slice.
#[derive(Debug)]
pub(crate) struct Scanouts<F, P>(Vec<Scanout<F, P>>);

impl<F, P> Default for Scanouts<F, P> {
    fn default() -> Self {
        Scanouts((0..MAX_SCANOUTS).map(|_| Scanout::default()).collect())
    }
}

impl<F, P> Scanouts<F, P> {
    /// The index of guest-given `scanout`, or `InvalidScanoutId`.
    pub fn index(&self, scanout: ScanoutId) -> GpuResult<usize> {
        usize::try_from(scanout)
            .ok()
            .filter(|&i| i < self.0.len())
            .ok_or(GpuError::InvalidScanoutId(scanout))
    }

    /// Scanout `scanout`, or `InvalidScanoutId`.
    pub fn get(&self, scanout: ScanoutId) -> GpuResult<&Scanout<F, P>> {
        Ok(&self.0[self.index(scanout)?])
    }

    /// Scanout `scanout`, or `InvalidScanoutId`.
    pub fn get_mut(&mut self, scanout: ScanoutId) -> GpuResult<&mut Scanout<F, P>> {
        let index = self.index(scanout)?;
        Ok(&mut self.0[index])
    }

    /// MOVE_CURSOR: only the position changes.
    pub fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()> {
        self.get_mut(scanout)?.cursor_pos = (x, y);
        Ok(())
    }

    /// Stops showing resource `id` (a destroyed resource) as a scanout or as a cursor.
    pub fn forget_resource(&mut self, id: ResourceId) {
        for scanout in &mut self.0 {
            if scanout.shown.as_ref().is_some_and(|s| s.resource == id) {
                scanout.shown = None;
            }
            if scanout
                .cursor
                .as_ref()
                .is_some_and(|c| c.image.resource == id)
            {
                scanout.cursor = None;
            }
        }
    }
}

/// SET_SCANOUT's rectangle: not empty, inside the `width` x `height` resource.
pub(crate) fn check_scanout_rect(rect: Rect, width: u32, height: u32) -> GpuResult<()> {
    if rect.is_empty() || !rect.fits_in(width, height) {
        return Err(GpuError::InvalidParameter(
            "scanout rectangle outside the resource",
        ));
    }
    Ok(())
}

/// RESOURCE_FLUSH's rectangle: inside the `width` x `height` resource.
pub(crate) fn check_flush_rect(rect: Rect, width: u32, height: u32) -> GpuResult<()> {
    if !rect.fits_in(width, height) {
        return Err(GpuError::InvalidParameter(
            "flush rectangle outside the resource",
        ));
    }
    Ok(())
}

/// Lends `rect` of a front buffer (`data`: `size` pixels, rows `stride` bytes apart) to `f`,
/// without copying; a rectangle that is empty or outside the scanout is an error.
pub(crate) fn lend_rect(
    data: &[u8],
    size: (u32, u32),
    stride: u32,
    format: PixelFormat,
    rect: Rect,
    f: &mut dyn FnMut(&RectView<'_>),
) -> GpuResult<()> {
    let view = RectView::of_image(data, size, stride, format, rect)
        .ok_or(GpuError::InvalidParameter("rectangle outside the scanout"))?;
    f(&view);
    Ok(())
}

impl<F, P> Deref for Scanouts<F, P> {
    type Target = [Scanout<F, P>];
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl<F, P> DerefMut for Scanouts<F, P> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shown(resource: ResourceId) -> Shown<()> {
        Shown {
            resource,
            rect: Rect::full(1, 1),
            format: PixelFormat::XRGB8888,
            front: (),
        }
    }

    fn cursor(resource: ResourceId) -> Cursor<()> {
        Cursor {
            image: CursorImage {
                resource,
                hot_x: 1,
                hot_y: 2,
            },
            pixels: (),
        }
    }

    #[test]
    fn scanout_ids_past_the_last_are_refused() {
        let scanouts = Scanouts::<(), ()>::default();
        let last = ScanoutId::try_from(MAX_SCANOUTS - 1).unwrap();
        assert_eq!(scanouts.index(last).unwrap(), MAX_SCANOUTS - 1);
        assert!(matches!(
            scanouts.index(last + 1),
            Err(GpuError::InvalidScanoutId(id)) if id == last + 1
        ));
        assert!(scanouts.get(ScanoutId::MAX).is_err());
    }

    #[test]
    fn forgetting_a_resource_clears_only_what_shows_it() {
        let mut scanouts = Scanouts::<(), ()>::default();
        scanouts[0].shown = Some(shown(7));
        scanouts[0].cursor = Some(cursor(8));
        scanouts[1].shown = Some(shown(8));
        scanouts[1].cursor = Some(cursor(7));
        scanouts.forget_resource(7);
        assert!(scanouts[0].shown.is_none());
        assert_eq!(
            scanouts[0].cursor.as_ref().map(|c| c.image.resource),
            Some(8)
        );
        assert_eq!(scanouts[1].shown.as_ref().map(|s| s.resource), Some(8));
        assert!(scanouts[1].cursor.is_none());
    }

    #[test]
    fn the_cursor_plane_sits_at_the_cursor_position() {
        let mut scanouts = Scanouts::<(), ()>::default();
        let argb = [0u8; 4];
        assert!(scanouts[0].cursor_plane(|_| &argb).is_none());
        scanouts[0].cursor = Some(cursor(3));
        scanouts[0].cursor_pos = (10, 20);
        let plane = scanouts[0].cursor_plane(|_| &argb).unwrap();
        assert_eq!((plane.x, plane.y, plane.hot_x, plane.hot_y), (10, 20, 1, 2));
    }

    #[test]
    fn scanout_and_flush_rectangles_must_lie_inside_the_resource() {
        assert!(check_scanout_rect(Rect::new(0, 0, 64, 32), 64, 32).is_ok());
        assert!(check_scanout_rect(Rect::new(0, 0, 0, 0), 64, 32).is_err());
        assert!(check_scanout_rect(Rect::new(1, 0, 64, 32), 64, 32).is_err());
        assert!(check_flush_rect(Rect::new(0, 0, 64, 32), 64, 32).is_ok());
        assert!(check_flush_rect(Rect::new(0, 30, 64, 3), 64, 32).is_err());
    }

    #[test]
    fn lent_rectangles_must_lie_inside_the_scanout() {
        let data = [0u8; 4 * 4 * 2];
        let format = PixelFormat::XRGB8888;
        let mut seen = Vec::new();
        let mut f = |v: &RectView<'_>| seen.push((v.width, v.height, v.stride));
        lend_rect(&data, (4, 2), 16, format, Rect::new(1, 1, 3, 1), &mut f).unwrap();
        assert!(lend_rect(&data, (4, 2), 16, format, Rect::new(2, 0, 3, 1), &mut f).is_err());
        assert!(lend_rect(&data, (4, 2), 16, format, Rect::new(0, 0, 0, 1), &mut f).is_err());
        assert_eq!(seen, vec![(3, 1, 16)]);
    }
}
