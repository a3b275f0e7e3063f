//! The compute half of the Vulkan backend: contexts speaking the private "VG" capset (the
//! software backend's command stream, run on the GPU by `super::stream`), 3D resources as
//! linear images, fences as timeline-semaphore markers, and HOST3D blobs in exportable Vulkan
//! memory so `map_blob` hands out a real fd.

use std::collections::HashSet;

use ::venus::protocol::capset::CAPSET_ID_VENUS;
use gpu_interface::{
    BlobDesc, BlobMapping, BlobMem, CapsetInfo, ComputeBackend, FenceTimeline, GpuError, GpuResult,
    MapCache, Resource3dDesc, ResourceId, RingIdx, RowSink, RowSource, Transfer3d,
};
use tracing::warn;

use super::memory::ExportableMemory;
use super::resources::{Blob, ImageShape, Resource, PIPE_BUFFER};
use super::venus::{self, VenusContexts};
use super::{Context, VulkanBackend};
use crate::backend::contexts::{self, ContextResources, ContextTable};
use crate::backend::software::stream;

impl ContextResources for Context {
    fn resources(&self) -> &HashSet<ResourceId> {
        &self.resources
    }

    fn resources_mut(&mut self) -> &mut HashSet<ResourceId> {
        &mut self.resources
    }
}

impl ComputeBackend for VulkanBackend {
    fn capsets(&self) -> Vec<CapsetInfo> {
        vec![stream::capset_info(), venus::capset_info()]
    }

    fn capset(&self, id: u32, version: u32) -> GpuResult<Vec<u8>> {
        if id == CAPSET_ID_VENUS {
            return VenusContexts::capset(version);
        }
        stream::capset(id, version)
    }

    fn create_context(&mut self, ctx_id: u32, capset_id: u32, name: &str) -> GpuResult<()> {
        if capset_id == CAPSET_ID_VENUS {
            if self.contexts.contains_key(&ctx_id) {
                return Err(GpuError::InvalidContextId(ctx_id));
            }
            return self.venus.create_context(ctx_id, name);
        }
        if self.venus.owns_context(ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        self.contexts
            .create(ctx_id, capset_id, &[stream::CAPSET_ID], Context::default())
    }

    fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()> {
        if self.venus.owns_context(ctx_id) {
            return self.venus.destroy_context(ctx_id);
        }
        self.contexts.destroy(ctx_id)
    }

    fn attach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        if self.venus.owns_context(ctx_id) {
            return self.venus.attach_resource(ctx_id, id);
        }
        if self.venus.owns_resource(id) {
            // A venus blob means nothing to a VG context.
            return self.contexts.context(ctx_id).map(drop);
        }
        let exists = self.resources.contains_key(&id);
        self.contexts.attach(ctx_id, id, exists)
    }

    fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        if self.venus.owns_context(ctx_id) {
            return self.venus.detach_resource(ctx_id, id);
        }
        if self.venus.owns_resource(id) {
            return self.contexts.context(ctx_id).map(drop);
        }
        self.contexts.detach(ctx_id, id)
    }

    fn submit(&mut self, ctx_id: u32, ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        if self.venus.owns_context(ctx_id) {
            return self.venus.submit(ctx_id, ring_idx, commands);
        }
        self.contexts.context(ctx_id)?;
        let cmds = stream::decode(commands).inspect_err(|e| {
            warn!(ctx_id, %e, "vulkan: malformed command stream");
        })?;
        let ring = FenceTimeline::Ring { ctx_id, ring_idx };
        self.run_stream(ctx_id, ring, cmds)
    }

    fn create_fence(&mut self, timeline: FenceTimeline, fence_id: u64) -> GpuResult<()> {
        if let FenceTimeline::Ring { ctx_id, ring_idx } = timeline {
            if self.venus.owns_context(ctx_id) {
                return self.venus.create_fence(ctx_id, ring_idx, fence_id);
            }
            self.contexts.context(ctx_id)?;
        }
        // One queue serves everything, so a marker after all work submitted so far is what
        // both a ring and the global timeline wait for; values grow, so fences signal in order.
        let value = self.submitter.signal_marker()?;
        self.timelines.create_fence(timeline, fence_id, value);
        Ok(())
    }

    fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)> {
        let mut signalled = self.venus.poll_fences();
        match self.submitter.completed_value() {
            Ok(completed) => signalled.extend(self.timelines.poll(|value| value <= completed)),
            Err(e) => warn!(%e, "vulkan: cannot read the fence timeline"),
        }
        signalled
    }

    fn create_resource_3d(
        &mut self,
        ctx_id: u32,
        id: ResourceId,
        desc: Resource3dDesc,
    ) -> GpuResult<()> {
        if ctx_id != 0 {
            self.contexts.context(ctx_id)?;
        }
        if desc.last_level != 0 || desc.nr_samples > 1 {
            return Err(GpuError::Unsupported(
                "mipmaps or multisampling in the Vulkan backend",
            ));
        }
        let layers = desc.depth.max(1).checked_mul(desc.array_size.max(1));
        let shape = ImageShape {
            width: desc.width,
            height: desc.height.max(1),
            layers: layers.ok_or(GpuError::InvalidParameter("too many layers"))?,
            bpp: if desc.target == PIPE_BUFFER { 1 } else { 4 },
        };
        self.insert_image(id, shape)?;
        self.contexts.adopt(ctx_id, id);
        Ok(())
    }

    fn transfer_to_host_3d(
        &mut self,
        _ctx_id: u32,
        id: ResourceId,
        transfer: Transfer3d,
        source: &mut dyn RowSource,
    ) -> GpuResult<()> {
        let (rect, layer, depth) = self.image(id)?.transfer_box(&transfer)?;
        if let Some(host) = self.host_copy(id)? {
            // A 2D resource: its host copy is the one transfers and displays use.
            host.write_box(rect, layer, depth, source)?;
            self.host_wrote(id, rect);
            return Ok(());
        }
        let dst = self.image(id)?.linear()?;
        self.staging
            .upload(&mut self.submitter, dst, rect, (layer, depth), source)
    }

    fn transfer_from_host_3d(
        &mut self,
        _ctx_id: u32,
        id: ResourceId,
        transfer: Transfer3d,
        sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        let (rect, layer, depth) = self.image(id)?.transfer_box(&transfer)?;
        if let Some(host) = self.host_copy(id)? {
            return host.read_box(rect, layer, depth, sink);
        }
        let src = self.image(id)?.linear()?;
        self.staging
            .download(&mut self.submitter, src, rect, (layer, depth), sink)
    }

    fn create_blob(&mut self, ctx_id: u32, id: ResourceId, desc: BlobDesc) -> GpuResult<()> {
        if self.venus.owns_context(ctx_id) {
            if self.resources.contains_key(&id) {
                return Err(GpuError::InvalidResourceId(id));
            }
            return self.venus.create_blob(ctx_id, id, desc);
        }
        if self.venus.owns_resource(id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        if desc.mem != BlobMem::Host3d {
            return Err(GpuError::Unsupported(
                "only HOST3D blobs in the Vulkan backend",
            ));
        }
        self.contexts.context(ctx_id)?;
        if desc.size == 0 || desc.size > super::MEMORY_LIMIT {
            return Err(GpuError::InvalidParameter(
                "blob size zero or over the memory limit",
            ));
        }
        if id == 0 || self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        self.charge(desc.size)?;
        match ExportableMemory::new(&self.dev, desc.size) {
            Ok(memory) => {
                self.resources.insert(
                    id,
                    Resource::Blob(Blob {
                        memory,
                        mapped: false,
                    }),
                );
                self.contexts.adopt(ctx_id, id);
                Ok(())
            }
            Err(e) => {
                self.memory_used -= desc.size;
                Err(e.into())
            }
        }
    }

    fn map_blob(&mut self, id: ResourceId) -> GpuResult<BlobMapping> {
        if self.venus.owns_resource(id) {
            return self.venus.map_blob(id);
        }
        let Some(Resource::Blob(blob)) = self.resources.get_mut(&id) else {
            return Err(GpuError::InvalidResourceId(id));
        };
        let fd = blob.memory.export_fd()?;
        blob.mapped = true;
        Ok(BlobMapping {
            fd,
            offset: 0,
            size: blob.memory.size,
            cache: MapCache::Cached,
        })
    }

    fn unmap_blob(&mut self, id: ResourceId) -> GpuResult<()> {
        if self.venus.owns_resource(id) {
            return self.venus.unmap_blob(id);
        }
        match self.resources.get_mut(&id) {
            Some(Resource::Blob(blob)) if blob.mapped => {
                blob.mapped = false;
                Ok(())
            }
            Some(Resource::Blob(_)) => Err(GpuError::InvalidParameter("blob is not mapped")),
            _ => Err(GpuError::InvalidResourceId(id)),
        }
    }

    fn resource_uuid(&mut self, id: ResourceId) -> GpuResult<[u8; 16]> {
        if !self.resources.contains_key(&id) && !self.venus.owns_resource(id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        Ok(contexts::resource_uuid(*b"vgpu-vk-", id))
    }
}
