//! The handshake with a backend: connecting, negotiating features, protocol features, queue
//! count, config space, the backend request channel and shared memory; handing rings over and
//! taking them back.

use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use tracing::{debug, warn};
use vhost::vhost_user::message::{
    VhostUserConfigFlags, VhostUserHeaderFlag, VhostUserProtocolFeatures,
};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::{VhostBackend, VhostUserMemoryRegionInfo, VringConfigData};
use virtio_queue::{Queue, QueueT};
use vm_memory::{GuestMemoryBackend, GuestMemoryMmap as GuestRam};
use vmm_sys_util::eventfd::EventFd;

use super::*;

/// Connects to the backend on `socket`, with `timeout` on every exchange.
pub(super) fn open(
    socket: &Path,
    queues: usize,
    timeout: Duration,
) -> Result<(Frontend, watchdog::Watchdog), FrontendError> {
    let connect_error = |source| FrontendError::Connect {
        path: socket.to_path_buf(),
        source,
    };
    let stream = UnixStream::connect(socket).map_err(connect_error)?;
    // A backend that stops answering must not hang the vCPU that touched the device.
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .map_err(connect_error)?;
    let frontend = Frontend::from_stream(stream, queues as u64);
    let watchdog = watchdog::Watchdog::new(frontend.as_raw_fd(), timeout).map_err(connect_error)?;
    Ok((frontend, watchdog))
}

/// Shares guest RAM and hands every ready ring over, with its kick and call eventfds.
pub(super) fn start_rings(
    frontend: &mut Frontend,
    mem: &GuestRam,
    acked_features: u64,
    queues: &[Queue],
    kicks: &[EventFd],
    calls: &[EventFd],
) -> Result<(), FrontendError> {
    let regions = mem
        .iter()
        .map(VhostUserMemoryRegionInfo::from_guest_region)
        .collect::<Result<Vec<_>, _>>()
        .map_err(protocol("describing guest memory"))?;
    frontend
        .set_mem_table(&regions)
        .map_err(protocol("SET_MEM_TABLE"))?;
    for (index, queue) in queues.iter().enumerate() {
        if !queue.ready() {
            continue;
        }
        let ring = VringConfigData {
            queue_max_size: queue.max_size(),
            queue_size: queue.size(),
            flags: 0,
            desc_table_addr: host_address(mem, queue.desc_table())?,
            used_ring_addr: host_address(mem, queue.used_ring())?,
            avail_ring_addr: host_address(mem, queue.avail_ring())?,
            log_addr: None,
        };
        frontend
            .set_vring_num(index, queue.size())
            .map_err(protocol("SET_VRING_NUM"))?;
        frontend
            .set_vring_addr(index, &ring)
            .map_err(protocol("SET_VRING_ADDR"))?;
        frontend
            .set_vring_base(index, queue.next_avail())
            .map_err(protocol("SET_VRING_BASE"))?;
        frontend
            .set_vring_call(index, &calls[index])
            .map_err(protocol("SET_VRING_CALL"))?;
        frontend
            .set_vring_kick(index, &kicks[index])
            .map_err(protocol("SET_VRING_KICK"))?;
        if acked_features & PROTOCOL_FEATURES_BIT != 0 {
            frontend
                .set_vring_enable(index, true)
                .map_err(protocol("SET_VRING_ENABLE"))?;
        }
    }
    Ok(())
}

/// Stops every ring the backend holds (GET_VRING_BASE) and resets it where it can.
pub(super) fn stop_rings(
    frontend: &mut Frontend,
    queues: usize,
    protocol_features: VhostUserProtocolFeatures,
) -> Result<(), vhost::Error> {
    for index in 0..queues {
        if let Err(err) = frontend.get_vring_base(index) {
            debug!(%err, queue = index, "vhost-user: GET_VRING_BASE");
        }
    }
    if protocol_features.contains(VhostUserProtocolFeatures::RESET_DEVICE) {
        frontend.reset_device()?;
    }
    Ok(())
}

/// The host address of guest address `gpa` in our mapping, as vhost-user ring addresses are
/// given (the backend translates them through the memory table's user addresses).
fn host_address(mem: &GuestRam, gpa: u64) -> Result<u64, FrontendError> {
    use vm_memory::GuestAddress;
    mem.get_host_address(GuestAddress(gpa))
        .map(|p| p as u64)
        .map_err(|_| FrontendError::Protocol {
            step: "ring outside guest memory",
            source: vhost::Error::InvalidGuestMemory,
        })
}

