//! `VhostUserBackend` for the virtio-gpu device: vrings in, device calls out.
//!
//! The device ([`virtio_gpu::GpuDevice`]) stays transport-agnostic; this file only moves queues,
//! config space, features and resets between vhost-user and the device. One mutex guards the
//! device: the control and cursor queues are served on one thread anyway, and screenshots or
//! resets from other threads are rare.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Duration;

use vhost::vhost_user::message::{
    VhostUserProtocolFeatures, VhostUserShMemConfig, VhostUserVirtioFeatures,
};
use vhost::vhost_user::{Backend, GpuBackend};
use vhost_user_backend::{VhostUserBackend, VringRwLock, VringT};
use virtio_bindings::virtio_config::{VIRTIO_F_RING_RESET, VIRTIO_F_VERSION_1};
use virtio_bindings::virtio_ring::{VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC};
use virtio_gpu::{GpuDevice, QueueKind};
use virtio_queue::QueueT;
use vm_memory::{GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use super::display::DisplaySocket;
use super::negotiate;

/// Queue size the backend accepts (QEMU asks for 256).
pub const MAX_QUEUE_SIZE: usize = 1024;
const CONTROL_QUEUE: u16 = 0;
const CURSOR_QUEUE: u16 = 1;

/// Set once QEMU's display details (sizes of its scanouts) have been applied to the device, so
/// that the guest's first GET_DISPLAY_INFO sees QEMU's sizes.
#[derive(Default)]
struct DisplayReady {
    ready: Mutex<bool>,
    cond: Condvar,
}

struct State {
    device: GpuDevice,
    /// Scanouts the device was configured with; QEMU reports all 16.
    scanouts: usize,
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    /// Whether the rings have served anything since the last reset (a reset of an idle device
    /// is skipped: QEMU stops the rings several times while starting).
    dirty: bool,
}

/// The device behind vhost-user. Cheap to clone (shared state).
#[derive(Clone)]
pub struct GpuVhostUserBackend {
    state: Arc<Mutex<State>>,
    display: DisplaySocket,
    display_ready: Arc<DisplayReady>,
    /// Whether a fence poller thread is running.
    fence_poller: Arc<AtomicBool>,
    /// Exit eventfds of the current connection's workers (see `exit_event`).
    exit_fds: Arc<Mutex<Vec<RawFd>>>,
}

impl GpuVhostUserBackend {
    /// Wraps `device`; its display listener must forward to `display` (see `VhostUserDisplay`).
    pub fn new(device: GpuDevice, scanouts: usize, display: DisplaySocket) -> Self {
        GpuVhostUserBackend {
            state: Arc::new(Mutex::new(State {
                device,
                scanouts,
                mem: None,
                dirty: false,
            })),
            display,
            display_ready: Arc::new(DisplayReady::default()),
            fence_poller: Arc::new(AtomicBool::new(false)),
            exit_fds: Arc::new(Mutex::new(Vec::new())),
        }
    }

    /// Runs `f` on the device (screenshots from the signal thread, tests).
    pub fn with_device<R>(&self, f: impl FnOnce(&mut GpuDevice) -> R) -> R {
        f(&mut self.lock().device)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Drops every resource, context and fence: QEMU went away or the guest reset the device.
    pub fn reset(&self) {
        let mut state = self.lock();
        if state.dirty {
            tracing::info!("resetting the virtio-gpu device");
            state.device.reset();
            state.dirty = false;
        }
    }

    /// Closes the exit eventfds of a finished connection whose worker threads have been joined.
    pub fn close_exit_events(&self) {
        for fd in self
            .exit_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
        {
            // SAFETY: `fd` is the consumer end handed to vhost-user-backend in `exit_event`; it
            // was turned into a raw fd registered only with the epoll set of a worker thread that
            // has been joined (the daemon was dropped), so nothing uses or closes it any more.
            drop(unsafe { OwnedFd::from_raw_fd(fd) });
        }
    }

    /// Forgets the guest memory and the display socket of a connection that ended.
    pub fn disconnect(&self) {
        self.reset();
        let mut state = self.lock();
        state.mem = None;
        // It holds the connection's backend request channel.
        state.device.remove_shm_mapper();
        drop(state);
        self.display.set(None);
        *self
            .display_ready
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = false;
    }

    fn mark_display_ready(&self) {
        *self
            .display_ready
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = true;
        self.display_ready.cond.notify_all();
    }

    /// Waits (briefly) for the display negotiation, so the guest's first GET_DISPLAY_INFO
    /// reports QEMU's scanout sizes rather than our defaults.
    fn wait_display_ready(&self) {
        let ready = self
            .display_ready
            .ready
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        let (mut ready, waited) = self
            .display_ready
            .cond
            .wait_timeout_while(ready, Duration::from_secs(2), |r| !*r)
            .unwrap_or_else(|e| e.into_inner());
        if waited.timed_out() {
            // A frontend without the display socket (or a QEMU that never answers): serve with
            // our own scanout sizes from now on rather than wait at every kick.
            tracing::warn!("no display negotiation within 2 s; using the configured scanout sizes");
            *ready = true;
        }
    }

    fn serve_queue(&self, queue: u16, vring: &VringRwLock) -> std::io::Result<()> {
        if queue == CONTROL_QUEUE {
            self.wait_display_ready();
        }
        let kind = if queue == CONTROL_QUEUE {
            QueueKind::Control
        } else {
            QueueKind::Cursor
        };
        let mut state = self.lock();
        let Some(atomic) = state.mem.clone() else {
            tracing::warn!("queue kick before the guest memory table; ignored");
            return Ok(());
        };
        let mem = atomic.memory();
        state.dirty = true;
        let mut vstate = vring.get_mut();
        let queue = vstate.get_queue_mut();
        let mut notify = false;
        // With VIRTIO_RING_F_EVENT_IDX the driver kicks only past the avail event we publish:
        // serve, re-arm, and serve again if chains arrived meanwhile.
        loop {
            if let Err(err) = queue.disable_notification(&*mem) {
                tracing::warn!("virtio-gpu {kind:?} queue: {err}");
            }
            match state.device.process_queue(kind, queue, &*mem) {
                Ok(n) => notify |= n,
                Err(err) => {
                    tracing::warn!("virtio-gpu {kind:?} queue: {err}");
                    notify = true;
                    break;
                }
            }
            match queue.enable_notification(&*mem) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(err) => {
                    tracing::warn!("virtio-gpu {kind:?} queue: {err}");
                    break;
                }
            }
        }
        if kind == QueueKind::Control {
            match state.device.process_fences(queue, &*mem) {
                Ok(n) => notify |= n,
                Err(err) => tracing::warn!("virtio-gpu fences: {err}"),
            }
        }
        let pending = kind == QueueKind::Control && state.device.fences_pending();
        drop(vstate);
        drop(state);
        if notify {
            vring.signal_used_queue()?;
        }
        if pending && !self.fence_poller.swap(true, Ordering::SeqCst) {
            self.spawn_fence_poller(vring.clone());
        }
        Ok(())
    }

    /// Completes fenced commands as the backend signals them, polling every millisecond while
    /// any are pending, then exits (the next fenced command starts a new poller).
    fn spawn_fence_poller(&self, vring: VringRwLock) {
        let this = self.clone();
        let spawned = std::thread::Builder::new()
            .name("vhost-user-gpu-fences".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(Duration::from_millis(1));
                    let mut state = this.lock();
                    let Some(atomic) = state.mem.clone() else {
                        break;
                    };
                    let mem = atomic.memory();
                    let mut vstate = vring.get_mut();
                    let notify = state.device.process_fences(vstate.get_queue_mut(), &*mem);
                    let pending = state.device.fences_pending();
                    drop(vstate);
                    drop(state);
                    match notify {
                        Ok(true) => {
                            if let Err(err) = vring.signal_used_queue() {
                                tracing::warn!("fence interrupt: {err}");
                            }
                        }
                        Ok(false) => {}
                        Err(err) => tracing::warn!("virtio-gpu fences: {err}"),
                    }
                    if !pending {
                        break;
                    }
                }
                this.fence_poller.store(false, Ordering::SeqCst);
            });
        if let Err(err) = spawned {
            tracing::warn!("no fence poller thread: {err}");
            self.fence_poller.store(false, Ordering::SeqCst);
        }
    }
}

