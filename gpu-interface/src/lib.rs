//! The common display/compute interface of the vGPU stack.
//!
//! Every GPU path (VFIO passthrough, vGPU slices, virtio-gpu backends) implements these traits and
//! the VMM consumes them. Display and compute are separate traits: a scanout-only device need not
//! pretend to run command streams, and a headless compute slice need not fake scanouts.
//! [`GpuBackend`] is the pair, for devices that offer both.

pub mod compute;
pub mod display;
pub mod edid;
pub mod error;
pub mod format;
pub mod geometry;
pub mod resource;
pub mod screenshot;
pub mod slice;

pub use compute::{CapsetInfo, ComputeBackend, FenceTimeline, RingIdx};
pub use display::{CursorImage, DisplayBackend, DisplayListener, DisplayMode, Frame, ScanoutId};
pub use error::{GpuError, GpuResult};
pub use format::PixelFormat;
pub use geometry::Rect;
pub use resource::{
    BlobDesc, BlobMapping, BlobMem, MapCache, Resource2dDesc, Resource3dDesc, ResourceId, RowSink,
    RowSource, Transfer3d,
};
pub use slice::{GateTicket, MemoryQuota, OverQuota, QuotaCharge, SliceLimits, SubmitGate};

/// A backend that serves both display and compute: what a virtio-gpu device drives.
pub trait GpuBackend: DisplayBackend + ComputeBackend + Send {
    /// A short name for logs and CLI output ("software", "vulkan", "rutabaga").
    fn name(&self) -> &'static str;

    /// The backend serves a slice: contexts it starts from now on charge the slice's quota
    /// for the memory they allocate and pass its gate to submit. Backends whose contexts
    /// allocate nothing of their own keep the default.
    fn set_slice_limits(&mut self, _limits: SliceLimits) {}
}
