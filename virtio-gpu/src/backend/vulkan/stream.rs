//! Runs the private "VG" command stream ([`crate::backend::software::stream`], shared with the
//! software backend) on the GPU: FILL becomes `vkCmdFillBuffer` (or a copy from a pattern buffer
//! for 1-byte pixels), COPY becomes `vkCmdCopyBuffer` (through a bounce buffer when source and
//! destination are the same resource), all recorded into one submission with a full barrier
//! between commands. DELAY_US keeps the ring busy on the fence timeline; FILL_BLOB fills the host
//! blob through a buffer bound to its imported memory, so the GPU writes the pages the guest maps.
//!
//! Commands are validated as they are recorded; the first invalid one stops the stream, and the
//! ones before it still run, as in the software backend.

use ash::vk;
use gpu_interface::{FenceTimeline, GpuError, GpuResult, Rect, ResourceId};

use super::memory::{GpuBuffer, MemoryUse};
use super::resources::Resource;
use super::transfer::{box_regions, At, Linear};
use super::VulkanBackend;
use crate::backend::contexts::ContextTable;
use crate::backend::software::stream::Command;

/// One recorded GPU operation.
enum Op {
    Fill {
        dst: vk::Buffer,
        /// (offset, size) ranges, both multiples of 4.
        ranges: Vec<(u64, u64)>,
        value: u32,
    },
    Copy {
        src: vk::Buffer,
        dst: vk::Buffer,
        regions: Vec<vk::BufferCopy>,
    },
}

/// Buffers that must outlive the submission (bounce and pattern buffers).
type Keep = Vec<GpuBuffer>;

impl VulkanBackend {
    /// Checks that `id` exists and is attached to `ctx_id`.
    fn check_attached(&self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let exists = self.resources.contains_key(&id);
        self.contexts.check_attached(ctx_id, id, exists)
    }

    /// Runs decoded `commands` of context `ctx_id` on `ring`.
    pub(super) fn run_stream(
        &mut self,
        ctx_id: u32,
        ring: FenceTimeline,
        commands: Vec<Command>,
    ) -> GpuResult<()> {
        let mut ops = Vec::new();
        let mut keep = Keep::new();
        let mut result = Ok(());
        for cmd in commands {
            if let Err(e) = self.prepare(ctx_id, ring, cmd, &mut ops, &mut keep) {
                result = Err(e);
                break;
            }
        }
        if !ops.is_empty() {
            self.submitter.run(|d, cmd| record(d, cmd, &ops))?;
        }
        drop(keep);
        result
    }

    /// Validates one command and turns it into GPU operations (or runs it, for host work).
    fn prepare(
        &mut self,
        ctx_id: u32,
        ring: FenceTimeline,
        cmd: Command,
        ops: &mut Vec<Op>,
        keep: &mut Keep,
    ) -> GpuResult<()> {
        match cmd {
            Command::Nop => Ok(()),
            Command::DelayUs(us) => {
                self.timelines.delay_us(ring, us);
                Ok(())
            }
            Command::FillBlob {
                resource,
                offset,
                len,
                value,
            } => {
                self.check_attached(ctx_id, resource)?;
                let blob = match self.resources.get(&resource) {
                    Some(Resource::Blob(blob)) => blob,
                    _ => {
                        return Err(GpuError::InvalidParameter(
                            "FILL_BLOB on a non-blob resource",
                        ))
                    }
                };
                let end = offset.checked_add(u64::from(len));
                if end.is_none_or(|end| end > blob.memory.size) {
                    return Err(GpuError::InvalidParameter("fill outside the blob"));
                }
                let dst = blob.memory.buffer;
                ops.extend(self.blob_fill(dst, offset, u64::from(len), value, keep)?);
                Ok(())
            }
            Command::Fill {
                resource,
                rect,
                value,
            } => {
                self.check_attached(ctx_id, resource)?;
                self.image(resource)?.check_box(&rect, 0, 1)?;
                self.on_gpu(resource)?;
                self.gpu_wrote(resource, rect);
                let img = self.image(resource)?;
                let dst = img.linear()?;
                if img.bpp == 4 {
                    let row = u64::from(rect.width) * 4;
                    let ranges = (0..rect.height)
                        .map(|i| (dst.offset(0, rect.y + i, rect.x), row))
                        .filter(|r| r.1 > 0)
                        .collect();
                    ops.push(Op::Fill {
                        dst: dst.buffer,
                        ranges,
                        value,
                    });
                } else {
                    ops.push(self.pattern_fill(dst, rect, value, keep)?);
                }
                Ok(())
            }
            Command::Copy {
                src,
                dst,
                src_rect,
                dst_x,
                dst_y,
            } => {
                self.check_attached(ctx_id, src)?;
                self.check_attached(ctx_id, dst)?;
                if matches!(self.resources.get(&dst), Some(Resource::Blob(_))) {
                    return Err(GpuError::InvalidParameter("copy into a blob"));
                }
                let (s, d) = (self.image(src)?, self.image(dst)?);
                if s.bpp != d.bpp {
                    return Err(GpuError::InvalidParameter(
                        "copy between different pixel sizes",
                    ));
                }
                s.check_box(&src_rect, 0, 1)?;
                let dst_rect = Rect::new(dst_x, dst_y, src_rect.width, src_rect.height);
                d.check_box(&dst_rect, 0, 1)?;
                self.on_gpu(src)?;
                self.on_gpu(dst)?;
                self.gpu_wrote(dst, dst_rect);
                let (s, d) = (self.image(src)?.linear()?, self.image(dst)?.linear()?);
                let (w, h) = (src_rect.width, src_rect.height);
                let (from, to) = (At::xy(src_rect.x, src_rect.y), At::xy(dst_x, dst_y));
                if src != dst {
                    let regions = box_regions(s, from, d, to, w, h, 1);
                    ops.push(Op::Copy {
                        src: s.buffer,
                        dst: d.buffer,
                        regions,
                    });
                    return Ok(());
                }
                // Overlapping regions of one buffer are not allowed: bounce through a copy.
                let bytes = u64::from(w) * u64::from(h) * u64::from(s.bpp);
                if bytes == 0 {
                    return Ok(());
                }
                let usage = vk::BufferUsageFlags::TRANSFER_SRC | vk::BufferUsageFlags::TRANSFER_DST;
                let bounce = GpuBuffer::new(&self.dev, bytes, usage, MemoryUse::DeviceLocal)?;
                let b = Linear {
                    buffer: bounce.buffer,
                    stride: w * s.bpp,
                    bpp: s.bpp,
                    rows: h,
                };
                ops.push(Op::Copy {
                    src: s.buffer,
                    dst: b.buffer,
                    regions: box_regions(s, from, b, At::xy(0, 0), w, h, 1),
                });
                ops.push(Op::Copy {
                    src: b.buffer,
                    dst: d.buffer,
                    regions: box_regions(b, At::xy(0, 0), d, to, w, h, 1),
                });
                keep.push(bounce);
                Ok(())
            }
        }
    }

