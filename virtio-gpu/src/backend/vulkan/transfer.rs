//! Moving rectangles between guest rows and linear image buffers through host-visible staging
//! buffers: rows are filled straight into (or taken straight from) the mapped staging memory, and
//! one queue submission copies the whole rectangle.

use std::sync::Arc;

use ash::vk;
use gpu_interface::{GpuError, GpuResult, Rect, RowSink, RowSource};

use super::device::GpuDevice;
use super::memory::{GpuBuffer, MemoryUse};
use super::submit::Submitter;

/// Largest staging buffer kept; bigger transfers are split into chunks of whole rows, one
/// submission each.
const STAGING_MAX: u64 = 64 << 20;

/// A linear image in a buffer: `layers` images of `rows` rows, `stride` bytes apart, `bpp`
/// bytes per pixel.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub buffer: vk::Buffer,
    pub stride: u32,
    pub bpp: u32,
    /// Rows per layer.
    pub rows: u32,
}

impl Linear {
    /// Byte offset of pixel (`x`, `y`) of `layer`.
    pub fn offset(&self, layer: u32, y: u32, x: u32) -> u64 {
        (u64::from(layer) * u64::from(self.rows) + u64::from(y)) * u64::from(self.stride)
            + u64::from(x) * u64::from(self.bpp)
    }
}

/// Appends `r`, merging it into the previous region when both ranges continue it.
fn push_merged(regions: &mut Vec<vk::BufferCopy>, r: vk::BufferCopy) {
    if let Some(last) = regions.last_mut() {
        if last.src_offset + last.size == r.src_offset
            && last.dst_offset + last.size == r.dst_offset
        {
            last.size += r.size;
            return;
        }
    }
    regions.push(r);
}

/// Where one box copy goes: (`x`, `y`, first layer) in an image.
#[derive(Debug, Clone, Copy)]
pub struct At {
    pub x: u32,
    pub y: u32,
    pub layer: u32,
}

impl At {
    pub fn xy(x: u32, y: u32) -> Self {
        At { x, y, layer: 0 }
    }
}

/// Regions copying the box `rect` x `depth` layers from `src` (starting at `from`) to `dst`
/// (starting at `to`); rows contiguous in both are merged. Both images have the same `bpp`, and
/// the caller checked the box against both.
pub fn box_regions(
    src: Linear,
    from: At,
    dst: Linear,
    to: At,
    width: u32,
    height: u32,
    depth: u32,
) -> Vec<vk::BufferCopy> {
    let row = u64::from(width) * u64::from(src.bpp);
    let mut regions = Vec::new();
    if row == 0 {
        return regions;
    }
    for z in 0..depth {
        for y in 0..height {
            let region = vk::BufferCopy {
                src_offset: src.offset(from.layer + z, from.y + y, from.x),
                dst_offset: dst.offset(to.layer + z, to.y + y, to.x),
                size: row,
            };
            push_merged(&mut regions, region);
        }
    }
    regions
}

/// The staging buffers, grown on demand up to [`STAGING_MAX`].
pub struct Staging {
    dev: Arc<GpuDevice>,
    upload: Option<GpuBuffer>,
    readback: Option<GpuBuffer>,
}

fn ensure<'a>(
    dev: &Arc<GpuDevice>,
    slot: &'a mut Option<GpuBuffer>,
    size: u64,
    usage: vk::BufferUsageFlags,
    mem_use: MemoryUse,
) -> GpuResult<&'a mut GpuBuffer> {
    if slot.as_ref().is_none_or(|b| b.size < size) {
        *slot = None;
        let size = size
            .next_power_of_two()
            .clamp(1 << 16, STAGING_MAX.max(size));
        *slot = Some(GpuBuffer::new(dev, size, usage, mem_use)?);
    }
    slot.as_mut()
        .ok_or(GpuError::Backend("staging buffer".into()))
}

impl Staging {
    pub fn new(dev: &Arc<GpuDevice>) -> Self {
        Staging {
            dev: dev.clone(),
            upload: None,
            readback: None,
        }
    }

    /// Rows per chunk for rows of `row_len` bytes (at least one).
    fn chunk_rows(row_len: u64, height: u32) -> u32 {
        u32::try_from((STAGING_MAX / row_len.max(1)).max(1))
            .unwrap_or(u32::MAX)
            .min(height)
    }

    /// Writes the box `rect` x `depth` layers (from `layer`) of image `dst` from `source`, rows
    /// numbered layer-major from 0. The caller has checked the box against the image.
    pub fn upload(
        &mut self,
        sub: &mut Submitter,
        dst: Linear,
        rect: Rect,
        (layer, depth): (u32, u32),
        source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        let Some((row_len, total)) = box_rows(dst, rect, depth) else {
            return Ok(());
        };
        if row_len == 0 {
            // Zero-width rows still reach the source, as on the CPU backends.
            return (0..total).try_for_each(|i| source.fill_row(i, &mut []));
        }
        let row_bytes = usize::try_from(row_len).map_err(|_| GpuError::OutOfHostMemory)?;
        let per_chunk = Self::chunk_rows(row_len, total);
        let mut first = 0u32;
        while first < total {
            let rows = per_chunk.min(total - first);
            let usage = vk::BufferUsageFlags::TRANSFER_SRC;
            let size = row_len * u64::from(rows);
            let staging = ensure(&self.dev, &mut self.upload, size, usage, MemoryUse::Upload)?;
            let bytes = staging
                .bytes_mut()
                .ok_or(GpuError::Backend("staging not mapped".into()))?;
            for (i, dst_row) in bytes
                .chunks_exact_mut(row_bytes)
                .take(rows as usize)
                .enumerate()
            {
                source.fill_row(first + i as u32, dst_row)?;
            }
            let regions = chunk_regions(dst, rect, layer, first, rows, row_len, false);
            let src = staging.buffer;
            sub.run(|d, cmd| {
                // SAFETY: `cmd` is recording; both buffers are live and every region lies inside
                // them (the box was checked against the destination image, and the staging
                // buffer holds `rows` rows of `row_len` bytes).
                unsafe { d.cmd_copy_buffer(cmd, src, dst.buffer, &regions) }
            })?;
            first += rows;
        }
        Ok(())
    }

