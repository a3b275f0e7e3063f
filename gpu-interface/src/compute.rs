//! Compute contexts: capsets, command submission, fence timelines, 3D and blob resources.

use crate::error::GpuResult;
use crate::resource::{
    BlobDesc, BlobMapping, Resource3dDesc, ResourceId, RowSink, RowSource, Transfer3d,
};

/// Ring index within a context (virtio-gpu allows 0..64).
pub type RingIdx = u8;

/// A capability set a backend offers (virgl, venus, cross-domain, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CapsetInfo {
    pub id: u32,
    pub max_version: u32,
    pub max_size: u32,
}

/// The timeline a fence belongs to: the device-global one, or one ring of one context.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FenceTimeline {
    Global,
    Ring { ctx_id: u32, ring_idx: RingIdx },
}

/// The compute half of a GPU path. Backends without a capability return
/// [`crate::GpuError::Unsupported`]; they never panic.
pub trait ComputeBackend {
    /// The capsets this backend offers; virtio-gpu derives `num_capsets` from this.
    fn capsets(&self) -> Vec<CapsetInfo>;

    /// The capability blob of capset `id` at `version`.
    fn capset(&self, id: u32, version: u32) -> GpuResult<Vec<u8>>;

    /// Creates context `ctx_id` speaking capset `capset_id` (0: the backend's default).
    fn create_context(&mut self, ctx_id: u32, capset_id: u32, name: &str) -> GpuResult<()>;

    fn destroy_context(&mut self, ctx_id: u32) -> GpuResult<()>;

    fn attach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()>;

    fn detach_resource(&mut self, ctx_id: u32, id: ResourceId) -> GpuResult<()>;

    /// Runs a command stream in a context, on ring `ring_idx`.
    fn submit(&mut self, ctx_id: u32, ring_idx: RingIdx, commands: &[u8]) -> GpuResult<()>;

    /// Asks for fence `fence_id` on `timeline` to signal once all work submitted to that timeline
    /// so far has completed.
    fn create_fence(&mut self, timeline: FenceTimeline, fence_id: u64) -> GpuResult<()>;

    /// Fences that have signalled since the last call, in signal order per timeline.
    fn poll_fences(&mut self) -> Vec<(FenceTimeline, u64)>;

    fn create_resource_3d(
        &mut self,
        ctx_id: u32,
        id: ResourceId,
        desc: Resource3dDesc,
    ) -> GpuResult<()>;

    fn transfer_to_host_3d(
        &mut self,
        ctx_id: u32,
        id: ResourceId,
        transfer: Transfer3d,
        source: &mut dyn RowSource,
    ) -> GpuResult<()>;

    fn transfer_from_host_3d(
        &mut self,
        ctx_id: u32,
        id: ResourceId,
        transfer: Transfer3d,
        sink: &mut dyn RowSink,
    ) -> GpuResult<()>;

    /// Creates a host blob (HOST3D or HOST3D_GUEST); guest-memory blobs are handled by the
    /// transport from guest pages and never reach the backend.
    fn create_blob(&mut self, ctx_id: u32, id: ResourceId, desc: BlobDesc) -> GpuResult<()>;

    /// Host memory of a mappable blob, for the transport to map into the guest.
    fn map_blob(&mut self, id: ResourceId) -> GpuResult<BlobMapping>;

    fn unmap_blob(&mut self, id: ResourceId) -> GpuResult<()>;

    /// A 16-byte UUID under which the resource can be shared with other virtio devices.
    fn resource_uuid(&mut self, id: ResourceId) -> GpuResult<[u8; 16]>;
}