    /// A fill of `rect` with `value` truncated to the image's pixel size, as copies from a row
    /// of the pattern (fill commands need 4-byte-aligned ranges, 1-byte pixels are not).
    fn pattern_fill(&self, dst: Linear, rect: Rect, value: u32, keep: &mut Keep) -> GpuResult<Op> {
        let row = u64::from(rect.width) * u64::from(dst.bpp);
        let usage = vk::BufferUsageFlags::TRANSFER_SRC;
        let mut pattern = GpuBuffer::new(&self.dev, row.max(4), usage, MemoryUse::Upload)?;
        let px = value.to_le_bytes();
        let px = px
            .get(..dst.bpp as usize)
            .ok_or(GpuError::InvalidParameter("bpp"))?;
        let bytes = pattern
            .bytes_mut()
            .ok_or(GpuError::Backend("pattern not mapped".into()))?;
        for chunk in bytes.chunks_exact_mut(px.len()) {
            chunk.copy_from_slice(px);
        }
        let regions = (0..rect.height)
            .map(|i| vk::BufferCopy {
                src_offset: 0,
                dst_offset: dst.offset(0, rect.y + i, rect.x),
                size: row,
            })
            .filter(|r| r.size > 0)
            .collect();
        let op = Op::Copy {
            src: pattern.buffer,
            dst: dst.buffer,
            regions,
        };
        keep.push(pattern);
        Ok(op)
    }
}

impl VulkanBackend {
    /// Fills `len` bytes at `offset` of blob buffer `dst` with `value`: the 4-byte-aligned middle
    /// with `vkCmdFillBuffer`, the unaligned ends (at most 3 bytes each) as copies from a
    /// pattern buffer.
    fn blob_fill(
        &self,
        dst: vk::Buffer,
        offset: u64,
        len: u64,
        value: u8,
        keep: &mut Keep,
    ) -> GpuResult<Vec<Op>> {
        let end = offset + len;
        let (mid_start, mid_end) = (offset.next_multiple_of(4).min(end), end & !3);
        let mut ops = Vec::new();
        if mid_end > mid_start {
            ops.push(Op::Fill {
                dst,
                ranges: vec![(mid_start, mid_end - mid_start)],
                value: u32::from_ne_bytes([value; 4]),
            });
        }
        let ends: Vec<_> = [(offset, mid_start), (mid_end.max(mid_start), end)]
            .into_iter()
            .filter(|(a, b)| b > a)
            .map(|(a, b)| vk::BufferCopy {
                src_offset: 0,
                dst_offset: a,
                size: b - a,
            })
            .collect();
        if !ends.is_empty() {
            let usage = vk::BufferUsageFlags::TRANSFER_SRC;
            let mut pattern = GpuBuffer::new(&self.dev, 4, usage, MemoryUse::Upload)?;
            let bytes = pattern
                .bytes_mut()
                .ok_or(GpuError::Backend("pattern not mapped".into()))?;
            bytes.fill(value);
            ops.push(Op::Copy {
                src: pattern.buffer,
                dst,
                regions: ends,
            });
            keep.push(pattern);
        }
        Ok(ops)
    }
}

/// Records `ops` with a full memory barrier between consecutive ones.
fn record(d: &ash::Device, cmd: vk::CommandBuffer, ops: &[Op]) {
    for (i, op) in ops.iter().enumerate() {
        if i > 0 {
            let barrier = [vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE)];
            let stage = vk::PipelineStageFlags::TRANSFER;
            let flags = vk::DependencyFlags::empty();
            // SAFETY: `cmd` is recording; a global memory barrier has no handles.
            unsafe { d.cmd_pipeline_barrier(cmd, stage, stage, flags, &barrier, &[], &[]) };
        }
        match op {
            Op::Fill { dst, ranges, value } => {
                for &(offset, size) in ranges {
                    // SAFETY: `cmd` is recording; the range was checked against the image and
                    // offset and size are multiples of 4 (4-byte pixels, 4-aligned rows).
                    unsafe { d.cmd_fill_buffer(cmd, *dst, offset, size, *value) };
                }
            }
            Op::Copy { src, dst, regions } => {
                if !regions.is_empty() {
                    // SAFETY: `cmd` is recording; the regions were checked against both
                    // buffers, which are distinct and live until the submission completes.
                    unsafe { d.cmd_copy_buffer(cmd, *src, *dst, regions) };
                }
            }
        }
    }
}