    /// Reads the box `rect` x `depth` layers (from `layer`) of image `src` into `sink`, rows
    /// numbered as in [`Staging::upload`].
    pub fn download(
        &mut self,
        sub: &mut Submitter,
        src: Linear,
        rect: Rect,
        (layer, depth): (u32, u32),
        sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        let Some((row_len, total)) = box_rows(src, rect, depth) else {
            return Ok(());
        };
        if row_len == 0 {
            return (0..total).try_for_each(|i| sink.take_row(i, &[]));
        }
        let row_bytes = usize::try_from(row_len).map_err(|_| GpuError::OutOfHostMemory)?;
        let per_chunk = Self::chunk_rows(row_len, total);
        let mut first = 0u32;
        while first < total {
            let rows = per_chunk.min(total - first);
            let usage = vk::BufferUsageFlags::TRANSFER_DST;
            let size = row_len * u64::from(rows);
            let staging = ensure(
                &self.dev,
                &mut self.readback,
                size,
                usage,
                MemoryUse::Readback,
            )?;
            let regions = chunk_regions(src, rect, layer, first, rows, row_len, true);
            let dst = staging.buffer;
            sub.run(|d, cmd| {
                // SAFETY: as in `upload`, with source and destination swapped.
                unsafe { d.cmd_copy_buffer(cmd, src.buffer, dst, &regions) }
            })?;
            let bytes = staging
                .bytes()
                .ok_or(GpuError::Backend("staging not mapped".into()))?;
            for (i, row) in bytes
                .chunks_exact(row_bytes)
                .take(rows as usize)
                .enumerate()
            {
                sink.take_row(first + i as u32, row)?;
            }
            first += rows;
        }
        Ok(())
    }
}

/// Bytes per row and number of rows of a box, or `None` when it has no rows.
fn box_rows(image: Linear, rect: Rect, depth: u32) -> Option<(u64, u32)> {
    let row_len = u64::from(rect.width) * u64::from(image.bpp);
    let total = rect.height.checked_mul(depth)?;
    (total > 0).then_some((row_len, total))
}

/// Regions between staging rows `first..first + rows` (tightly packed) and the matching rows of
/// the box in `image`; `to_staging` says which way they copy.
fn chunk_regions(
    image: Linear,
    rect: Rect,
    layer: u32,
    first: u32,
    rows: u32,
    row_len: u64,
    to_staging: bool,
) -> Vec<vk::BufferCopy> {
    let mut regions = Vec::new();
    for i in 0..rows {
        let flat = first + i;
        let image_at = image.offset(
            layer + flat / rect.height,
            rect.y + flat % rect.height,
            rect.x,
        );
        let staging_at = u64::from(i) * row_len;
        let (src_offset, dst_offset) = if to_staging {
            (image_at, staging_at)
        } else {
            (staging_at, image_at)
        };
        push_merged(
            &mut regions,
            vk::BufferCopy {
                src_offset,
                dst_offset,
                size: row_len,
            },
        );
    }
    regions
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_rows_merge_into_one_region() {
        let a = Linear {
            buffer: vk::Buffer::null(),
            stride: 64,
            bpp: 4,
            rows: 8,
        };
        let regions = box_regions(a, At::xy(0, 2), a, At::xy(0, 5), 16, 3, 1);
        assert_eq!(regions.len(), 1);
        let r = regions[0];
        assert_eq!((r.src_offset, r.dst_offset, r.size), (128, 320, 192));
        let regions = box_regions(a, At::xy(1, 2), a, At::xy(2, 0), 4, 3, 1);
        assert_eq!(regions.len(), 3);
        let r = regions[2];
        assert_eq!(
            (r.src_offset, r.dst_offset, r.size),
            (4 * 64 + 4, 2 * 64 + 8, 16)
        );
    }

    #[test]
    fn staging_rows_walk_layers() {
        // 1-byte pixels, 10x4 per layer: a 3x2 box over layers 1..3 is 4 rows in staging.
        let img = Linear {
            buffer: vk::Buffer::null(),
            stride: 10,
            bpp: 1,
            rows: 4,
        };
        let regions = chunk_regions(img, Rect::new(2, 1, 3, 2), 1, 0, 4, 3, false);
        let dst: Vec<u64> = regions.iter().map(|r| r.dst_offset).collect();
        assert_eq!(dst, [40 + 12, 40 + 22, 80 + 12, 80 + 22]);
        assert!(regions.iter().all(|r| r.size == 3));
        assert_eq!(box_rows(img, Rect::new(0, 0, 0, 5), 1), Some((0, 5)));
        assert_eq!(box_rows(img, Rect::new(0, 0, 5, 0), 1), None);
    }
}