impl VhostUserBackend for GpuVhostUserBackend {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        let device = self.lock().device.device_features();
        // QEMU 10's vhost-user-gpu acks EVENT_IDX and RING_RESET whether or not the backend
        // offers them, and vhost-user-backend refuses acks of bits not offered: offer both.
        // Event index is served (see serve_queue); per-queue reset is never used by the Linux
        // virtio_gpu driver, and QEMU would send a whole-device stop for it anyway.
        device
            | 1 << VIRTIO_F_VERSION_1
            | 1 << VIRTIO_RING_F_INDIRECT_DESC
            | 1 << VIRTIO_RING_F_EVENT_IDX
            | 1 << VIRTIO_F_RING_RESET
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn acked_features(&self, features: u64) {
        let mut state = self.lock();
        state.device.ack_features(features);
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // BACKEND_REQ + SHMEM (+ REPLY_ACK, so a map is done before the guest hears of it):
        // host-visible blobs mapped into the frontend's region; QEMU 10 knows none of SHMEM.
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::RESET_DEVICE
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::SHMEM
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        tracing::debug!("the frontend opened its backend request channel");
        self.lock()
            .device
            .set_shm_mapper(Box::new(super::shm::FrontendShm::new(backend)));
    }

    fn get_shmem_config(&self) -> std::io::Result<VhostUserShMemConfig> {
        let id = usize::from(super::shm::HOST_VISIBLE_SHMID);
        let mut sizes = [0u64; 2];
        sizes[id] = super::shm::HOST_VISIBLE_SIZE;
        Ok(VhostUserShMemConfig::new(sizes.len() as u32, &sizes))
    }

    fn reset_device(&self) {
        self.reset();
    }

