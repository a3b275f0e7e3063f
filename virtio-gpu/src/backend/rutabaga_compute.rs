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
use crate::backend::contexts::{self, ContextTable};

impl ComputeBackend for RutabagaBackend {
    fn capsets(&self) -> Vec<CapsetInfo> {
        Vec::new()
    }

    fn capset(&self, _id: u32, _version: u32) -> GpuResult<Vec<u8>> {
        Err(GpuError::InvalidParameter("unknown capset or version"))
    }

    fn create_context(&mut self, ctx_id: u32, capset_id: u32, _name: &str) -> GpuResult<()> {
        // No capset is offered, so only capset 0 (none) is accepted.
        self.contexts
            .create(ctx_id, capset_id, &[], Default::default())
    }

    fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()> {
        self.contexts.destroy(ctx_id)
    }

    fn attach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let exists = self.resources.contains_key(&id);
        self.contexts.attach(ctx_id, id, exists)
    }

    fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        self.contexts.detach(ctx_id, id)
    }

    fn submit(&mut self, ctx_id: u32, _ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        self.contexts.context(ctx_id)?;
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
                self.contexts.context(ctx_id)?;
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
        Ok(contexts::resource_uuid(*b"vgpu-rb-", id))
    }
}
