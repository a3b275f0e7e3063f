//! The compute half of the software backend: contexts speaking the private capset of
//! [`super::stream`], 3D resources, host blobs and fences.

use std::collections::HashSet;
use std::os::fd::OwnedFd;
use std::time::Duration;

use gpu_interface::{
    BlobDesc, BlobMapping, BlobMem, CapsetInfo, ComputeBackend, FenceTimeline, GpuError, GpuResult,
    MapCache, Resource3dDesc, ResourceId, RingIdx, RowSink, RowSource, Transfer3d,
};

use super::resources::{Blob, Image, Resource, Storage};
use super::stream::{self, Command};
use super::SoftwareBackend;

/// A context: its name and the resources attached to it.
#[derive(Debug)]
pub struct Context {
    #[allow(dead_code)]
    pub name: String,
    pub resources: HashSet<ResourceId>,
}

impl SoftwareBackend {
    fn context(&self, ctx_id: u32) -> GpuResult<&Context> {
        self.contexts
            .get(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))
    }

    /// Checks that `id` exists and is attached to `ctx_id`.
    fn check_attached(&self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        if !self.resources.contains_key(&id) || !self.context(ctx_id)?.resources.contains(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        Ok(())
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
                self.timelines
                    .add_work(ring, Duration::from_micros(u64::from(us)));
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
        vec![CapsetInfo {
            id: stream::CAPSET_ID,
            max_version: stream::CAPSET_VERSION,
            max_size: stream::CAPSET_SIZE,
        }]
    }

    fn capset(&self, id: u32, version: u32) -> GpuResult<Vec<u8>> {
        if id != stream::CAPSET_ID || version > stream::CAPSET_VERSION {
            return Err(GpuError::InvalidParameter("unknown capset or version"));
        }
        Ok(stream::capset_blob())
    }

    fn create_context(&mut self, ctx_id: u32, capset_id: u32, name: &str) -> GpuResult<()> {
        if capset_id != 0 && capset_id != stream::CAPSET_ID {
            return Err(GpuError::InvalidParameter(
                "capset not offered by this backend",
            ));
        }
        if ctx_id == 0 || self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        let ctx = Context {
            name: name.to_string(),
            resources: HashSet::new(),
        };
        self.contexts.insert(ctx_id, ctx);
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
        ctx.resources.insert(id);
        Ok(())
    }

    fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let ctx = self
            .contexts
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        if ctx.resources.remove(&id) {
            Ok(())
        } else {
            Err(GpuError::InvalidResourceId(id))
        }
    }

    fn submit(&mut self, ctx_id: u32, ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        self.context(ctx_id)?;
        let cmds = stream::decode(commands)?;
        let ring = FenceTimeline::Ring { ctx_id, ring_idx };
        for cmd in cmds {
            self.run(ctx_id, ring, cmd)?;
        }
        Ok(())
    }

    fn create_fence(&mut self, timeline: FenceTimeline, fence_id: u64) -> GpuResult<()> {
        if let FenceTimeline::Ring { ctx_id, .. } = timeline {
            self.context(ctx_id)?;
        }
        self.timelines.create_fence(timeline, fence_id);
        Ok(())
    }

    fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)> {
        self.timelines.poll()
    }

    fn create_resource_3d(
        &mut self,
        ctx_id: u32,
        id: ResourceId,
        desc: Resource3dDesc,
    ) -> GpuResult<()> {
        if ctx_id != 0 {
            self.context(ctx_id)?;
        }
        let image = Image::new_3d(&desc, self.memory_limit)?;
        self.insert_resource(id, Resource::new(Storage::Image(image)))?;
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.resources.insert(id);
        }
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
        self.context(ctx_id)?;
        let blob = Blob::new(desc.size, self.memory_limit)?;
        self.insert_resource(id, Resource::new(Storage::Blob(blob)))?;
        if let Some(ctx) = self.contexts.get_mut(&ctx_id) {
            ctx.resources.insert(id);
        }
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
        // A fixed RFC 4122 version-4 layout around the id: unique per resource of this device.
        let mut uuid = *b"vgpu-sw-\0\0\0\0\0\0\0\0";
        uuid[6] = 0x40 | (uuid[6] & 0x0f);
        uuid[8] = 0x80 | (uuid[8] & 0x3f);
        uuid[12..16].copy_from_slice(&id.to_be_bytes());
        Ok(uuid)
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
