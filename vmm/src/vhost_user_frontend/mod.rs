//! The vhost-user frontend: a virtio device on our virtio-pci transport whose queues another
//! process serves (virtiofsd, qemu-storage-daemon, a vhost-user GPU). The frontend negotiates
//! features and protocol features, shares guest RAM (its memfd) with the backend, hands over
//! each ring with the guest's kick eventfd and a call eventfd the transport turns into
//! interrupts, and forwards config space.
//!
//! When the backend goes away the VM keeps running: the device reports DEVICE_NEEDS_RESET and
//! from then on completes every request itself with the device type's I/O error
//! ([`failing`]), so the guest sees errors instead of requests that never finish. A block
//! backend that listens again on the same socket takes the rings over where they stand
//! ([`reconnect`]).

pub mod attach;
pub mod backend_process;
mod backend_requests;
pub mod failing;
pub mod gpu_display;
mod handshake;
mod reconnect;
mod watchdog;

#[cfg(test)]
mod gpu_tests;
#[cfg(test)]
mod real_backends;
#[cfg(test)]
mod tests;

use std::any::Any;
use std::os::fd::{AsRawFd, FromRawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tracing::{debug, info, warn};
use vhost::vhost_user::message::{VhostUserConfigFlags, VhostUserProtocolFeatures};
use vhost::vhost_user::{Frontend, VhostUserFrontend};
use vhost::VhostBackend;
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemoryMmap as GuestRam;
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::EventFd;

use handshake::{initial_config, negotiate, open, start_rings, stop_rings, Negotiated};

use crate::virtio_pci::{
    NeedsInterrupt, VirtioDevice, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
    VIRTIO_RING_F_INDIRECT_DESC,
};

/// virtio device types the frontend knows how to configure.
pub const VIRTIO_ID_BLOCK: u16 = 2;
pub const VIRTIO_ID_FS: u16 = 26;
pub use crate::virtio_pci::gpu::VIRTIO_ID_GPU;
/// VHOST_USER_F_PROTOCOL_FEATURES: a vhost-user bit, never offered to the guest.
const PROTOCOL_FEATURES_BIT: u64 = 1 << 30;
/// Device-specific feature bits are 0..24; the transport owns the rest.
const DEVICE_FEATURE_MASK: u64 = (1 << 24) - 1;
/// virtio-blk features whose config fields lie past the part we read (secure erase, zoned).
const BLK_FEATURES_PAST_CONFIG: u64 = (1 << 16) | (1 << 17);
const VIRTIO_BLK_F_MQ: u64 = 1 << 12;
/// virtio_blk_config up to write_zeroes_may_unmap: every field Linux reads for the features
/// we pass on.
const BLK_CONFIG_LEN: u32 = 60;
const BLK_CONFIG_NUM_QUEUES: usize = 34;
/// virtio_gpu_config: events_read, events_clear, num_scanouts, num_capsets. A backend refuses
/// a longer read (QEMU's vhost-user-gpu answers it with an empty reply).
const GPU_CONFIG_LEN: u32 = 16;
const GPU_CONFIG_NUM_SCANOUTS: usize = 8;
const GPU_CONFIG_NUM_CAPSETS: usize = 12;
/// virtio_fs_config: tag[36], num_request_queues.
pub const FS_TAG_LEN: usize = 36;
/// A backend that does not answer within this long is treated as gone.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);
/// Protocol features the frontend implements.
const WANTED_PROTOCOL_FEATURES: VhostUserProtocolFeatures = VhostUserProtocolFeatures::MQ
    .union(VhostUserProtocolFeatures::REPLY_ACK)
    .union(VhostUserProtocolFeatures::CONFIG)
    .union(VhostUserProtocolFeatures::RESET_DEVICE)
    .union(VhostUserProtocolFeatures::BACKEND_REQ);

/// Why a vhost-user device could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum FrontendError {
    #[error("connecting to the vhost-user backend at {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("vhost-user {step}")]
    Protocol {
        step: &'static str,
        #[source]
        source: vhost::Error,
    },
    #[error("the backend does not offer VIRTIO_F_VERSION_1 (features {0:#x})")]
    NotModern(u64),
    #[error("the backend serves {backend} queues; this device needs {wanted}")]
    TooFewQueues { backend: u64, wanted: usize },
    #[error("the backend's configuration space is too short ({0} bytes)")]
    ShortConfig(usize),
    #[error("handing the GPU backend its display socket (VHOST_USER_GPU_SET_SOCKET)")]
    GpuSocket(#[source] std::io::Error),
    #[error("a virtio-fs tag is 1 to {FS_TAG_LEN} bytes, not {0:?}")]
    BadTag(String),
    #[error("a {kind} device has {min} to 64 queues, not {count}")]
    QueueCount {
        kind: &'static str,
        min: usize,
        count: usize,
    },
}

fn protocol(step: &'static str) -> impl FnOnce(vhost::Error) -> FrontendError {
    move |source| FrontendError::Protocol { step, source }
}

/// What kind of device the backend serves, and what the frontend adds to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceKind {
    /// virtio-blk; its config space comes from the backend.
    Block,
    /// virtio-fs: the frontend owns the config space (tag, request queues), as QEMU's does.
    Fs { tag: String },
    /// virtio-gpu: num_capsets from the backend; the scanout count and the display events
    /// are the frontend's (QEMU's vhost-user-gpu leaves them to its frontend).
    Gpu { scanouts: u32 },
}

