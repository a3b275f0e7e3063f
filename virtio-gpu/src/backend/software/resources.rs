//! Host-memory storage of the software backend: images (2D and 3D) and memfd-backed blobs.

use std::fs::File;
use std::ops::Range;
use std::os::fd::{FromRawFd, OwnedFd};

use gpu_interface::{
    GpuError, GpuResult, PixelFormat, Rect, Resource2dDesc, Resource3dDesc, RowSink, RowSource,
    Transfer3d,
};
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::diff::{first_difference, last_difference};

/// Gallium's PIPE_BUFFER target: a 3D resource that is a linear byte buffer (1 byte per "pixel").
pub const PIPE_BUFFER: u32 = 0;

/// A resource of the software backend and the contexts it is attached to.
#[derive(Debug)]
pub struct Resource {
    pub storage: Storage,
}

#[derive(Debug)]
pub enum Storage {
    Image(Image),
    Blob(Blob),
}

impl Resource {
    pub fn new(storage: Storage) -> Self {
        Resource { storage }
    }

    /// Host bytes this resource holds, for the memory budget.
    pub fn bytes(&self) -> u64 {
        match &self.storage {
            Storage::Image(img) => img.data.len() as u64,
            Storage::Blob(blob) => blob.size,
        }
    }
}

/// Rows of pixels in host memory: `layers` images of `height` rows, `stride` bytes apart.
#[derive(Debug)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    pub layers: u32,
    pub bpp: u32,
    pub stride: u32,
    /// The format when the image is a 2D (displayable) resource.
    pub format: Option<PixelFormat>,
    /// The pixels. Writers go through the methods below, which keep `changed` up to date.
    pub data: PageBuf,
    /// Bounding box (layer 0) of the pixels that may differ from what flushes last presented;
    /// `None`: none do. Flushes copy and report only this part of their damage.
    pub changed: Option<Rect>,
}

/// `a` grown to hold `b` (an empty `b` adds nothing).
fn union(a: Option<Rect>, b: Rect) -> Option<Rect> {
    if b.is_empty() {
        return a;
    }
    Some(a.map_or(b, |a| a.bounding_box(&b)))
}

/// One page of image storage.
#[derive(Clone, Copy, FromBytes, IntoBytes, Immutable, KnownLayout)]
#[repr(C, align(4096))]
struct Page([u8; 4096]);

/// Page-aligned image bytes. Guest backing pages are page aligned, so rows of the same image land
/// at the same offset within a page on both sides; with a skew (malloc puts big blocks 16 bytes
/// into a page) every store aliases a later load modulo 4 KiB and TRANSFER_TO_HOST_2D ran ~6x
/// slower than memcpy in `vgpu bench virtio-gpu`.
pub struct PageBuf {
    pages: Vec<Page>,
    len: usize,
}

impl PageBuf {
    fn zeroed(len: usize) -> GpuResult<Self> {
        let n = len.div_ceil(4096);
        let mut pages = Vec::new();
        pages
            .try_reserve_exact(n)
            .map_err(|_| GpuError::OutOfHostMemory)?;
        pages.resize(n, Page([0; 4096]));
        Ok(PageBuf { pages, len })
    }
}

impl std::ops::Deref for PageBuf {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        let bytes = self.pages.as_bytes();
        bytes.get(..self.len).unwrap_or(bytes)
    }
}

impl std::ops::DerefMut for PageBuf {
    fn deref_mut(&mut self) -> &mut [u8] {
        let len = self.len;
        let bytes = self.pages.as_mut_bytes();
        let total = bytes.len();
        &mut bytes[..len.min(total)]
    }
}

impl std::fmt::Debug for PageBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PageBuf({} bytes)", self.len)
    }
}

fn alloc(len: u64, limit: u64) -> GpuResult<PageBuf> {
    if len > limit {
        return Err(GpuError::OutOfHostMemory);
    }
    let len = usize::try_from(len).map_err(|_| GpuError::OutOfHostMemory)?;
    PageBuf::zeroed(len)
}

