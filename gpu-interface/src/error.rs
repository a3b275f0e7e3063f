//! Errors a backend reports; each GPU path maps them to its own protocol's error codes.

use crate::resource::ResourceId;

/// What went wrong in a backend call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GpuError {
    #[error("invalid resource id {0}")]
    InvalidResourceId(ResourceId),
    #[error("invalid scanout id {0}")]
    InvalidScanoutId(u32),
    #[error("invalid context id {0}")]
    InvalidContextId(u32),
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    #[error("unsupported pixel format {0:#010x}")]
    UnsupportedFormat(u32),
    #[error("out of host memory")]
    OutOfHostMemory,
    #[error("out of device memory")]
    OutOfDeviceMemory,
    #[error("not supported by this backend: {0}")]
    Unsupported(&'static str),
    #[error("backend failure: {0}")]
    Backend(String),
}

/// Result of a backend call.
pub type GpuResult<T> = Result<T, GpuError>;
