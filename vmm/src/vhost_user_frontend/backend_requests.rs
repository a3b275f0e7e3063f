//! The backend request channel (VHOST_USER_PROTOCOL_F_BACKEND_REQ): a socket pair whose far
//! end the backend gets with SET_BACKEND_REQ_FD, served here on a thread of its own. The
//! backend says its configuration changed (CONFIG_CHANGE_MSG: the device re-reads it and
//! raises a config interrupt), and maps files into the device's shared-memory region
//! (SHMEM_MAP / SHMEM_UNMAP: a GPU's host-visible blobs, given to the hypervisor as memory
//! slots by [`ShmRegion`]). Every request is checked; a refused one is answered with an error
//! (REPLY_ACK) and a warning, and the guest never reaches memory the backend did not give.

use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Arc, Mutex};

use gpu_interface::{BlobMapping, MapCache};
use tracing::{debug, warn};
use vhost::vhost_user::message::{VhostUserMMap, VhostUserMMapFlags};
use vhost::vhost_user::{
    Frontend, FrontendReqHandler, HandlerResult, VhostUserFrontend, VhostUserFrontendReqHandlerMut,
};
use virtio_gpu::SharedMemoryMapper;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{protocol, FrontendError};
use crate::virtio_pci::shm::ShmRegion;

/// What the backend's requests act on, shared with the device.
#[derive(Clone)]
pub(super) struct Shared {
    /// Signalled by CONFIG_CHANGE_MSG; one of the device's poll fds, so the worker polls it
    /// at once and the device reads (clears) it.
    pub config_changed: Arc<EventFd>,
    /// The shared-memory region SHMEM_MAP fills, once the VMM has placed it.
    pub region: Arc<Mutex<Option<(u8, ShmRegion)>>>,
}

impl Shared {
    pub(super) fn new() -> std::io::Result<Self> {
        Ok(Shared {
            config_changed: Arc::new(EventFd::new(EFD_NONBLOCK)?),
            region: Arc::default(),
        })
    }
}

/// The serving thread, told to stop on drop. It is not joined: one stuck halfway through a
/// message from a backend that hangs ends only when that backend goes, and the device must
/// not wait for that.
pub(super) struct BackendRequests {
    stop: EventFd,
}

impl BackendRequests {
    /// Opens the channel, hands its far end to the backend and starts serving it.
    pub(super) fn start(
        frontend: &mut Frontend,
        reply_ack: bool,
        shared: Shared,
    ) -> Result<Self, FrontendError> {
        let handler = Arc::new(Mutex::new(Handler { shared }));
        let mut server = FrontendReqHandler::new(handler).map_err(|e| {
            protocol("opening the backend channel")(vhost::Error::VhostUserProtocol(e))
        })?;
        server.set_reply_ack_flag(reply_ack);
        frontend
            .set_backend_request_fd(&server.get_tx_raw_fd())
            .map_err(protocol("SET_BACKEND_REQ_FD"))?;
        let io = |source: std::io::Error| FrontendError::Protocol {
            step: "starting the backend channel",
            source: vhost::Error::IOError(source),
        };
        let stop = EventFd::new(EFD_NONBLOCK).map_err(io)?;
        let stop_seen = stop.try_clone().map_err(io)?;
        std::thread::Builder::new()
            .name("vhost-user-backend-req".into())
            .spawn(move || serve(server, stop_seen))
            .map_err(io)?;
        Ok(BackendRequests { stop })
    }
}

impl Drop for BackendRequests {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
    }
}

/// Serves requests until the backend closes its end, sends garbage, or `stop` is signalled.
fn serve(mut server: FrontendReqHandler<Mutex<Handler>>, stop: EventFd) {
    loop {
        let mut fds = [
            libc::pollfd {
                fd: server.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
            libc::pollfd {
                fd: stop.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            },
        ];
        // SAFETY: `fds` is a valid array of two pollfds for the duration of the call; both fds
        // are open (owned by `server` and `stop`).
        let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, -1) };
        if n < 0 {
            if std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            warn!("vhost-user: polling the backend channel failed; it is closed");
            return;
        }
        if fds[1].revents != 0 {
            return;
        }
        match server.handle_request() {
            Ok(_) | Err(vhost::vhost_user::Error::ReqHandlerError(_)) => {}
            Err(
                vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
            ) => {
                debug!("vhost-user: the backend closed its request channel");
                return;
            }
            Err(err) => {
                warn!(%err, "vhost-user: a malformed backend request; the channel is closed");
                return;
            }
        }
    }
}

struct Handler {
    shared: Shared,
}

fn refuse(what: String) -> std::io::Error {
    warn!("vhost-user: backend request refused: {what}");
    std::io::Error::from_raw_os_error(libc::EINVAL)
}

impl VhostUserFrontendReqHandlerMut for Handler {
    fn handle_config_change(&mut self) -> HandlerResult<u64> {
        debug!("vhost-user: the backend's configuration changed");
        self.shared.config_changed.write(1)?;
        Ok(0)
    }