impl DeviceKind {
    pub fn device_type(&self) -> u16 {
        match self {
            DeviceKind::Block => VIRTIO_ID_BLOCK,
            DeviceKind::Fs { .. } => VIRTIO_ID_FS,
            DeviceKind::Gpu { .. } => VIRTIO_ID_GPU,
        }
    }

    fn name(&self) -> &'static str {
        match self {
            DeviceKind::Block => "block",
            DeviceKind::Fs { .. } => "fs",
            DeviceKind::Gpu { .. } => "gpu",
        }
    }

    /// Whether a backend that comes back can take the device over: a block device's state is
    /// the disk; a FUSE session or a GPU's resources die with their backend.
    fn reconnects(&self) -> bool {
        *self == DeviceKind::Block
    }

    /// The fewest queues the device type works with (fs: hiprio + one request queue).
    fn min_queues(&self) -> usize {
        match self {
            DeviceKind::Block => 1,
            DeviceKind::Fs { .. } | DeviceKind::Gpu { .. } => 2,
        }
    }
}

/// A virtio device whose queues a vhost-user backend serves.
pub struct VhostUserDevice {
    kind: DeviceKind,
    socket: PathBuf,
    frontend: Frontend,
    watchdog: watchdog::Watchdog,
    queue_sizes: Vec<u16>,
    backend_features: u64,
    acked_features: u64,
    protocol_features: VhostUserProtocolFeatures,
    config: Vec<u8>,
    mem: GuestRam,
    /// The backend holds the rings (between activate and reset).
    active: bool,
    /// The backend went away; requests are failed here from now on.
    gone: bool,
    /// Queues whose ring position was taken over from the backend after it went away.
    adopted: Vec<bool>,
    /// The eventfds of the rings the driver started (kept to hand them to a new backend).
    rings: Option<RingFds>,
    reconnect: reconnect::Reconnect,
    /// The config space changed (a backend said so, or a returning one differs).
    config_changed: bool,
    /// What the backend request channel acts on.
    shared: backend_requests::Shared,
    requests: Option<backend_requests::BackendRequests>,
    /// The region GET_SHMEM_CONFIG asked for (shmid, size), and the one placed for it.
    shm_offered: Option<(u8, u64)>,
    shm: Option<crate::virtio_pci::shm::ShmRegion>,
}

/// Each queue's kick eventfd and the call eventfd its backend is to signal now.
struct RingFds {
    kicks: Vec<EventFd>,
    calls: Vec<EventFd>,
}

impl VhostUserDevice {
    /// Connects to the backend listening on `socket` and negotiates what can be negotiated
    /// before the guest driver starts: owner, features, protocol features, queue count, config.
    pub fn connect(
        kind: DeviceKind,
        socket: &Path,
        queue_sizes: Vec<u16>,
        mem: GuestRam,
    ) -> Result<Self, FrontendError> {
        Self::connect_with_timeout(kind, socket, queue_sizes, mem, REPLY_TIMEOUT)
    }

