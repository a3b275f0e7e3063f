//! Errors of the device: why a command failed (mapped to the spec's ERR_* responses in one place,
//! [`CmdError::response_type`]) and why a queue could not be served.

use gpu_interface::GpuError;

use crate::backing::BackingError;
use crate::protocol::*;

/// Why a command failed; the guest gets [`CmdError::response_type`] back.
#[derive(Debug, thiserror::Error)]
pub enum CmdError {
    #[error("request too short for {0}")]
    ShortRequest(&'static str),
    #[error("unknown command type {0:#x}")]
    UnknownCommand(u32),
    #[error("invalid resource id {0}")]
    InvalidResourceId(u32),
    #[error("invalid scanout id {0}")]
    InvalidScanoutId(u32),
    #[error("invalid context id {0}")]
    InvalidContextId(u32),
    #[error("invalid parameter: {0}")]
    InvalidParameter(&'static str),
    #[error("out of memory: {0}")]
    OutOfMemory(&'static str),
    #[error("not supported: {0}")]
    Unsupported(&'static str),
    #[error("backing: {0}")]
    Backing(#[from] BackingError),
    #[error("backend: {0}")]
    Backend(#[from] GpuError),
}

impl CmdError {
    /// The VIRTIO_GPU_RESP_ERR_* the guest receives for this error.
    pub fn response_type(&self) -> u32 {
        match self {
            CmdError::ShortRequest(_) | CmdError::UnknownCommand(_) | CmdError::Unsupported(_) => {
                VIRTIO_GPU_RESP_ERR_UNSPEC
            }
            CmdError::InvalidResourceId(_) => VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
            CmdError::InvalidScanoutId(_) => VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,
            CmdError::InvalidContextId(_) => VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID,
            CmdError::InvalidParameter(_) => VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            CmdError::OutOfMemory(_) => VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
            CmdError::Backing(BackingError::TooLarge) => VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
            CmdError::Backing(_) => VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            CmdError::Backend(e) => match e {
                GpuError::InvalidResourceId(_) => VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
                GpuError::InvalidScanoutId(_) => VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,
                GpuError::InvalidContextId(_) => VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID,
                GpuError::InvalidParameter(_) | GpuError::UnsupportedFormat(_) => {
                    VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
                }
                GpuError::OutOfHostMemory | GpuError::OutOfDeviceMemory => {
                    VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY
                }
                GpuError::Unsupported(_) | GpuError::Backend(_) => VIRTIO_GPU_RESP_ERR_UNSPEC,
            },
        }
    }
}

/// Why a queue could not be served at all (the device itself stays usable).
#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("virtqueue: {0}")]
    Queue(#[from] virtio_queue::Error),
    #[error("guest memory: {0}")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gpu_error_maps_to_a_spec_code() {
        let cases = [
            (
                GpuError::InvalidResourceId(1),
                VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
            ),
            (
                GpuError::InvalidScanoutId(1),
                VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,
            ),
            (
                GpuError::InvalidContextId(1),
                VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID,
            ),
            (
                GpuError::UnsupportedFormat(9),
                VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            ),
            (
                GpuError::OutOfDeviceMemory,
                VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY,
            ),
            (GpuError::Backend("x".into()), VIRTIO_GPU_RESP_ERR_UNSPEC),
        ];
        for (e, code) in cases {
            assert_eq!(CmdError::from(e).response_type(), code);
        }
    }
}
