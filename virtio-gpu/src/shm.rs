//! The host-visible shared-memory region (virtio shmid VIRTIO_GPU_SHM_ID_HOST_VISIBLE) where
//! mappable host blobs appear to the guest. The transport owns the region and implements
//! [`SharedMemoryMapper`]; the device decides offsets (from RESOURCE_MAP_BLOB) and checks them.

use gpu_interface::BlobMapping;

/// Why the transport could not map or unmap.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    #[error("mapping failed: {0}")]
    Map(String),
    #[error("unmapping failed: {0}")]
    Unmap(String),
}

/// Maps host blobs into the guest's host-visible region.
pub trait SharedMemoryMapper: Send {
    /// Size in bytes of the region; mappings never extend past it.
    fn region_size(&self) -> u64;
    /// Maps `mapping` (fd, offset in the fd, size, cache mode) at `offset` in the region. The
    /// device has checked that `offset..offset + mapping.size` lies inside the region and does
    /// not overlap another mapping.
    fn map(&mut self, offset: u64, mapping: BlobMapping) -> Result<(), ShmError>;
    /// Removes the mapping at `offset` of `size` bytes.
    fn unmap(&mut self, offset: u64, size: u64) -> Result<(), ShmError>;
}