impl Image {
    fn new(width: u32, height: u32, layers: u32, bpp: u32, limit: u64) -> GpuResult<Self> {
        if width == 0 || height == 0 || layers == 0 {
            return Err(GpuError::InvalidParameter("zero-sized resource"));
        }
        let stride = width
            .checked_mul(bpp)
            .ok_or(GpuError::InvalidParameter("too wide"))?;
        let len = u64::from(stride)
            .checked_mul(u64::from(height))
            .and_then(|n| n.checked_mul(u64::from(layers)))
            .ok_or(GpuError::OutOfHostMemory)?;
        let data = alloc(len, limit)?;
        Ok(Image {
            width,
            height,
            layers,
            bpp,
            stride,
            format: None,
            data,
            changed: None,
        })
    }

    pub fn new_2d(desc: Resource2dDesc, limit: u64) -> GpuResult<Self> {
        let bpp = desc.format.bytes_per_pixel();
        let mut image = Self::new(desc.width, desc.height, 1, bpp, limit)?;
        image.format = Some(desc.format);
        Ok(image)
    }

    pub fn new_3d(desc: &Resource3dDesc, limit: u64) -> GpuResult<Self> {
        if desc.last_level != 0 || desc.nr_samples > 1 {
            return Err(GpuError::Unsupported(
                "mipmaps or multisampling in the software backend",
            ));
        }
        let bpp = if desc.target == PIPE_BUFFER { 1 } else { 4 };
        let layers = desc.depth.max(1).checked_mul(desc.array_size.max(1));
        let layers = layers.ok_or(GpuError::InvalidParameter("too many layers"))?;
        Self::new(desc.width, desc.height.max(1), layers, bpp, limit)
    }

    /// Byte range of row `y` (absolute) of `layer`, columns `x..x + width`, checked.
    pub fn row(&self, layer: u32, y: u32, x: u32, width: u32) -> GpuResult<Range<usize>> {
        let bad = GpuError::InvalidParameter("box outside the resource");
        if layer >= self.layers || y >= self.height {
            return Err(bad);
        }
        let right = x.checked_add(width).ok_or(bad.clone())?;
        if right > self.width {
            return Err(bad);
        }
        let row = u64::from(layer) * u64::from(self.height) + u64::from(y);
        let start = row * u64::from(self.stride) + u64::from(x) * u64::from(self.bpp);
        let len = u64::from(width) * u64::from(self.bpp);
        let start = usize::try_from(start).map_err(|_| bad.clone())?;
        let end = start.checked_add(usize::try_from(len).map_err(|_| bad.clone())?);
        match end {
            Some(end) if end <= self.data.len() => Ok(start..end),
            _ => Err(bad),
        }
    }

    fn check_box(&self, rect: &Rect, layer: u32, depth: u32) -> GpuResult<()> {
        let layers_end = layer.checked_add(depth);
        if !rect.fits_in(self.width, self.height) || layers_end.is_none_or(|e| e > self.layers) {
            return Err(GpuError::InvalidParameter("box outside the resource"));
        }
        Ok(())
    }

    /// Writes `rect` of layer 0 from `source` like [`Image::write_rect`], but through `scratch`
    /// (one row), comparing with what the image holds: only rows that differ are written, and
    /// `changed` grows by the box of pixels that really changed. Guests often re-send a whole
    /// screen where a few pixels changed; the flush then presents only those.
    pub fn write_rect_tracked(
        &mut self,
        rect: Rect,
        source: &mut dyn RowSource,
        scratch: &mut Vec<u8>,
    ) -> GpuResult<()> {
        self.check_box(&rect, 0, 1)?;
        if rect.is_empty() {
            return Ok(());
        }
        let row_len = rect.width as usize * self.bpp as usize;
        // The scratch row sits at the same offset within a page as the image rows (and so as
        // page-aligned guest rows): see `PageBuf` for what 4 KiB aliasing costs otherwise.
        const PAGE: usize = 4096;
        scratch.resize(row_len + 2 * PAGE, 0);
        let first_row = self.row(0, rect.y, rect.x, rect.width)?;
        let want = (self.data.as_ptr() as usize + first_row.start) % PAGE;
        let have = scratch.as_ptr() as usize % PAGE;
        let skew = (want + PAGE - have) % PAGE;
        let scratch = scratch
            .get_mut(skew..skew + row_len)
            .ok_or(GpuError::InvalidParameter("scratch"))?;
        let bpp = self.bpp as usize;
        let (mut left, mut right, mut top, mut bottom) = (usize::MAX, 0usize, u32::MAX, 0u32);
        for (index, y) in (rect.y..rect.y + rect.height).enumerate() {
            let range = self.row(0, y, rect.x, rect.width)?;
            let dst = self
                .data
                .get_mut(range)
                .ok_or(GpuError::InvalidParameter("box"))?;
            let (first, last) = match source.update_row(index as u32, dst)? {
                Some(changed) if changed.is_empty() => continue,
                Some(changed) => (changed.start, changed.end - 1),
                None => {
                    source.fill_row(index as u32, scratch)?;
                    let Some(first) = first_difference(dst, scratch) else {
                        continue;
                    };
                    let last = last_difference(dst, scratch).unwrap_or(first);
                    dst[first..=last].copy_from_slice(&scratch[first..=last]);
                    (first, last)
                }
            };
            left = left.min(first / bpp);
            right = right.max(last / bpp + 1);
            top = top.min(y);
            bottom = bottom.max(y + 1);
        }
        if top != u32::MAX {
            let x = rect.x + left as u32;
            let box_ = Rect::new(x, top, (right - left) as u32, bottom - top);
            self.changed = union(self.changed, box_);
        }
        Ok(())
    }

