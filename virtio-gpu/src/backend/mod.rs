//! Backends that serve virtio-gpu commands, chosen at run time.

pub mod compose;
pub(crate) mod contexts;
pub(crate) mod fence_timeline;
pub(crate) mod host_display;
#[cfg(feature = "rutabaga")]
pub mod rutabaga;
pub(crate) mod scanouts;
pub mod software;
#[cfg(feature = "vulkan")]
pub mod vulkan;

use std::str::FromStr;

use gpu_interface::{GpuBackend, GpuError, GpuResult, Rect, Transfer3d};

/// The box of a 3D transfer (level 0 only), as (rect, first layer, layer count), once
/// `check_box` has found it inside the resource.
pub(crate) fn transfer_box(
    t: &Transfer3d,
    check_box: impl FnOnce(&Rect, u32, u32) -> GpuResult<()>,
) -> GpuResult<(Rect, u32, u32)> {
    if t.level != 0 {
        return Err(GpuError::InvalidParameter("only mip level 0 exists"));
    }
    let rect = Rect::new(t.x, t.y, t.width, t.height.max(1));
    let depth = t.depth.max(1);
    check_box(&rect, t.z, depth)?;
    Ok((rect, t.z, depth))
}

/// Which backend serves the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    /// CPU-only renderer: 2D resources, scanouts, cursor; for tests and hosts without Vulkan.
    Software,
    /// Host Vulkan through ash (lavapipe here, a real GPU elsewhere).
    Vulkan,
    /// rutabaga_gfx components (2D, cross-domain; virgl/gfxstream behind cargo features).
    Rutabaga,
}

/// Why a backend could not be created.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    #[error("unknown backend {0:?} (expected software, vulkan or rutabaga)")]
    Unknown(String),
    #[error("backend {0} was not compiled in (cargo feature off)")]
    NotCompiled(&'static str),
    #[error("backend {name} failed to start: {reason}")]
    Init { name: &'static str, reason: String },
}

impl FromStr for BackendKind {
    type Err = BackendError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "software" | "soft" | "null" => Ok(BackendKind::Software),
            "vulkan" => Ok(BackendKind::Vulkan),
            "rutabaga" => Ok(BackendKind::Rutabaga),
            other => Err(BackendError::Unknown(other.to_string())),
        }
    }
}

/// Creates a backend of `kind`.
pub fn create_backend(kind: BackendKind) -> Result<Box<dyn GpuBackend>, BackendError> {
    match kind {
        BackendKind::Software => Ok(Box::new(software::SoftwareBackend::new())),
        #[cfg(feature = "vulkan")]
        BackendKind::Vulkan => match vulkan::VulkanBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => Err(BackendError::Init {
                name: "vulkan",
                reason: e.to_string(),
            }),
        },
        #[cfg(not(feature = "vulkan"))]
        BackendKind::Vulkan => Err(BackendError::NotCompiled("vulkan")),
        #[cfg(feature = "rutabaga")]
        BackendKind::Rutabaga => match rutabaga::RutabagaBackend::new() {
            Ok(b) => Ok(Box::new(b)),
            Err(e) => Err(BackendError::Init {
                name: "rutabaga",
                reason: e.to_string(),
            }),
        },
        #[cfg(not(feature = "rutabaga"))]
        BackendKind::Rutabaga => Err(BackendError::NotCompiled("rutabaga")),
    }
}

impl BackendKind {
    /// The backend to use when none is asked for: Vulkan where a Vulkan device initialises,
    /// otherwise software.
    pub fn default_for_host() -> BackendKind {
        Self::default_backend().0
    }

    /// The default backend, created (so the Vulkan probe is not wasted), and its kind.
    pub fn default_backend() -> (BackendKind, Box<dyn GpuBackend>) {
        #[cfg(feature = "vulkan")]
        match vulkan::VulkanBackend::new() {
            Ok(b) => return (BackendKind::Vulkan, Box::new(b)),
            Err(e) => tracing::info!(%e, "no Vulkan device; using the software backend"),
        }
        (
            BackendKind::Software,
            Box::new(software::SoftwareBackend::new()),
        )
    }
}
