//! Capset VENUS (4) in the Vulkan backend: contexts whose SUBMIT_3D streams are Venus protocol,
//! run by the `venus` renderer on host Vulkan, with the guest driver's shared memory and its
//! host-visible device memory as HOST3D blobs the guest maps through the host-visible region.
//!
//! Following virglrenderer's venus: blob id 0 is fresh shared memory (rings, command and reply
//! streams); any other blob id names host-visible device memory the context allocated. A
//! context's stream runs synchronously in SUBMIT_3D, so a fence on ring 0 is done at once; a
//! fence on ring N > 0 waits for the GPU on the queue the driver bound to ring N. A malformed
//! stream ends that context (its rings report FATAL to the driver); others go on.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use ::venus::protocol::capset::{VenusCapset, CAPSET_ID_VENUS};
use ::venus::resource::{SharedMemory, MAX_BLOB_SIZE};
use ::venus::{Context, DeviceSelector, RenderError, StreamCx};
use gpu_interface::{
    BlobDesc, BlobMapping, BlobMem, CapsetInfo, FenceTimeline, GpuError, GpuResult, MapCache,
    ResourceId, RingIdx,
};
use tracing::{debug, warn};

/// Shared memory (blob id 0) all venus contexts of a device may hold at once.
pub const SHMEM_LIMIT: u64 = 1 << 30;

/// The capset's GET_CAPSET_INFO entry: one version (0), the struct's size.
pub fn capset_info() -> CapsetInfo {
    CapsetInfo {
        id: CAPSET_ID_VENUS,
        max_version: 0,
        max_size: VenusCapset::served().to_bytes().len() as u32,
    }
}

/// A renderer context; the blobs it can see (created in, or attached to, it) are its
/// renderer's resources.
struct VenusContext {
    renderer: Arc<Context>,
    stream: StreamCx,
}

struct VenusBlob {
    memory: Arc<SharedMemory>,
    /// Shared memory of our own (blob id 0), charged to `SHMEM_LIMIT`.
    charged: u64,
    mapped: bool,
}

/// Fences that signalled, filled by timeline threads and drained by `poll_fences`.
type Signalled = Arc<Mutex<Vec<(FenceTimeline, u64)>>>;

/// The venus contexts and blobs of one device.
#[derive(Default)]
pub struct VenusContexts {
    contexts: HashMap<u32, VenusContext>,
    blobs: HashMap<ResourceId, VenusBlob>,
    signalled: Signalled,
    shmem_used: u64,
    /// The slice new contexts serve under.
    pub(super) limits: gpu_interface::SliceLimits,
}

/// Logs a renderer failure and names it in the protocol's terms.
fn render_error(ctx_id: u32, what: &'static str) -> impl Fn(RenderError) -> GpuError {
    move |e| {
        warn!(ctx_id, "venus: {what}: {e}");
        match e {
            RenderError::Load(_) => GpuError::Backend(e.to_string()),
            _ => GpuError::InvalidParameter(what),
        }
    }
}

impl VenusContexts {
    pub fn owns_context(&self, ctx_id: u32) -> bool {
        self.contexts.contains_key(&ctx_id)
    }

    pub fn owns_resource(&self, id: ResourceId) -> bool {
        self.blobs.contains_key(&id)
    }

    pub fn capset(version: u32) -> GpuResult<Vec<u8>> {
        if version != 0 {
            return Err(GpuError::InvalidParameter("venus capset version"));
        }
        Ok(VenusCapset::served().to_bytes())
    }

    /// Starts a renderer context (it loads host Vulkan of its own, as a vtest client's does).
    pub fn create_context(&mut self, ctx_id: u32, name: &str) -> GpuResult<()> {
        if ctx_id == 0 || self.contexts.contains_key(&ctx_id) {
            return Err(GpuError::InvalidContextId(ctx_id));
        }
        let renderer = Context::with_limits(DeviceSelector::All, self.limits.clone())
            .map_err(render_error(ctx_id, "cannot start a venus context"))?;
        debug!(ctx_id, name, "venus: context created");
        self.contexts.insert(
            ctx_id,
            VenusContext {
                renderer,
                stream: StreamCx::default(),
            },
        );
        Ok(())
    }

