//! The compute half of the software backend: contexts speaking the private capset of
//! [`super::stream`], 3D resources, host blobs and fences.

use std::collections::HashSet;
use std::os::fd::OwnedFd;

use gpu_interface::{
    BlobDesc, BlobMapping, BlobMem, CapsetInfo, ComputeBackend, FenceTimeline, GpuError, GpuResult,
    MapCache, Resource3dDesc, ResourceId, RingIdx, RowSink, RowSource, Transfer3d,
};

use super::resources::{Blob, Image, Resource, Storage};
use super::stream::{self, Command};
use super::SoftwareBackend;
use crate::backend::contexts::{self, ContextResources, ContextTable};

/// A context: its name and the resources attached to it.
#[derive(Debug)]
pub struct Context {
    #[allow(dead_code)]
    pub name: String,
    pub resources: HashSet<ResourceId>,
}

impl ContextResources for Context {
    fn resources(&self) -> &HashSet<ResourceId> {
        &self.resources
    }

    fn resources_mut(&mut self) -> &mut HashSet<ResourceId> {
        &mut self.resources
    }
}

impl SoftwareBackend {
    /// Checks that `id` exists and is attached to `ctx_id`.
    fn check_attached(&self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let exists = self.resources.contains_key(&id);
        self.contexts.check_attached(ctx_id, id, exists)
    }

    fn run(&mut self, ctx_id: u32, ring: FenceTimeline, cmd: Command) -> GpuResult<()> {
        match cmd {
            Command::Nop => Ok(()),
            Command::Fill {
                resource,
                rect,
                value,
            } => {
                self.check_attached(ctx_id, resource)?;
                self.image_mut(resource)?.fill(rect, value)
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
                if src == dst {
                    return self.image_mut(src)?.copy_within(src_rect, dst_x, dst_y);
                }
                // Take the destination out so both can be borrowed; it always goes back.
                let mut dst_res = self
                    .resources
                    .remove(&dst)
                    .ok_or(GpuError::InvalidResourceId(dst))?;
                let result = match (&mut dst_res.storage, self.image(src)) {
                    (Storage::Image(d), Ok(s)) => s.copy_to(src_rect, d, dst_x, dst_y),
                    (Storage::Blob(_), _) => Err(GpuError::InvalidParameter("copy into a blob")),
                    (_, Err(e)) => Err(e),
                };
                self.resources.insert(dst, dst_res);
                result
            }
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
                match self.resources.get(&resource).map(|r| &r.storage) {
                    Some(Storage::Blob(blob)) => blob.fill(offset, u64::from(len), value),
                    _ => Err(GpuError::InvalidParameter(
                        "FILL_BLOB on a non-blob resource",
                    )),
                }
            }
        }
    }
}

impl ComputeBackend for SoftwareBackend {
    fn capsets(&self) -> Vec<CapsetInfo> {
        vec![stream::capset_info()]
    }

    fn capset(&self, id: u32, version: u32) -> GpuResult<Vec<u8>> {
        stream::capset(id, version)
    }

    fn create_context(&mut self, ctx_id: u32, capset_id: u32, name: &str) -> GpuResult<()> {
        let ctx = Context {
            name: name.to_string(),
            resources: HashSet::new(),
        };
        self.contexts
            .create(ctx_id, capset_id, &[stream::CAPSET_ID], ctx)
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

    fn submit(&mut self, ctx_id: u32, ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        self.contexts.context(ctx_id)?;
        let cmds = stream::decode(commands)?;
        let ring = FenceTimeline::Ring { ctx_id, ring_idx };
        for cmd in cmds {
            self.run(ctx_id, ring, cmd)?;
        }
        Ok(())
    }

    fn create_fence(&mut self, timeline: FenceTimeline, fence_id: u64) -> GpuResult<()> {
        if let FenceTimeline::Ring { ctx_id, .. } = timeline {
            self.contexts.context(ctx_id)?;
        }
        self.timelines.create_fence(timeline, fence_id, ());
        Ok(())
    }

    fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)> {
        self.timelines.poll(|()| true)
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
        let image = Image::new_3d(&desc, self.memory_limit)?;
        self.insert_resource(id, Resource::new(Storage::Image(image)))?;
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
        let image = self.image_mut(id)?;
        let (rect, layer, depth) = image.transfer_box(&transfer)?;
        image.write_box(rect, layer, depth, source)
    }

    fn transfer_from_host_3d(
        &mut self,
        _ctx_id: u32,
        id: ResourceId,
        transfer: Transfer3d,
        sink: &mut dyn RowSink,
    ) -> GpuResult<()> {
        let image = self.image(id)?;
        let (rect, layer, depth) = image.transfer_box(&transfer)?;
        image.read_box(rect, layer, depth, sink)
    }

    fn create_blob(&mut self, ctx_id: u32, id: ResourceId, desc: BlobDesc) -> GpuResult<()> {
        if desc.mem != BlobMem::Host3d {
            return Err(GpuError::Unsupported(
                "only HOST3D blobs in the software backend",
            ));
        }
        self.contexts.context(ctx_id)?;
        let blob = Blob::new(desc.size, self.memory_limit)?;
        self.insert_resource(id, Resource::new(Storage::Blob(blob)))?;
        self.contexts.adopt(ctx_id, id);
        Ok(())
    }

    fn map_blob(&mut self, id: ResourceId) -> GpuResult<BlobMapping> {
        let Some(Storage::Blob(blob)) = self.resources.get_mut(&id).map(|r| &mut r.storage) else {
            return Err(GpuError::InvalidResourceId(id));
        };
        let file = blob
            .file
            .try_clone()
            .map_err(|e| GpuError::Backend(format!("dup: {e}")))?;
        blob.mapped = true;
        Ok(BlobMapping {
            fd: OwnedFd::from(file),
            offset: 0,
            size: blob.size,
            cache: MapCache::Cached,
        })
    }

    fn unmap_blob(&mut self, id: ResourceId) -> GpuResult<()> {
        match self.resources.get_mut(&id).map(|r| &mut r.storage) {
            Some(Storage::Blob(blob)) if blob.mapped => {
                blob.mapped = false;
                Ok(())
            }
            Some(Storage::Blob(_)) => Err(GpuError::InvalidParameter("blob is not mapped")),
            _ => Err(GpuError::InvalidResourceId(id)),
        }
    }

    fn resource_uuid(&mut self, id: ResourceId) -> GpuResult<[u8; 16]> {
        if !self.resources.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        Ok(contexts::resource_uuid(*b"vgpu-sw-", id))
    }
}

impl SoftwareBackend {
    /// Bytes of a host blob, for tests (what a guest would see through the mapping).
    pub fn blob_bytes(&self, id: ResourceId, offset: u64, len: usize) -> GpuResult<Vec<u8>> {
        match self.resources.get(&id).map(|r| &r.storage) {
            Some(Storage::Blob(blob)) => blob.read(offset, len),
            _ => Err(GpuError::InvalidResourceId(id)),
        }
    }

    /// Whether fences are still pending (a caller may poll again later).
    pub fn fences_pending(&self) -> bool {
        self.timelines.busy()
    }
}