    /// [`VhostUserDevice::connect`], giving up on a reply after `timeout`.
    pub fn connect_with_timeout(
        kind: DeviceKind,
        socket: &Path,
        queue_sizes: Vec<u16>,
        mem: GuestRam,
        timeout: Duration,
    ) -> Result<Self, FrontendError> {
        if queue_sizes.len() < kind.min_queues() || queue_sizes.len() > 64 {
            return Err(FrontendError::QueueCount {
                kind: kind.name(),
                min: kind.min_queues(),
                count: queue_sizes.len(),
            });
        }
        if let DeviceKind::Fs { tag } = &kind {
            if tag.is_empty() || tag.len() > FS_TAG_LEN {
                return Err(FrontendError::BadTag(tag.clone()));
            }
        }
        let (mut frontend, watchdog) = open(socket, queue_sizes.len(), timeout)?;
        let shared = backend_requests::Shared::new().map_err(|source| FrontendError::Connect {
            path: socket.to_path_buf(),
            source,
        })?;
        let negotiated =
            watchdog.guard(|| negotiate(&kind, &mut frontend, &queue_sizes, &shared))?;
        let Negotiated {
            features: backend_features,
            protocol_features,
            config,
            requests,
            shm,
        } = negotiated;
        info!(
            socket = %socket.display(),
            kind = kind.name(),
            features = format_args!("{backend_features:#x}"),
            protocol = format_args!("{:#x}", protocol_features.bits()),
            "vhost-user: connected"
        );
        let queues = queue_sizes.len();
        Ok(VhostUserDevice {
            kind,
            socket: socket.to_path_buf(),
            frontend,
            watchdog,
            queue_sizes,
            backend_features,
            acked_features: 0,
            protocol_features,
            config,
            mem,
            active: false,
            gone: false,
            adopted: vec![false; queues],
            rings: None,
            reconnect: reconnect::Reconnect::new(timeout),
            config_changed: false,
            shared,
            requests,
            shm_offered: shm,
            shm: None,
        })
    }

    fn lost(&mut self, step: &str, err: &dyn std::fmt::Display) {
        if !self.gone {
            warn!(
                socket = %self.socket.display(),
                %err,
                step,
                "vhost-user: the backend went away; the device fails requests from now on"
            );
        }
        self.gone = true;
        self.active = false;
        self.requests = None;
    }

    /// Whether the backend closed its end (checked without blocking, between requests).
    fn hung_up(&self) -> bool {
        let mut byte = 0u8;
        // SAFETY: `byte` is a valid 1-byte buffer for the duration of the call and the fd is the
        // frontend's socket, open while `self` is; MSG_PEEK leaves any data in place.
        let n = unsafe {
            libc::recv(
                self.frontend.as_raw_fd(),
                (&mut byte as *mut u8).cast(),
                1,
                libc::MSG_PEEK | libc::MSG_DONTWAIT,
            )
        };
        if n == 0 {
            return true;
        }
        n < 0 && {
            let err = std::io::Error::last_os_error();
            !matches!(err.raw_os_error(), Some(libc::EAGAIN | libc::EINTR))
        }
    }

    /// Hands a GPU backend the socket it sends its scanouts over (VHOST_USER_GPU_SET_SOCKET,
    /// not in the vhost crate's frontend: written here, as QEMU does, without a reply).
    pub fn set_gpu_socket(&mut self, display: &UnixStream) -> Result<(), FrontendError> {
        use vmm_sys_util::sock_ctrl_msg::ScmSocket;
        const GPU_SET_SOCKET: u32 = 33;
        const VERSION_1: u32 = 0x1;
        let header = [GPU_SET_SOCKET, VERSION_1, 0]
            .map(u32::to_le_bytes)
            .concat();
        // SAFETY: the fd is the frontend's socket, open for as long as `self`; ManuallyDrop
        // keeps this second owner from closing it.
        let socket = std::mem::ManuallyDrop::new(unsafe {
            UnixStream::from_raw_fd(self.frontend.as_raw_fd())
        });
        let sent = self
            .watchdog
            .guard(|| socket.send_with_fd(header.as_slice(), display.as_raw_fd()));
        match sent {
            Ok(n) if n == header.len() => Ok(()),
            Ok(n) => Err(FrontendError::GpuSocket(std::io::Error::other(format!(
                "{n} of {} bytes sent",
                header.len()
            )))),
            Err(err) => Err(FrontendError::GpuSocket(std::io::Error::from_raw_os_error(
                err.errno(),
            ))),
        }
    }