/// What is negotiated before the guest driver starts: owner, features, protocol features,
/// queue count, config space.
pub(super) fn negotiate(
    kind: &DeviceKind,
    frontend: &mut Frontend,
    queue_sizes: &[u16],
    shared: &backend_requests::Shared,
) -> Result<Negotiated, FrontendError> {
    frontend.set_owner().map_err(protocol("SET_OWNER"))?;
    let backend_features = frontend.get_features().map_err(protocol("GET_FEATURES"))?;
    if backend_features & VIRTIO_F_VERSION_1 == 0 {
        return Err(FrontendError::NotModern(backend_features));
    }
    let mut protocol_features = VhostUserProtocolFeatures::empty();
    if backend_features & PROTOCOL_FEATURES_BIT != 0 {
        let offered = frontend
            .get_protocol_features()
            .map_err(protocol("GET_PROTOCOL_FEATURES"))?;
        let mut wanted = WANTED_PROTOCOL_FEATURES;
        if matches!(kind, DeviceKind::Gpu { .. }) {
            // Host-visible blobs: the backend maps them into the device's region.
            wanted |= VhostUserProtocolFeatures::SHMEM;
        }
        protocol_features = offered & wanted;
        frontend
            .set_protocol_features(protocol_features)
            .map_err(protocol("SET_PROTOCOL_FEATURES"))?;
        if protocol_features.contains(VhostUserProtocolFeatures::REPLY_ACK) {
            // Every request waits for the backend's verdict: failures surface where they
            // happen, and the backend has acted on a request before the guest goes on.
            frontend.set_hdr_flags(VhostUserHeaderFlag::NEED_REPLY);
        }
    }
    if protocol_features.contains(VhostUserProtocolFeatures::MQ) {
        let backend = frontend
            .get_queue_num()
            .map_err(protocol("GET_QUEUE_NUM"))?;
        if backend < queue_sizes.len() as u64 {
            return Err(FrontendError::TooFewQueues {
                backend,
                wanted: queue_sizes.len(),
            });
        }
    }
    let config = initial_config(kind, frontend, protocol_features, queue_sizes)?;
    let requests = protocol_features
        .contains(VhostUserProtocolFeatures::BACKEND_REQ)
        .then(|| {
            let reply_ack = protocol_features.contains(VhostUserProtocolFeatures::REPLY_ACK);
            backend_requests::BackendRequests::start(frontend, reply_ack, shared.clone())
        })
        .transpose()?;
    let shm = if protocol_features.contains(VhostUserProtocolFeatures::SHMEM) {
        let regions = frontend
            .get_shmem_config()
            .map_err(protocol("GET_SHMEM_CONFIG"))?;
        shm_region(&regions)
    } else {
        None
    };
    Ok(Negotiated {
        features: backend_features,
        protocol_features,
        config,
        requests,
        shm,
    })
}

/// What negotiating with a backend settled.
pub(super) struct Negotiated {
    pub(super) features: u64,
    pub(super) protocol_features: VhostUserProtocolFeatures,
    pub(super) config: Vec<u8>,
    pub(super) requests: Option<backend_requests::BackendRequests>,
    /// The host-visible region the backend maps into: (shmid, size).
    pub(super) shm: Option<(u8, u64)>,
}

/// virtio-gpu's host-visible region (VIRTIO_GPU_SHM_ID_HOST_VISIBLE).
const GPU_SHM_ID: u8 = 1;
/// The largest shared-memory region a backend gets (it becomes a BAR of that size).
const MAX_SHM_SIZE: u64 = 64 << 30;

/// The GPU's host-visible region from GET_SHMEM_CONFIG: a power of two from a page to
/// [`MAX_SHM_SIZE`] (it is a BAR), else none.
fn shm_region(regions: &vhost::vhost_user::message::VhostUserShMemConfig) -> Option<(u8, u64)> {
    let id = usize::from(GPU_SHM_ID);
    let count = regions.nregions as usize;
    let size = (count > id).then(|| regions.memory_sizes[id])?;
    if size == 0 {
        return None;
    }
    if !size.is_power_of_two() || !(4096..=MAX_SHM_SIZE).contains(&size) {
        warn!(
            size,
            "vhost-user: the backend's shared-memory region is not a power of two from 4 KiB to 64 GiB; none is offered"
        );
        return None;
    }
    Some((GPU_SHM_ID, size))
}

/// The device's config space: read from the backend (block, GPU) or built here (fs).
pub(super) fn initial_config(
    kind: &DeviceKind,
    frontend: &mut Frontend,
    protocol_features: VhostUserProtocolFeatures,
    queue_sizes: &[u16],
) -> Result<Vec<u8>, FrontendError> {
    let from_backend = |frontend: &mut Frontend, len: u32| {
        if !protocol_features.contains(VhostUserProtocolFeatures::CONFIG) {
            return Ok(vec![0; len as usize]);
        }
        let (_, payload) = frontend
            .get_config(
                0,
                len,
                VhostUserConfigFlags::WRITABLE,
                &vec![0; len as usize],
            )
            .map_err(protocol("GET_CONFIG"))?;
        if payload.len() < len as usize {
            return Err(FrontendError::ShortConfig(payload.len()));
        }
        Ok(payload)
    };
    Ok(match kind {
        DeviceKind::Block => {
            let mut config = from_backend(frontend, BLK_CONFIG_LEN)?;
            // The guest sees as many queues as this transport has.
            let queues = (queue_sizes.len() as u16).to_le_bytes();
            config[BLK_CONFIG_NUM_QUEUES..BLK_CONFIG_NUM_QUEUES + 2].copy_from_slice(&queues);
            config
        }
        DeviceKind::Gpu { scanouts } => {
            let mut config = from_backend(frontend, GPU_CONFIG_LEN)?;
            config[..GPU_CONFIG_NUM_CAPSETS].fill(0);
            config[GPU_CONFIG_NUM_SCANOUTS..GPU_CONFIG_NUM_CAPSETS]
                .copy_from_slice(&scanouts.to_le_bytes());
            config
        }
        DeviceKind::Fs { tag } => {
            let mut config = vec![0u8; FS_TAG_LEN + 4];
            config[..tag.len()].copy_from_slice(tag.as_bytes());
            let request_queues = queue_sizes.len() as u32 - 1;
            config[FS_TAG_LEN..].copy_from_slice(&request_queues.to_le_bytes());
            config
        }
    })
}
