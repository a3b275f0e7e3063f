//! Backends that serve virtio-gpu commands, chosen at run time.

pub mod compose;
pub mod software;

use std::str::FromStr;

use gpu_interface::GpuBackend;

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
        BackendKind::Vulkan => Err(BackendError::NotCompiled("vulkan")),
        BackendKind::Rutabaga => Err(BackendError::NotCompiled("rutabaga")),
    }
}