    /// The backend said its config changed (CONFIG_CHANGE_MSG): a block device's is read
    /// again (a resized disk); the other kinds' config is the frontend's.
    fn refresh_config(&mut self) {
        if self.kind != DeviceKind::Block {
            debug!(kind = self.kind.name(), "vhost-user: config change ignored");
            return;
        }
        let (kind, frontend) = (&self.kind, &mut self.frontend);
        let (protocol_features, queue_sizes) = (self.protocol_features, &self.queue_sizes);
        let read = self
            .watchdog
            .guard(|| initial_config(kind, frontend, protocol_features, queue_sizes));
        match read {
            Ok(config) if config != self.config => {
                info!(socket = %self.socket.display(), "vhost-user: the device's config changed");
                self.config = config;
                self.config_changed = true;
            }
            Ok(_) => {}
            Err(err) => self.lost("GET_CONFIG", &err),
        }
    }

    /// The size of the shared-memory region the backend maps into, if it asked for one.
    pub fn shm_request(&self) -> Option<u64> {
        self.shm_offered.map(|(_, size)| size)
    }

    /// Gives the device the region the backend asked for (before it is plugged: the region
    /// becomes BAR 2); the backend's SHMEM_MAP requests fill it from then on.
    pub fn set_shm_region(&mut self, region: crate::virtio_pci::shm::ShmRegion) {
        let Some((shmid, _)) = self.shm_offered else {
            return;
        };
        *self.shared.region.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((shmid, region.clone()));
        self.shm = Some(region);
    }

    /// Takes over queue positions from a backend that went away, then fails what is pending.
    fn fail_pending(&mut self, queues: &mut [Queue], mem: &GuestRam) -> Vec<usize> {
        let mut interrupt = Vec::new();
        for (index, queue) in queues.iter_mut().enumerate() {
            if !queue.ready() {
                continue;
            }
            if !std::mem::replace(&mut self.adopted[index], true) {
                failing::adopt(queue, mem);
            }
            if failing::fail_available(self.kind.device_type(), queue, mem) {
                interrupt.push(index);
            }
        }
        interrupt
    }
}

impl VirtioDevice for VhostUserDevice {
    fn device_type(&self) -> u16 {
        self.kind.device_type()
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        self.queue_sizes.clone()
    }

    fn device_features(&self) -> u64 {
        let mut features = self.backend_features & DEVICE_FEATURE_MASK;
        if self.kind == DeviceKind::Block {
            features &= !BLK_FEATURES_PAST_CONFIG;
            if self.queue_sizes.len() == 1 {
                features &= !VIRTIO_BLK_F_MQ;
            }
        }
        features
    }

    fn ring_features(&self) -> u64 {
        self.backend_features & (VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX)
    }

    fn ack_features(&mut self, features: u64) {
        self.acked_features = features | (self.backend_features & PROTOCOL_FEATURES_BIT);
        if self.gone {
            return;
        }
        let acked = self.acked_features;
        if let Err(err) = self.watchdog.guard(|| self.frontend.set_features(acked)) {
            self.lost("SET_FEATURES", &err);
        }
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        data.fill(0);
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        if let Some(src) = self.config.get(start..start.saturating_add(data.len())) {
            data.copy_from_slice(src);
        }
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        let Some(dst) = self.config.get_mut(start..start.saturating_add(data.len())) else {
            warn!(
                offset,
                len = data.len(),
                "vhost-user: config write outside the config space"
            );
            return;
        };
        dst.copy_from_slice(data);
        if let DeviceKind::Gpu { .. } = self.kind {
            // events_clear acknowledges events_read, both ours; nothing else is writable.
            let word = |c: &[u8], at: usize| u32::from_le_bytes(c[at..at + 4].try_into().unwrap());
            let events = word(&self.config, 0) & !word(&self.config, 4);
            self.config[..4].copy_from_slice(&events.to_le_bytes());
            self.config[4..8].fill(0);
            return;
        }
        // fs config is ours; block (writeback) goes to the backend.
        if matches!(self.kind, DeviceKind::Fs { .. })
            || self.gone
            || !self
                .protocol_features
                .contains(VhostUserProtocolFeatures::CONFIG)
        {
            return;
        }
        let frontend = &mut self.frontend;
        let written = self
            .watchdog
            .guard(|| frontend.set_config(offset as u32, VhostUserConfigFlags::WRITABLE, data));
        if let Err(err) = written {
            warn!(%err, offset, "vhost-user: SET_CONFIG failed");
        }
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestRam,
    ) -> NeedsInterrupt {
        // Only reached once the backend is gone (or before it ever got the rings).
        self.fail_pending(queues, mem).contains(&index)
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &GuestRam) -> Vec<usize> {
        if self.active && self.hung_up() {
            self.lost("socket closed", &"end of file");
        }
        // Drained whether or not the backend is still there: a level-triggered poll fd.
        let config_changed = self.shared.config_changed.read().is_ok();
        if !self.gone {
            if config_changed {
                self.refresh_config();
            }
            return Vec::new();
        }
        let failed = self.fail_pending(queues, mem);
        if self.kind.reconnects() {
            self.try_reconnect(queues);
        }
        failed
    }