    /// Marks `rect` (layer 0) presented if it covers everything that changed.
    pub fn presented(&mut self, rect: Rect) {
        let covered = self.changed.is_some_and(|c| c.intersect(&rect) == Some(c));
        if covered {
            self.changed = None;
        }
    }

    /// Reads `rect` of `layer` into `sink`, row by row.
    pub fn read_rect(&self, rect: Rect, layer: u32, sink: &mut dyn RowSink) -> GpuResult<()> {
        self.read_box(rect, layer, 1, sink)
    }

    /// Writes a box: rows are numbered layer-major (`row = z * rect.height + y`).
    pub fn write_box(
        &mut self,
        rect: Rect,
        layer: u32,
        depth: u32,
        source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        self.check_box(&rect, layer, depth)?;
        if layer == 0 {
            self.changed = union(self.changed, rect);
        }
        let mut index = 0u32;
        for z in layer..layer + depth {
            for y in rect.y..rect.y + rect.height {
                let range = self.row(z, y, rect.x, rect.width)?;
                let dst = self
                    .data
                    .get_mut(range)
                    .ok_or(GpuError::InvalidParameter("box"))?;
                source.fill_row(index, dst)?;
                index = index.wrapping_add(1);
            }
        }
        Ok(())
    }

    /// Reads a box, rows numbered as in [`Image::write_box`].
    pub fn read_box(
        &self,
        rect: Rect,
        layer: u32,
        depth: u32,
        sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        self.check_box(&rect, layer, depth)?;
        let mut index = 0u32;
        for z in layer..layer + depth {
            for y in rect.y..rect.y + rect.height {
                let range = self.row(z, y, rect.x, rect.width)?;
                let src = self
                    .data
                    .get(range)
                    .ok_or(GpuError::InvalidParameter("box"))?;
                sink.take_row(index, src)?;
                index = index.wrapping_add(1);
            }
        }
        Ok(())
    }

    /// The box of a 3D transfer (level 0 only), as (rect, first layer, layer count).
    pub fn transfer_box(&self, t: &Transfer3d) -> GpuResult<(Rect, u32, u32)> {
        super::super::transfer_box(t, |rect, layer, depth| self.check_box(rect, layer, depth))
    }

    /// Copies `rect` of layer 0 to (`dx`, `dy`) of layer 0 of `dst` (same bytes per pixel).
    pub fn copy_to(&self, rect: Rect, dst: &mut Image, dx: u32, dy: u32) -> GpuResult<()> {
        if self.bpp != dst.bpp {
            return Err(GpuError::InvalidParameter(
                "copy between different pixel sizes",
            ));
        }
        self.check_box(&rect, 0, 1)?;
        let dst_rect = Rect::new(dx, dy, rect.width, rect.height);
        dst.check_box(&dst_rect, 0, 1)?;
        dst.changed = union(dst.changed, dst_rect);
        for i in 0..rect.height {
            let s = self.row(0, rect.y + i, rect.x, rect.width)?;
            let d = dst.row(0, dy + i, dx, rect.width)?;
            let (Some(src), Some(out)) = (self.data.get(s), dst.data.get_mut(d)) else {
                return Err(GpuError::InvalidParameter("copy outside the resource"));
            };
            out.copy_from_slice(src);
        }
        Ok(())
    }

