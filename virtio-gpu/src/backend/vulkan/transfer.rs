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

/// A linear image in a buffer: `stride` bytes per row, 4 bytes per pixel.
#[derive(Debug, Clone, Copy)]
pub struct Linear {
    pub buffer: vk::Buffer,
    pub stride: u32,
}

/// Regions copying `rect` of `src` to (`dx`, `dy`) of `dst`: one per row, or one when the rows
/// are contiguous in both.
pub fn rect_regions(src: Linear, rect: Rect, dst: Linear, dx: u32, dy: u32) -> Vec<vk::BufferCopy> {
    let row = u64::from(rect.width) * 4;
    let src_at = |y: u32| u64::from(y) * u64::from(src.stride) + u64::from(rect.x) * 4;
    let dst_at = |y: u32| u64::from(y) * u64::from(dst.stride) + u64::from(dx) * 4;
    if rect.is_empty() {
        return Vec::new();
    }
    if row == u64::from(src.stride) && row == u64::from(dst.stride) {
        return vec![vk::BufferCopy {
            src_offset: src_at(rect.y),
            dst_offset: dst_at(dy),
            size: row * u64::from(rect.height),
        }];
    }
    (0..rect.height)
        .map(|i| vk::BufferCopy {
            src_offset: src_at(rect.y + i),
            dst_offset: dst_at(dy + i),
            size: row,
        })
        .collect()
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

    /// Writes `rect` of image `dst` from `source` (rows numbered from 0 within `rect`). The
    /// caller has checked `rect` against the image.
    pub fn upload(
        &mut self,
        sub: &mut Submitter,
        dst: Linear,
        rect: Rect,
        source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        if rect.is_empty() {
            return Ok(());
        }
        let row_len = u64::from(rect.width) * 4;
        let row_bytes = usize::try_from(row_len).map_err(|_| GpuError::OutOfHostMemory)?;
        let per_chunk = Self::chunk_rows(row_len, rect.height);
        let mut first = 0u32;
        while first < rect.height {
            let rows = per_chunk.min(rect.height - first);
            let usage = vk::BufferUsageFlags::TRANSFER_SRC;
            let staging = ensure(
                &self.dev,
                &mut self.upload,
                row_len * u64::from(rows),
                usage,
                MemoryUse::Upload,
            )?;
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
            let src = Linear {
                buffer: staging.buffer,
                stride: row_len as u32,
            };
            let chunk = Rect::new(0, 0, rect.width, rows);
            let regions = rect_regions(src, chunk, dst, rect.x, rect.y + first);
            sub.run(|d, cmd| {
                // SAFETY: `cmd` is recording; both buffers are live and every region lies inside
                // them (the rectangle was checked against the destination image, and the
                // staging buffer holds `rows` rows).
                unsafe { d.cmd_copy_buffer(cmd, src.buffer, dst.buffer, &regions) }
            })?;
            first += rows;
        }
        Ok(())
    }

    /// Reads `rect` of image `src` into `sink` (rows numbered from 0 within `rect`).
    pub fn download(
        &mut self,
        sub: &mut Submitter,
        src: Linear,
        rect: Rect,
        sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        if rect.is_empty() {
            return Ok(());
        }
        let row_len = u64::from(rect.width) * 4;
        let row_bytes = usize::try_from(row_len).map_err(|_| GpuError::OutOfHostMemory)?;
        let per_chunk = Self::chunk_rows(row_len, rect.height);
        let mut first = 0u32;
        while first < rect.height {
            let rows = per_chunk.min(rect.height - first);
            let usage = vk::BufferUsageFlags::TRANSFER_DST;
            let staging = ensure(
                &self.dev,
                &mut self.readback,
                row_len * u64::from(rows),
                usage,
                MemoryUse::Readback,
            )?;
            let dst = Linear {
                buffer: staging.buffer,
                stride: row_len as u32,
            };
            let chunk = Rect::new(rect.x, rect.y + first, rect.width, rows);
            let regions = rect_regions(src, chunk, dst, 0, 0);
            sub.run(|d, cmd| {
                // SAFETY: as in `upload`, with source and destination swapped.
                unsafe { d.cmd_copy_buffer(cmd, src.buffer, dst.buffer, &regions) }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contiguous_rows_merge_into_one_region() {
        let a = Linear {
            buffer: vk::Buffer::null(),
            stride: 64,
        };
        let regions = rect_regions(a, Rect::new(0, 2, 16, 3), a, 0, 5);
        assert_eq!(regions.len(), 1);
        assert_eq!(
            (
                regions[0].src_offset,
                regions[0].dst_offset,
                regions[0].size
            ),
            (128, 320, 192)
        );
        let regions = rect_regions(a, Rect::new(1, 2, 4, 3), a, 2, 0);
        assert_eq!(regions.len(), 3);
        assert_eq!(
            (
                regions[2].src_offset,
                regions[2].dst_offset,
                regions[2].size
            ),
            (4 * 64 + 4, 2 * 64 + 8, 16)
        );
    }
}
