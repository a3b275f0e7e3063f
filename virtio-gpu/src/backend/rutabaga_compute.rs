//! The compute half of the rutabaga backend. The 2D component offers no capset, so contexts run
//! no command streams; global fences go through rutabaga (its 2D component signals them through
//! the fence handler at once), ring fences complete at once since no ring ever has work.

use gpu_interface::{
    BlobDesc, BlobMapping, CapsetInfo, ComputeBackend, FenceTimeline, GpuError, GpuResult,
    Resource3dDesc, ResourceId, RingIdx, RowSink, RowSource, Transfer3d,
};
use rutabaga_gfx::RutabagaFence;
use tracing::warn;

use super::RutabagaBackend;

impl ComputeBackend for RutabagaBackend {
    fn capsets(&self) -> Vec<CapsetInfo> {
        Vec::new()
    }

    fn capset(&self, _id: u32, _version: u32) -> GpuResult<Vec<u8>> {
        Err(GpuError::InvalidParameter("unknown capset or version"))
    }

    fn create_context(&mut self, ctx_id: u32, capset_id: u32, _name: &str) -> GpuResult<()> {
        if capset_id != 0 {
            return Err(GpuError::InvalidParameter(
                "capset not offered by this backend",
            ));
        }
        if ctx_id == 0 || self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        self.contexts.insert(ctx_id, Default::default());
        Ok(())
    }

    fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()> {
        self.contexts
            .remove(&ctx_id)
            .map(drop)
            .ok_or(GpuError::InvalidContextId(ctx_id))
    }

    fn attach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        if !self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        let ctx = self
            .contexts
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        ctx.insert(id);
        Ok(())
    }

    fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let ctx = self
            .contexts
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        if ctx.remove(&id) {
            Ok(())
        } else {
            Err(GpuError::InvalidResourceId(id))
        }
    }

    fn submit(&mut self, ctx_id: u32, _ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        if !self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        if commands.is_empty() {
            return Ok(());
        }
        warn!(
            ctx_id,
            len = commands.len(),
            "rutabaga: command stream without a capset"
        );
        Err(GpuError::Unsupported(
            "command streams (the rutabaga 2D component has no capset)",
        ))
    }

    fn create_fence(&mut self, timeline: FenceTimeline, fence_id: u64) -> GpuResult<()> {
        match timeline {
            FenceTimeline::Global => {
                let fence = RutabagaFence {
                    flags: 0,
                    fence_id,
                    ctx_id: 0,
                    ring_idx: 0,
                };
                self.rutabaga
                    .0
                    .create_fence(fence)
                    .map_err(|e| GpuError::Backend(format!("rutabaga create_fence: {e}")))
            }
            FenceTimeline::Ring { ctx_id, .. } => {
                if !self.contexts.contains_key(&ctx_id) {
                    return Err(GpuError::InvalidContextId(ctx_id));
                }
                self.ring_done.push((timeline, fence_id));
                Ok(())
            }
        }
    }

    fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)> {
        let mut done: Vec<_> = match self.signalled.lock() {
            Ok(mut ids) => ids
                .drain(..)
                .map(|id| (FenceTimeline::Global, id))
                .collect(),
            Err(_) => Vec::new(),
        };
        done.append(&mut self.ring_done);
        done
    }

    fn create_resource_3d(
        &mut self,
        _ctx: u32,
        _id: ResourceId,
        _desc: Resource3dDesc,
    ) -> GpuResult<()> {
        Err(GpuError::Unsupported(
            "3D resources (rutabaga 2D component)",
        ))
    }

    fn transfer_to_host_3d(
        &mut self,
        _ctx_id: u32,
        _id: ResourceId,
        _transfer: Transfer3d,
        _source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        Err(GpuError::Unsupported(
            "3D transfers (rutabaga 2D component)",
        ))
    }

    fn transfer_from_host_3d(
        &mut self,
        _ctx_id: u32,
        _id: ResourceId,
        _transfer: Transfer3d,
        _sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        Err(GpuError::Unsupported(
            "3D transfers (rutabaga 2D component)",
        ))
    }

    fn create_blob(&mut self, _ctx_id: u32, _id: ResourceId, _desc: BlobDesc) -> GpuResult<()> {
        Err(GpuError::Unsupported("host blobs (rutabaga 2D component)"))
    }

    fn map_blob(&mut self, id: ResourceId) -> GpuResult<BlobMapping> {
        Err(GpuError::InvalidResourceId(id))
    }

    fn unmap_blob(&mut self, id: ResourceId) -> GpuResult<()> {
        Err(GpuError::InvalidResourceId(id))
    }

    fn resource_uuid(&mut self, id: ResourceId) -> GpuResult<[u8; 16]> {
        if !self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        let mut uuid = *b"vgpu-rb-\0\0\0\0\0\0\0\0";
        uuid[6] = 0x40 | (uuid[6] & 0x0f);
        uuid[8] = 0x80 | (uuid[8] & 0x3f);
        uuid[12..16].copy_from_slice(&id.to_be_bytes());
        Ok(uuid)
    }
}