    fn shmem_map(&mut self, req: &VhostUserMMap, fd: &dyn AsRawFd) -> HandlerResult<u64> {
        let (shmid, fd_offset, shm_offset, len, flags) =
            (req.shmid, req.fd_offset, req.shm_offset, req.len, req.flags);
        let mut region = self.region(shmid)?;
        if !VhostUserMMapFlags::from_bits_truncate(flags).contains(VhostUserMMapFlags::WRITABLE) {
            // A read-only slot would turn guest writes into exits nobody serves.
            return Err(refuse(format!(
                "read-only mapping at {shm_offset:#x} (only writable ones are served)"
            )));
        }
        let end = fd_offset
            .checked_add(len)
            .ok_or_else(|| refuse(format!("file range {fd_offset:#x}+{len:#x} overflows")))?;
        if let Some(size) = file_size(fd.as_raw_fd()) {
            if end > size {
                // Guest accesses past the end of the file would fault in the hypervisor.
                return Err(refuse(format!(
                    "file range {fd_offset:#x}+{len:#x} past its end ({size:#x})"
                )));
            }
        }
        // SAFETY: `fd` is the descriptor the request carried, open for this call;
        // try_clone_to_owned duplicates it before the borrow ends.
        let owned = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) }.try_clone_to_owned()?;
        let mapping = BlobMapping {
            fd: owned,
            offset: fd_offset,
            size: len,
            cache: MapCache::Cached,
        };
        region
            .map(shm_offset, mapping)
            .map_err(|err| refuse(err.to_string()))?;
        debug!(shm_offset, len, "vhost-user: backend file mapped");
        Ok(0)
    }

    fn shmem_unmap(&mut self, req: &VhostUserMMap) -> HandlerResult<u64> {
        let (shmid, shm_offset, len) = (req.shmid, req.shm_offset, req.len);
        self.region(shmid)?
            .unmap(shm_offset, len)
            .map_err(|err| refuse(err.to_string()))?;
        Ok(0)
    }
}

impl Handler {
    fn region(&self, shmid: u8) -> std::io::Result<ShmRegion> {
        match &*self.shared.region.lock().unwrap_or_else(|e| e.into_inner()) {
            Some((id, region)) if *id == shmid => Ok(region.clone()),
            Some((id, _)) => Err(refuse(format!(
                "shared-memory region {shmid} (the device has {id})"
            ))),
            None => Err(refuse("the device has no shared-memory region".into())),
        }
    }
}

/// The size of a regular file or memfd behind `fd`; None for what has no meaningful size.
fn file_size(fd: RawFd) -> Option<u64> {
    // SAFETY: fstat writes only into the zeroed struct we pass; `fd` is open for the call.
    let mut stat: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: as above; the return value is checked.
    let rc = unsafe { libc::fstat(fd, &mut stat) };
    (rc == 0 && stat.st_mode & libc::S_IFMT == libc::S_IFREG).then_some(stat.st_size as u64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::mock::MockHypervisor;
    use crate::hypervisor::{Hypervisor, Vm};
    use crate::virtio_pci::shm::tests::memfd;

    fn map(shmid: u8, fd_offset: u64, shm_offset: u64, len: u64, flags: u64) -> VhostUserMMap {
        VhostUserMMap {
            shmid,
            fd_offset,
            shm_offset,
            len,
            flags,
            ..VhostUserMMap::default()
        }
    }

    #[test]
    fn backend_maps_are_checked_before_they_become_memory_slots() {
        let hv = MockHypervisor::new();
        let vm: Arc<dyn Vm> = Arc::from(hv.create_vm().unwrap());
        let region = ShmRegion::new(vm, 1 << 20, vec![7]);
        region.relocate(Some(0xd000_0000));
        let shared = Shared::new().unwrap();
        let mut handler = Handler {
            shared: shared.clone(),
        };
        let file = memfd(0x4000);
        let rw = VhostUserMMapFlags::WRITABLE.bits();
        assert!(
            handler.shmem_map(&map(1, 0, 0, 0x1000, rw), &file).is_err(),
            "no region placed yet"
        );
        *shared.region.lock().unwrap() = Some((1, region));
        for (bad, why) in [
            (map(0, 0, 0, 0x1000, rw), "another shmid"),
            (map(1, 0, 0, 0x1000, 0), "read-only"),
            (map(1, 0x2000, 0, 0x4000, rw), "past the file's end"),
            (map(1, 0, 0xff000, 0x2000, rw), "past the region's end"),
            (map(1, 0, 0x800, 0x1000, rw), "unaligned"),
            (map(1, u64::MAX, 0, 0x1000, rw), "overflowing"),
        ] {
            assert!(handler.shmem_map(&bad, &file).is_err(), "{why}");
        }
        assert!(hv.state.lock().unwrap().memory_slots.is_empty());
        handler
            .shmem_map(&map(1, 0x1000, 0x3000, 0x2000, rw), &file)
            .unwrap();
        let slots = hv.state.lock().unwrap().memory_slots.clone();
        assert_eq!((slots[&7].0, slots[&7].1), (0xd000_3000, 0x2000));
        assert!(handler.shmem_unmap(&map(1, 0, 0x5000, 0x1000, 0)).is_err());
        handler.shmem_unmap(&map(1, 0, 0x3000, 0x2000, 0)).unwrap();
        assert!(hv.state.lock().unwrap().memory_slots.is_empty());
        handler.handle_config_change().unwrap();
        assert_eq!(
            shared.config_changed.read().unwrap(),
            1,
            "the worker is woken"
        );
    }
}
