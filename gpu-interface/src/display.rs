//! Displays: 2D resources shown on scanouts, with a cursor plane, damage and read-back.

use crate::error::GpuResult;
use crate::format::PixelFormat;
use crate::geometry::Rect;
use crate::resource::{Resource2dDesc, ResourceId, RowSource};

/// Index of a scanout (display head); virtio-gpu allows up to 16.
pub type ScanoutId = u32;

/// The most scanouts any path exposes.
pub const MAX_SCANOUTS: usize = 16;

/// A display mode a scanout advertises.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DisplayMode {
    pub width: u32,
    pub height: u32,
    /// Refresh rate in millihertz (60 Hz = 60_000).
    pub refresh_mhz: u32,
}

impl DisplayMode {
    pub const fn new(width: u32, height: u32) -> Self {
        DisplayMode {
            width,
            height,
            refresh_mhz: 60_000,
        }
    }
}

/// A composed image read back from a scanout.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub width: u32,
    pub height: u32,
    /// Bytes per row.
    pub stride: u32,
    pub format: PixelFormat,
    pub data: Vec<u8>,
}

impl Frame {
    /// The pixel at (x, y) as (r, g, b, a).
    pub fn pixel_rgba(&self, x: u32, y: u32) -> Option<[u8; 4]> {
        if x >= self.width || y >= self.height {
            return None;
        }
        let off = y as usize * self.stride as usize + x as usize * 4;
        self.data
            .get(off..off + 4)
            .map(|px| self.format.to_rgba(px))
    }
}

/// A borrowed rectangle of pixels: `height` rows of `width` 32-bit pixels, each row starting
/// `stride` bytes after the previous one in `data` (the first row at offset 0).
#[derive(Debug, Clone, Copy)]
pub struct RectView<'a> {
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

impl<'a> RectView<'a> {
    /// `rect` of `frame`, or `None` if it does not lie inside the frame.
    pub fn of_frame(frame: &'a Frame, rect: Rect) -> Option<Self> {
        Self::of_image(
            &frame.data,
            (frame.width, frame.height),
            frame.stride,
            frame.format,
            rect,
        )
    }

    /// `rect` of an image of `size` whose rows lie `stride` bytes apart in `data`, or `None` if
    /// `rect` (or its last row) does not lie inside it.
    pub fn of_image(
        data: &'a [u8],
        size: (u32, u32),
        stride: u32,
        format: PixelFormat,
        rect: Rect,
    ) -> Option<Self> {
        if !rect.fits_in(size.0, size.1) || rect.is_empty() {
            return None;
        }
        let start = u64::from(rect.y) * u64::from(stride) + u64::from(rect.x) * 4;
        let end = u64::from(rect.y + rect.height - 1) * u64::from(stride)
            + u64::from(rect.x + rect.width) * 4;
        let data = data.get(usize::try_from(start).ok()?..usize::try_from(end).ok()?)?;
        Some(RectView {
            width: rect.width,
            height: rect.height,
            stride,
            format,
            data,
        })
    }

    /// Row `y` (`width * 4` bytes), or `None` past the last row.
    pub fn row(&self, y: u32) -> Option<&'a [u8]> {
        if y >= self.height {
            return None;
        }
        let start = y as usize * self.stride as usize;
        self.data.get(start..start + self.width as usize * 4)
    }

    /// All pixels as one slice when the rows are packed back to back (`stride == width * 4`).
    pub fn packed(&self) -> Option<&'a [u8]> {
        let row = self.width as usize * 4;
        (self.stride as usize == row).then(|| self.data.get(..row * self.height as usize))?
    }
}

/// A cursor image: a small ARGB resource and its hotspot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CursorImage {
    pub resource: ResourceId,
    pub hot_x: u32,
    pub hot_y: u32,
}

