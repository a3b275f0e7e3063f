//! Resources: 2D images, 3D (context) resources and blobs, and how bytes move into and out of them.

use std::os::fd::OwnedFd;

use crate::error::GpuResult;
use crate::format::PixelFormat;
use crate::geometry::Rect;

/// A resource id chosen by the guest; 0 is never a valid resource.
pub type ResourceId = u32;

/// A 2D image resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource2dDesc {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
}

impl Resource2dDesc {
    /// Bytes per row, or `None` on overflow.
    pub fn stride(&self) -> Option<u32> {
        self.width.checked_mul(self.format.bytes_per_pixel())
    }

    /// Total size in bytes, or `None` on overflow.
    pub fn size(&self) -> Option<u64> {
        Some(u64::from(self.stride()?) * u64::from(self.height))
    }
}

/// A 3D resource as a context creates it (virgl-style target/bind/format description).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resource3dDesc {
    pub target: u32,
    pub format: u32,
    pub bind: u32,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub array_size: u32,
    pub last_level: u32,
    pub nr_samples: u32,
    pub flags: u32,
}

/// A box transfer into or out of a 3D resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transfer3d {
    pub x: u32,
    pub y: u32,
    pub z: u32,
    pub width: u32,
    pub height: u32,
    pub depth: u32,
    pub level: u32,
    pub stride: u32,
    pub layer_stride: u32,
    pub offset: u64,
}

/// Where a blob's memory lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BlobMem {
    /// Guest pages (the device reads them through the attached backing).
    Guest,
    /// Host memory a context allocated; the guest maps it through a host-visible region.
    Host3d,
    /// Host memory a context allocated, also backed by guest pages.
    Host3dGuest,
}

/// A blob resource description.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BlobDesc {
    pub mem: BlobMem,
    pub size: u64,
    pub blob_id: u64,
    pub mappable: bool,
    pub shareable: bool,
    pub cross_device: bool,
}

/// Cache attributes of a mapped host blob, as the guest must map it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MapCache {
    Cached,
    Uncached,
    WriteCombined,
}

/// Host memory behind a mappable blob, for a transport to expose in the guest's host-visible
/// region (a virtio shared-memory region, or a vhost-user shared-memory map message).
#[derive(Debug)]
pub struct BlobMapping {
    /// A file descriptor the transport can mmap; `offset` is where the blob starts in it.
    pub fd: OwnedFd,
    pub offset: u64,
    pub size: u64,
    pub cache: MapCache,
}

/// Supplies the rows of a transfer into a resource, straight from where they live (guest memory).
///
/// The backend hands each destination row slice to `fill_row`, so bytes are copied once.
pub trait RowSource {
    /// Fills `dst` with row `row` (0-based within the transfer rectangle).
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> GpuResult<()>;

    /// Brings `current` (what the destination holds of row `row`) up to date in place, where
    /// the source can compare without copying the row out first: returns the byte range that
    /// changed (empty when nothing did), or `None` when it cannot, and the caller then copies
    /// the row with [`RowSource::fill_row`] and compares it itself.
    fn update_row(
        &mut self,
        _row: u32,
        _current: &mut [u8],
    ) -> GpuResult<Option<std::ops::Range<usize>>> {
        Ok(None)
    }
}

/// Receives the rows of a transfer out of a resource.
pub trait RowSink {
    /// Takes row `row` (0-based within the transfer rectangle).
    fn take_row(&mut self, row: u32, src: &[u8]) -> GpuResult<()>;
}

impl<F: FnMut(u32, &mut [u8]) -> GpuResult<()>> RowSource for F {
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> GpuResult<()> {
        self(row, dst)
    }
}

impl<F: FnMut(u32, &[u8]) -> GpuResult<()>> RowSink for F {
    fn take_row(&mut self, row: u32, src: &[u8]) -> GpuResult<()> {
        self(row, src)
    }
}

/// The bytes of one rectangle of an image: rows of `width * bpp` bytes, `stride` apart.
pub fn rect_row_len(rect: &Rect, format: PixelFormat) -> Option<usize> {
    usize::try_from(rect.width.checked_mul(format.bytes_per_pixel())?).ok()
}
