//! Host-visible blobs over vhost-user: the device's [`SharedMemoryMapper`] asks the frontend to
//! map each blob's file into the device's shared-memory region (VHOST_USER_BACKEND_SHMEM_MAP,
//! protocol feature SHMEM, over the backend request channel). With REPLY_ACK the frontend has
//! mapped it before RESOURCE_MAP_BLOB completes, so the guest never touches an unmapped page.

use gpu_interface::BlobMapping;
use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{Backend, VhostUserFrontendReqHandler};
use virtio_gpu::{SharedMemoryMapper, ShmError};

/// virtio-gpu's host-visible region (VIRTIO_GPU_SHM_ID_HOST_VISIBLE).
pub const HOST_VISIBLE_SHMID: u8 = 1;
/// The region's size, offered in GET_SHMEM_CONFIG (as large as the in-process device's).
pub const HOST_VISIBLE_SIZE: u64 = crate::virtio_pci::gpu::SHM_SIZE;

/// The frontend's end of the region, reached through the backend request channel.
pub struct FrontendShm {
    backend: Backend,
}

impl FrontendShm {
    pub fn new(backend: Backend) -> Self {
        FrontendShm { backend }
    }
}

fn request(shm_offset: u64, fd_offset: u64, len: u64) -> VhostUserMMap {
    VhostUserMMap {
        shmid: HOST_VISIBLE_SHMID,
        fd_offset,
        shm_offset,
        len,
        flags: VhostUserMMapFlags::WRITABLE.bits(),
        ..VhostUserMMap::default()
    }
}

impl SharedMemoryMapper for FrontendShm {
    fn region_size(&self) -> u64 {
        HOST_VISIBLE_SIZE
    }

    fn map(&mut self, offset: u64, mapping: BlobMapping) -> Result<(), ShmError> {
        let req = request(offset, mapping.offset, mapping.size);
        self.backend
            .shmem_map(&req, &mapping.fd)
            .map(|_| ())
            .map_err(|err| ShmError::Map(format!("SHMEM_MAP refused by the frontend: {err}")))
    }

    fn unmap(&mut self, offset: u64, size: u64) -> Result<(), ShmError> {
        self.backend
            .shmem_unmap(&request(offset, 0, size))
            .map(|_| ())
            .map_err(|err| ShmError::Unmap(format!("SHMEM_UNMAP refused by the frontend: {err}")))
    }
}