    /// Ends a context: its rings and timelines stop and its host objects are destroyed. Blobs it
    /// created live on until the guest unrefs them (their memory stays valid while mapped).
    pub fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()> {
        let ctx = self
            .contexts
            .remove(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))?;
        ctx.renderer.shutdown();
        Ok(())
    }

    fn context(&mut self, ctx_id: u32) -> GpuResult<&mut VenusContext> {
        self.contexts
            .get_mut(&ctx_id)
            .ok_or(GpuError::InvalidContextId(ctx_id))
    }

    /// Makes blob `id` visible to context `ctx_id`. Resources that are not venus blobs (2D
    /// resources the kernel attaches to every context of a file) mean nothing to the renderer.
    pub fn attach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        let memory = self.blobs.get(&id).map(|b| b.memory.clone());
        let ctx = self.context(ctx_id)?;
        if let Some(memory) = memory {
            ctx.renderer.add_resource(id, memory);
        }
        Ok(())
    }

    pub fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()> {
        self.context(ctx_id)?.renderer.remove_resource(id);
        Ok(())
    }

    /// Runs a context's command stream (ring_idx says only which timeline later fences join).
    pub fn submit(&mut self, ctx_id: u32, ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()> {
        let ctx = self.context(ctx_id)?;
        debug!(ctx_id, ring_idx, bytes = commands.len(), "venus: submit");
        ctx.renderer
            .execute(&mut ctx.stream, commands)
            .map_err(render_error(ctx_id, "malformed venus stream"))
    }

    /// A fence on one of a venus context's rings.
    pub fn create_fence(&mut self, ctx_id: u32, ring_idx: RingIdx, fence_id: u64) -> GpuResult<()> {
        let timeline = FenceTimeline::Ring { ctx_id, ring_idx };
        let signalled = self.signalled.clone();
        let ctx = self.context(ctx_id)?;
        if ring_idx == 0 {
            signalled.lock().unwrap().push((timeline, fence_id));
            return Ok(());
        }
        ctx.renderer
            .submit_fence(
                u32::from(ring_idx),
                Box::new(move || signalled.lock().unwrap().push((timeline, fence_id))),
            )
            .map_err(render_error(ctx_id, "fence on a ring without a queue"))
    }

    pub fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)> {
        std::mem::take(&mut *self.signalled.lock().unwrap())
    }

    pub fn create_blob(&mut self, ctx_id: u32, id: ResourceId, desc: BlobDesc) -> GpuResult<()> {
        if desc.mem != BlobMem::Host3d {
            return Err(GpuError::Unsupported("venus serves HOST3D blobs only"));
        }
        if id == 0 || self.blobs.contains_key(&id) {
            return Err(GpuError::InvalidResourceId(id));
        }
        let renderer = self.context(ctx_id)?.renderer.clone();
        let size = usize::try_from(desc.size)
            .ok()
            .filter(|&s| s > 0 && s <= MAX_BLOB_SIZE)
            .ok_or(GpuError::InvalidParameter("venus blob size"))?;
        let (memory, charged) = if desc.blob_id == 0 {
            let total = self.shmem_used.checked_add(desc.size);
            if total.is_none_or(|t| t > SHMEM_LIMIT) {
                return Err(GpuError::OutOfHostMemory);
            }
            let memory = SharedMemory::new(size).map_err(|e| {
                warn!(ctx_id, "venus: shared memory of {size} bytes: {e}");
                GpuError::OutOfHostMemory
            })?;
            (Arc::new(memory), desc.size)
        } else {
            let memory = renderer
                .memory_blob(desc.blob_id)
                .map_err(render_error(ctx_id, "blob id names no host-visible memory"))?;
            if size > memory.size() {
                warn!(
                    ctx_id,
                    size,
                    have = memory.size(),
                    "venus: blob larger than its memory"
                );
                return Err(GpuError::InvalidParameter("blob larger than its memory"));
            }
            (memory, 0)
        };
        renderer.add_resource(id, memory.clone());
        self.shmem_used += charged;
        self.blobs.insert(
            id,
            VenusBlob {
                memory,
                charged,
                mapped: false,
            },
        );
        Ok(())
    }

    pub fn map_blob(&mut self, id: ResourceId) -> GpuResult<BlobMapping> {
        let blob = self
            .blobs
            .get_mut(&id)
            .ok_or(GpuError::InvalidResourceId(id))?;
        let fd = blob
            .memory
            .fd()
            .try_clone()
            .map_err(|_| GpuError::OutOfHostMemory)?;
        blob.mapped = true;
        Ok(BlobMapping {
            fd,
            offset: 0,
            size: blob.memory.size() as u64,
            cache: MapCache::Cached,
        })
    }

    pub fn unmap_blob(&mut self, id: ResourceId) -> GpuResult<()> {
        match self.blobs.get_mut(&id) {
            Some(b) if b.mapped => {
                b.mapped = false;
                Ok(())
            }
            Some(_) => Err(GpuError::InvalidParameter("blob is not mapped")),
            None => Err(GpuError::InvalidResourceId(id)),
        }
    }

    /// RESOURCE_UNREF of a venus blob: no context sees it any more.
    pub fn destroy_resource(&mut self, id: ResourceId) -> GpuResult<()> {
        let blob = self
            .blobs
            .remove(&id)
            .ok_or(GpuError::InvalidResourceId(id))?;
        self.shmem_used -= blob.charged;
        for ctx in self.contexts.values() {
            ctx.renderer.remove_resource(id);
        }
        Ok(())
    }
}

impl Drop for VenusContexts {
    fn drop(&mut self) {
        for (_, ctx) in self.contexts.drain() {
            ctx.renderer.shutdown();
        }
    }
}