/// Learns what a display shows, as it changes: a transport that forwards the display to another
/// process (the vhost-user-gpu display protocol) or a window implements this.
pub trait DisplayListener: Send {
    /// A scanout now shows a `width` x `height` image, or was disabled (`None`).
    fn scanout_changed(&mut self, scanout: ScanoutId, size: Option<(u32, u32)>);
    /// `rect` of the scanout changed; `pixels` holds that rectangle of the primary plane as
    /// flushed, without the cursor (which comes through `cursor_changed` / `cursor_moved`).
    fn scanout_updated(&mut self, scanout: ScanoutId, rect: Rect, pixels: &RectView<'_>);
    /// The cursor image changed (`None` hides it); `image` is 64x64 ARGB8888 when present.
    fn cursor_changed(&mut self, scanout: ScanoutId, image: Option<(&CursorImage, &[u8])>);
    /// The cursor moved to (x, y) on `scanout`.
    fn cursor_moved(&mut self, scanout: ScanoutId, x: u32, y: u32);
}

/// The display half of a GPU path: 2D resources, scanouts, cursor and read-back.
pub trait DisplayBackend {
    /// Creates a 2D resource. The caller has checked that `id` is unused and non-zero.
    fn create_resource_2d(&mut self, id: ResourceId, desc: Resource2dDesc) -> GpuResult<()>;

    /// Destroys a resource of any kind; it stops being shown on scanouts and as the cursor.
    fn destroy_resource(&mut self, id: ResourceId) -> GpuResult<()>;

    /// Copies `rect` of a 2D resource from `source`, row by row.
    fn write_rect(
        &mut self,
        id: ResourceId,
        rect: Rect,
        source: &mut dyn RowSource,
    ) -> GpuResult<()>;

    /// Reads `rect` of a 2D resource, row by row.
    fn read_rect(
        &mut self,
        id: ResourceId,
        rect: Rect,
        sink: &mut dyn crate::resource::RowSink,
    ) -> GpuResult<()>;

    /// Shows `rect` of resource `id` on `scanout`, or disables it (`id == None`).
    fn set_scanout(
        &mut self,
        scanout: ScanoutId,
        id: Option<ResourceId>,
        rect: Rect,
    ) -> GpuResult<()>;

    /// Presents damage `rect` (resource coordinates) of resource `id` on every scanout showing it.
    fn flush(&mut self, id: ResourceId, rect: Rect) -> GpuResult<()>;

    /// Like [`Self::flush`], and returns the part of `rect` whose pixels may have changed since
    /// they were last presented (`None`: none did), so that listeners are sent only that.
    /// Backends that track writes override this; the default presents and returns all of `rect`.
    fn flush_changed(&mut self, id: ResourceId, rect: Rect) -> GpuResult<Option<Rect>> {
        self.flush(id, rect)?;
        Ok(Some(rect))
    }

    /// Sets or hides the cursor plane of `scanout`.
    fn set_cursor(&mut self, scanout: ScanoutId, image: Option<CursorImage>) -> GpuResult<()>;

    /// Moves the cursor plane of `scanout`.
    fn move_cursor(&mut self, scanout: ScanoutId, x: u32, y: u32) -> GpuResult<()>;

    /// The composed image of `scanout` (primary plane plus cursor), as last flushed.
    fn read_scanout(&mut self, scanout: ScanoutId) -> GpuResult<Frame>;

    /// Calls `f` with `rect` (scanout coordinates) of `scanout`'s primary plane as last flushed,
    /// without the cursor. Backends override this to lend their front buffer without copying;
    /// the default crops [`Self::read_scanout`], which includes the cursor.
    fn read_scanout_rect(
        &mut self,
        scanout: ScanoutId,
        rect: Rect,
        f: &mut dyn FnMut(&RectView<'_>),
    ) -> GpuResult<()> {
        let frame = self.read_scanout(scanout)?;
        let view = RectView::of_frame(&frame, rect).ok_or(
            crate::error::GpuError::InvalidParameter("rectangle outside the scanout"),
        )?;
        f(&view);
        Ok(())
    }
}