    fn take_config_changed(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn poll_interval(&self) -> Option<Duration> {
        // Only reconnect attempts are timed; everything else arrives as an event.
        (self.gone && self.kind.reconnects()).then_some(reconnect::INTERVAL)
    }

    fn poll_fds(&self) -> Vec<(std::os::fd::RawFd, EventSet)> {
        let mut fds = vec![(self.shared.config_changed.as_raw_fd(), EventSet::IN)];
        if self.active && !self.gone {
            // The backend hanging up; its replies are read where they are awaited.
            fds.push((self.frontend.as_raw_fd(), EventSet::READ_HANG_UP));
        }
        fds
    }

    fn shm_size(&self) -> Option<u64> {
        self.shm.as_ref().map(|region| region.size())
    }

    fn shm_moved(&mut self, base: Option<u64>) {
        if let Some(region) = &self.shm {
            region.relocate(base);
        }
    }

    fn recovered(&mut self) -> bool {
        self.reconnect.take_recovered()
    }

    fn queues_served_elsewhere(&self) -> bool {
        !self.gone
    }

    fn activate(
        &mut self,
        queues: &[Queue],
        kicks: &[EventFd],
        calls: &[EventFd],
    ) -> Result<(), String> {
        let fds = kicks
            .iter()
            .map(EventFd::try_clone)
            .collect::<Result<Vec<_>, _>>()
            .and_then(|kicks| {
                let calls = calls
                    .iter()
                    .map(EventFd::try_clone)
                    .collect::<Result<_, _>>()?;
                Ok(RingFds { kicks, calls })
            });
        match fds {
            Ok(fds) => self.rings = Some(fds),
            Err(err) => return Err(format!("duplicating the ring eventfds: {err}")),
        }
        if self.gone {
            // Kept for a backend that comes back; until then requests fail here.
            return Ok(());
        }
        let started = self.watchdog.guard(|| {
            start_rings(
                &mut self.frontend,
                &self.mem,
                self.acked_features,
                queues,
                kicks,
                calls,
            )
        });
        match started {
            Ok(()) => {
                self.active = true;
                debug!(socket = %self.socket.display(), "vhost-user: rings handed over");
                Ok(())
            }
            Err(err) => {
                let text = format!(
                    "{err}: {}",
                    std::error::Error::source(&err)
                        .map(|s| s.to_string())
                        .unwrap_or_default()
                );
                self.lost("activate", &text);
                Err(text)
            }
        }
    }

    fn set_call(&mut self, index: usize, call: &EventFd) {
        let slot = self.rings.as_mut().and_then(|r| r.calls.get_mut(index));
        match (slot, call.try_clone()) {
            (Some(slot), Ok(call)) => *slot = call,
            (Some(_), Err(err)) => warn!(%err, "vhost-user: duplicating a call eventfd"),
            (None, _) => {}
        }
        if !self.active || self.gone {
            return;
        }
        let frontend = &mut self.frontend;
        if let Err(err) = self.watchdog.guard(|| frontend.set_vring_call(index, call)) {
            self.lost("SET_VRING_CALL", &err);
        }
    }

    fn failed(&mut self) -> bool {
        self.gone
    }

    fn reset(&mut self) {
        if self.active && !self.gone {
            let stopped = self.watchdog.guard(|| {
                stop_rings(
                    &mut self.frontend,
                    self.queue_sizes.len(),
                    self.protocol_features,
                )
            });
            if let Err(err) = stopped {
                self.lost("RESET_DEVICE", &err);
            }
        }
        self.active = false;
        self.rings = None;
        self.adopted.fill(false);
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}