    /// Copies within one image (source and destination may overlap).
    pub fn copy_within(&mut self, rect: Rect, dx: u32, dy: u32) -> GpuResult<()> {
        self.check_box(&rect, 0, 1)?;
        let dst_rect = Rect::new(dx, dy, rect.width, rect.height);
        self.check_box(&dst_rect, 0, 1)?;
        self.changed = union(self.changed, dst_rect);
        let rows: Vec<u32> = if dy > rect.y {
            (0..rect.height).rev().collect()
        } else {
            (0..rect.height).collect()
        };
        for i in rows {
            let s = self.row(0, rect.y + i, rect.x, rect.width)?;
            let d = self.row(0, dy + i, dx, rect.width)?;
            self.data.copy_within(s, d.start);
        }
        Ok(())
    }

    /// Fills `rect` of layer 0 with `value` (little-endian, truncated to bytes per pixel).
    pub fn fill(&mut self, rect: Rect, value: u32) -> GpuResult<()> {
        self.check_box(&rect, 0, 1)?;
        self.changed = union(self.changed, rect);
        let bytes = value.to_le_bytes();
        let px = bytes
            .get(..self.bpp as usize)
            .ok_or(GpuError::InvalidParameter("bpp"))?;
        for y in rect.y..rect.y + rect.height {
            let range = self.row(0, y, rect.x, rect.width)?;
            let row = self
                .data
                .get_mut(range)
                .ok_or(GpuError::InvalidParameter("fill"))?;
            for chunk in row.chunks_exact_mut(px.len()) {
                chunk.copy_from_slice(px);
            }
        }
        Ok(())
    }
}

/// A host blob: an anonymous memfd, so that a transport can mmap it into the guest.
#[derive(Debug)]
pub struct Blob {
    pub file: File,
    pub size: u64,
    pub mapped: bool,
}

impl Blob {
    pub fn new(size: u64, limit: u64) -> GpuResult<Self> {
        if size == 0 || size > limit {
            return Err(GpuError::InvalidParameter(
                "blob size zero or over the memory limit",
            ));
        }
        // SAFETY: the name is a NUL-terminated static string and the flags are valid; the call
        // only creates a new descriptor.
        let fd = unsafe { libc::memfd_create(c"vgpu-blob".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            return Err(GpuError::Backend(format!("memfd_create: {err}")));
        }
        // SAFETY: `fd` was just returned by memfd_create and nothing else owns it.
        let file = File::from(unsafe { OwnedFd::from_raw_fd(fd) });
        file.set_len(size).map_err(|_| GpuError::OutOfHostMemory)?;
        Ok(Blob {
            file,
            size,
            mapped: false,
        })
    }

    /// Writes `len` bytes of `value` at `offset` (checked against the blob size).
    pub fn fill(&self, offset: u64, len: u64, value: u8) -> GpuResult<()> {
        use std::os::unix::fs::FileExt;
        match offset.checked_add(len) {
            Some(end) if end <= self.size => {}
            _ => return Err(GpuError::InvalidParameter("fill outside the blob")),
        }
        let chunk = vec![value; len.min(1 << 16) as usize];
        let mut done = 0u64;
        while done < len {
            let n = (len - done).min(chunk.len() as u64) as usize;
            self.file
                .write_all_at(&chunk[..n], offset + done)
                .map_err(|e| GpuError::Backend(format!("blob write: {e}")))?;
            done += n as u64;
        }
        Ok(())
    }

    /// Reads `len` bytes at `offset`, for tests and transfers.
    pub fn read(&self, offset: u64, len: usize) -> GpuResult<Vec<u8>> {
        use std::os::unix::fs::FileExt;
        let mut buf = vec![0u8; len];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|_| GpuError::InvalidParameter("read outside the blob"))?;
        Ok(buf)
    }
}