    fn set_event_idx(&self, _enabled: bool) {}

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without an exit event a connection's worker thread never ends. vhost-user-backend
        // turns the consumer into a raw fd it never closes; remember it and close it once the
        // connection's workers have stopped (see `close_exit_events`).
        let (consumer, notifier) =
            new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC).ok()?;
        self.exit_fds
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(consumer.as_raw_fd());
        Some((consumer, notifier))
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut data = vec![0u8; size.min(4096) as usize];
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .device
            .read_config(u64::from(offset), &mut data);
        data
    }

    fn set_config(&self, offset: u32, buf: &[u8]) -> std::io::Result<()> {
        let mut state = self.lock();
        state.device.write_config(u64::from(offset), buf);
        Ok(())
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> std::io::Result<()> {
        self.lock().mem = Some(mem);
        Ok(())
    }

    fn set_gpu_socket(&self, socket: GpuBackend) -> std::io::Result<()> {
        tracing::info!("QEMU handed over the display socket");
        self.display.set(Some(socket.clone()));
        // QEMU answers on its main loop, which may be waiting for us on the vhost-user socket
        // right now: negotiate from another thread, never from this request handler.
        let this = self.clone();
        std::thread::Builder::new()
            .name("vhost-user-gpu-display".into())
            .spawn(move || {
                match negotiate::display_modes(&socket) {
                    Ok(modes) => {
                        let mut state = this.lock();
                        let count = state.scanouts;
                        // A changed mode raises VIRTIO_GPU_EVENT_DISPLAY in the device; QEMU
                        // owns events_read over vhost-user, so the guest sees the new size at
                        // its next GET_DISPLAY_INFO (the first one waits for this, see
                        // wait_display_ready).
                        for (scanout, mode) in modes.into_iter().take(count).enumerate() {
                            state.device.set_display_mode(scanout as u32, mode);
                        }
                    }
                    Err(err) => tracing::warn!("display negotiation with QEMU failed: {err}"),
                }
                this.mark_display_ready();
            })?;
        Ok(())
    }

    fn stop_vring(&self, queue_index: u32) -> std::io::Result<()> {
        // QEMU stops the rings when the guest resets the device (driver unbind, reboot) and
        // when it quits; the next driver starts from an empty device.
        if queue_index == u32::from(CONTROL_QUEUE) {
            // QEMU closed the display socket before stopping the rings; the next start brings
            // a new one (VHOST_USER_GPU_SET_SOCKET).
            self.display.set(None);
            self.reset();
        }
        Ok(())
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> std::io::Result<()> {
        if evset != EventSet::IN {
            return Err(std::io::Error::other(format!(
                "unexpected event set {evset:?}"
            )));
        }
        match device_event {
            CONTROL_QUEUE | CURSOR_QUEUE => {
                let vring = vrings
                    .get(usize::from(device_event))
                    .ok_or_else(|| std::io::Error::other("no such vring"))?;
                self.serve_queue(device_event, vring)
            }
            other => {
                tracing::warn!("event for unknown queue {other}");
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gpu_interface::DisplayMode;
    use virtio_gpu::backend::{create_backend, BackendKind};
    use virtio_gpu::GpuConfig;

    fn backend(scanouts: usize) -> GpuVhostUserBackend {
        let config = GpuConfig {
            scanouts: vec![DisplayMode::new(640, 480); scanouts],
            edid: true,
        };
        let device = GpuDevice::new(create_backend(BackendKind::Software).unwrap(), config);
        GpuVhostUserBackend::new(device, scanouts, DisplaySocket::default())
    }

    #[test]
    fn offers_what_qemu_10_acks() {
        let b = backend(1);
        let f = b.features();
        // QEMU 10's vhost-user-gpu acks these whether offered or not; vhost-user-backend would
        // refuse SET_FEATURES if we did not offer them.
        for bit in [
            VIRTIO_F_VERSION_1,
            VIRTIO_RING_F_EVENT_IDX,
            VIRTIO_F_RING_RESET,
        ] {
            assert_ne!(f & (1 << bit), 0, "bit {bit}");
        }
        assert_ne!(f & VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits(), 0);
        assert!(b
            .protocol_features()
            .contains(VhostUserProtocolFeatures::CONFIG));
        assert_eq!(b.num_queues(), 2);
    }

    #[test]
    fn config_space_comes_from_the_device() {
        let b = backend(3);
        let config = b.get_config(0, 16);
        let num_scanouts = u32::from_le_bytes(config[8..12].try_into().unwrap());
        assert_eq!(num_scanouts, 3);
        // A request larger than the structure reads zeros past it, and is capped.
        assert_eq!(b.get_config(0, 1 << 20).len(), 4096);
    }

    #[test]
    fn exit_events_are_closed_after_the_connection() {
        let b = backend(1);
        let (_consumer, notifier) = b.exit_event(0).unwrap();
        let fd = b.exit_fds.lock().unwrap()[0];
        // vhost-user-backend keeps only the raw fd of the consumer; emulate that.
        std::mem::forget(_consumer);
        b.close_exit_events();
        // SAFETY: F_GETFD only queries the descriptor number.
        assert_eq!(unsafe { libc::fcntl(fd, libc::F_GETFD) }, -1, "closed");
        drop(notifier);
    }
}
