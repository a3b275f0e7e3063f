//! The frontend driven the way a guest drives it (virtio-pci registers, rings in memfd guest
//! RAM) against a vhost-user-backend daemon with an in-memory disk in the same process, and
//! against hand-written backends that answer badly.

use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use vhost::vhost_user::message::VhostUserProtocolFeatures;
use vhost_user_backend::{VhostUserBackendMut, VhostUserDaemon, VringRwLock, VringT};
use virtio_queue::QueueT;
use vm_memory::{Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};
use vmm_sys_util::epoll::EventSet;

use super::*;
use crate::pci::msix::tests::RecordingSink;
use crate::virtio_pci::status;
use crate::virtio_pci::test_guest::{Guest, USED};
use crate::virtio_pci::transport::{ISR_OFFSET, NOTIFY_OFFSET};

pub(super) const SECTOR: usize = 512;
const DISK_SECTORS: usize = 64;
const HEADER: u64 = 0x6000;
pub(super) const DATA: u64 = 0x7000;
pub(super) const STATUS: u64 = 0x8000;
/// virtio-blk features the mock offers: BLK_SIZE, FLUSH, and SECURE_ERASE (whose config the
/// frontend does not read, so it must not reach the guest).
const MOCK_BLK_FEATURES: u64 = 1 << 6 | 1 << 9 | 1 << 16;

/// A virtio-blk backend over a RAM disk: IN and OUT requests, status OK.
struct MockDisk {
    disk: Vec<u8>,
    mem: Option<GuestMemoryAtomic<GuestMemoryMmap>>,
    acked: u64,
    resets: u32,
    /// Take requests off the ring and never complete them (a backend stuck before it dies).
    stall: bool,
    taken: u32,
}

impl MockDisk {
    fn serve(&mut self, vring: &VringRwLock) -> std::io::Result<()> {
        let Some(atomic) = &self.mem else {
            return Ok(());
        };
        let mem = atomic.memory();
        let mut state = vring.get_mut();
        let mut served = false;
        while let Some(chain) = state.get_queue_mut().pop_descriptor_chain(mem.clone()) {
            self.taken += 1;
            if self.stall {
                continue;
            }
            let head = chain.head_index();
            let descs: Vec<_> = chain.collect();
            let header: [u8; 16] = mem
                .read_obj(descs[0].addr())
                .map_err(std::io::Error::other)?;
            let kind = u32::from_le_bytes(header[..4].try_into().unwrap());
            let sector = u64::from_le_bytes(header[8..].try_into().unwrap()) as usize;
            let data = &descs[1..descs.len() - 1];
            let mut at = sector * SECTOR;
            for d in data {
                let len = d.len() as usize;
                let Some(range) = self.disk.get_mut(at..at + len) else {
                    break;
                };
                if kind == 0 {
                    mem.write_slice(range, d.addr())
                        .map_err(std::io::Error::other)?;
                } else {
                    mem.read_slice(range, d.addr())
                        .map_err(std::io::Error::other)?;
                }
                at += len;
            }
            let status = descs.last().unwrap();
            mem.write_obj(0u8, status.addr())
                .map_err(std::io::Error::other)?;
            state.add_used(head, 1).map_err(std::io::Error::other)?;
            served = true;
        }
        if served {
            state.signal_used_queue()?;
        }
        Ok(())
    }
}

impl VhostUserBackendMut for MockDisk {
    type Bitmap = ();
    type Vring = VringRwLock;

    fn num_queues(&self) -> usize {
        2
    }
    fn max_queue_size(&self) -> usize {
        256
    }
    fn features(&self) -> u64 {
        VIRTIO_F_VERSION_1 | VIRTIO_RING_F_INDIRECT_DESC | PROTOCOL_FEATURES_BIT | MOCK_BLK_FEATURES
    }
    fn acked_features(&mut self, features: u64) {
        self.acked = features;
    }
    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        VhostUserProtocolFeatures::CONFIG
            | VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::RESET_DEVICE
            | VhostUserProtocolFeatures::INFLIGHT_SHMFD
    }
    fn reset_device(&mut self) {
        self.resets += 1;
    }
    fn exit_event(
        &self,
        _thread_index: usize,
    ) -> Option<(
        vmm_sys_util::event::EventConsumer,
        vmm_sys_util::event::EventNotifier,
    )> {
        // Lets a daemon that ends stop its ring worker too, as a dying process's would; left
        // running, it would go on reading the guest's kicks.
        vmm_sys_util::event::new_event_consumer_and_notifier(
            vmm_sys_util::event::EventFlag::NONBLOCK,
        )
        .ok()
    }
    fn set_event_idx(&mut self, _enabled: bool) {}
    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let mut config = [0u8; 96];
        config[..8].copy_from_slice(&((self.disk.len() / SECTOR) as u64).to_le_bytes());
        config[20..24].copy_from_slice(&(SECTOR as u32).to_le_bytes());
        // The backend could serve 2 queues; the device has 1.
        config[34..36].copy_from_slice(&2u16.to_le_bytes());
        config[offset as usize..(offset + size) as usize].to_vec()
    }
    fn update_memory(&mut self, mem: GuestMemoryAtomic<GuestMemoryMmap>) -> std::io::Result<()> {
        self.mem = Some(mem);
        Ok(())
    }
    fn handle_event(
        &mut self,
        device_event: u16,
        _evset: EventSet,
        vrings: &[VringRwLock],
        _thread_id: usize,
    ) -> std::io::Result<()> {
        self.serve(&vrings[usize::from(device_event)])
    }
}

type SharedDisk = Arc<RwLock<MockDisk>>;
/// Ends the daemon's connection, as a backend that dies would (set once it is connected).
type Shutdown = Arc<Mutex<Option<vhost_user_backend::ShutdownHandle>>>;

fn socket_path(name: &str) -> PathBuf {
    std::env::temp_dir().join(format!("vgpu-vu-{name}-{}.sock", std::process::id()))
}

/// Starts the mock disk daemon on a fresh socket; returns the socket, the disk, and a handle
/// that ends the connection (as a backend that dies would).
fn start_disk(name: &str) -> (PathBuf, SharedDisk, Shutdown) {
    start_disk_of(name, DISK_SECTORS)
}

/// [`start_disk`] with a disk of `sectors` sectors.
fn start_disk_of(name: &str, sectors: usize) -> (PathBuf, SharedDisk, Shutdown) {
    let path = socket_path(name);
    let _ = std::fs::remove_file(&path);
    let disk = Arc::new(RwLock::new(MockDisk {
        disk: (0..sectors * SECTOR).map(|i| (i % 251) as u8).collect(),
        mem: None,
        acked: 0,
        resets: 0,
        stall: false,
        taken: 0,
    }));
    let mut listener = vhost::vhost_user::Listener::new(&path, true).unwrap();
    let shutdown = Arc::new(Mutex::new(None));
    let (backend, handle) = (disk.clone(), shutdown.clone());
    std::thread::spawn(move || {
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let mut daemon = VhostUserDaemon::new("mock-disk".into(), backend, mem).unwrap();
        daemon.start(&mut listener).unwrap();
        *handle.lock().unwrap() = daemon.shutdown_handle();
        let _ = daemon.wait();
    });
    (path, disk, shutdown)
}

fn blk_guest(path: &std::path::Path) -> (Guest, RecordingSink) {
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let device =
        VhostUserDevice::connect(DeviceKind::Block, path, vec![8], memory.ram.clone()).unwrap();
    let sink = RecordingSink::default();
    let guest = Guest::attach(Box::new(device), memory.ram, None, sink.clone());
    (guest, sink)
}

/// A block device on the mock disk with the driver started (DRIVER_OK).
fn running_blk_guest(name: &str) -> (Guest, SharedDisk, Shutdown) {
    let (path, disk, shutdown) = start_disk(name);
    let (g, _) = blk_guest(&path);
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();
    (g, disk, shutdown)
}

/// A read or write of `sectors` sectors at `sector` on queue 0, avail index `n`.
pub(super) fn post_blk(g: &Guest, n: u16, write: bool, sector: u64, sectors: u32) {
    let header = [
        u32::from(write).to_le_bytes().as_slice(),
        &0u32.to_le_bytes(),
        &sector.to_le_bytes(),
    ]
    .concat();
    g.mem.write_slice(&header, GuestAddress(HEADER)).unwrap();
    g.mem.write_obj(0xffu8, GuestAddress(STATUS)).unwrap();
    let len = sectors * SECTOR as u32;
    g.post_chain(
        n,
        0,
        &[(HEADER, 16, false), (DATA, len, !write), (STATUS, 1, true)],
    );
    g.w(NOTIFY_OFFSET, 0, 2);
}

/// Waits for the used index to reach `n`, polling the device as the worker would.
pub(super) fn wait_used(g: &Guest, n: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while g.used_idx() < n {
        assert!(
            Instant::now() < deadline,
            "used index stuck at {}",
            g.used_idx()
        );
        g.dev.lock().unwrap().poll_device();
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Waits for the backend's used-buffer signal on queue 0 and relays it as the worker would.
pub(super) fn relay_call(g: &Guest) {
    let calls = g.dev.lock().unwrap().call_fds().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while calls[0].read().is_err() {
        assert!(Instant::now() < deadline, "the backend never signalled");
        std::thread::sleep(Duration::from_millis(1));
    }
    g.dev.lock().unwrap().used_elsewhere(0);
}

#[test]
fn negotiates_with_the_backend_and_shows_the_guest_only_what_it_can_use() {
    let (path, disk, _) = start_disk("negotiate");
    let (g, _) = blk_guest(&path);
    assert_eq!(g.cfg_read(0, 4), 0x1042_1af4, "virtio-blk");
    g.w(0x00, 0, 4);
    let low = g.r(0x04, 4);
    assert_eq!(
        low,
        1 << 6 | 1 << 9 | 1 << 28,
        "no SECURE_ERASE, no EVENT_IDX the backend lacks"
    );
    g.w(0x00, 1, 4);
    assert_eq!(
        g.r(0x04, 4),
        1,
        "VERSION_1; the vhost-user protocol bit stays hidden"
    );
    // Config space comes from the backend, with the queue count this device has.
    assert_eq!(g.r(0x2000, 8), DISK_SECTORS as u64);
    assert_eq!(g.r(0x2000 + 20, 4), SECTOR as u64);
    assert_eq!(g.r(0x2000 + 34, 2), 1);
    assert_eq!(g.r(0x2000 + 60, 4), 0, "past the config space");
    let status = g.init(VIRTIO_F_VERSION_1 | 1 << 9);
    assert_ne!(status & status::FEATURES_OK, 0);
    assert_eq!(
        disk.read().unwrap().acked,
        VIRTIO_F_VERSION_1 | 1 << 9 | PROTOCOL_FEATURES_BIT,
        "the backend gets the guest's features plus the protocol bit"
    );
}

#[test]
fn requests_go_to_the_backend_and_completions_come_back_as_interrupts() {
    let (g, disk, _) = running_blk_guest("io");
    assert!(g.dev.lock().unwrap().queues_served_elsewhere());
    // Read sectors 2..4: the backend's pattern arrives in guest memory.
    post_blk(&g, 0, false, 2, 2);
    relay_call(&g);
    assert_eq!(g.used_idx(), 1);
    let mut data = vec![0u8; 2 * SECTOR];
    g.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    let expected: Vec<u8> = (2 * SECTOR..4 * SECTOR).map(|i| (i % 251) as u8).collect();
    assert_eq!(data, expected);
    assert_eq!(
        g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        0,
        "VIRTIO_BLK_S_OK"
    );
    assert_eq!(
        g.r(ISR_OFFSET, 1),
        1,
        "the backend's call became a used-buffer interrupt"
    );
    // Write sector 5 and see it on the backend's disk.
    g.mem
        .write_slice(&[0xab; SECTOR], GuestAddress(DATA))
        .unwrap();
    post_blk(&g, 1, true, 5, 1);
    relay_call(&g);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(
        disk.read().unwrap().disk[5 * SECTOR..6 * SECTOR],
        [0xab; SECTOR]
    );
    // A driver reset stops the rings and resets the backend device.
    g.w(0x14, 0, 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while disk.read().unwrap().resets == 0 {
        assert!(Instant::now() < deadline, "RESET_DEVICE never arrived");
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_backend_that_dies_leaves_the_vm_running_and_the_guest_gets_io_errors() {
    let (g, _disk, shutdown) = running_blk_guest("dies");
    post_blk(&g, 0, false, 0, 1);
    wait_used(&g, 1);
    shutdown.lock().unwrap().take().unwrap().shutdown();
    // The next poll notices the hang-up: DEVICE_NEEDS_RESET and a config interrupt.
    poll_until(&g, "disconnect noticed", needs_reset);
    assert_eq!(g.r(ISR_OFFSET, 1) & 2, 2, "config-change interrupt");
    assert!(!g.dev.lock().unwrap().queues_served_elsewhere());
    // New requests complete at once, with the I/O error status.
    post_blk(&g, 1, true, 3, 1);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(
        g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        failing::VIRTIO_BLK_S_IOERR
    );
    let used_len: u32 = g.mem.read_obj(GuestAddress(USED + 4 + 8 + 4)).unwrap();
    assert_eq!(used_len, 1);
}

/// Whether the device status says DEVICE_NEEDS_RESET.
pub(super) fn needs_reset(g: &Guest) -> bool {
    g.r(0x14, 1) as u8 & status::DEVICE_NEEDS_RESET != 0
}

/// Polls the device as the worker would until `done` holds (for at most five seconds).
pub(super) fn poll_until(g: &Guest, what: &str, done: impl Fn(&Guest) -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done(g) {
        assert!(Instant::now() < deadline, "{what}: never happened");
        g.dev.lock().unwrap().poll_device();
        std::thread::sleep(Duration::from_millis(1));
    }
}

#[test]
fn a_block_backend_that_comes_back_takes_the_rings_over_without_a_driver_reset() {
    let (g, _old, shutdown) = running_blk_guest("returns");
    post_blk(&g, 0, false, 0, 1);
    wait_used(&g, 1);
    shutdown.lock().unwrap().take().unwrap().shutdown();
    poll_until(&g, "disconnect noticed", needs_reset);
    post_blk(&g, 1, false, 0, 1);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(
        g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        failing::VIRTIO_BLK_S_IOERR,
        "failed while no backend listens"
    );
    let generation = g.r(0x15, 1);
    // The backend returns on the same socket, with a disk twice the size.
    let (_, disk, _) = start_disk_of("returns", 2 * DISK_SECTORS);
    poll_until(&g, "reconnect", |g| !needs_reset(g));
    assert!(g.dev.lock().unwrap().queues_served_elsewhere());
    assert_ne!(g.r(0x15, 1), generation, "config generation moved");
    assert_eq!(g.r(ISR_OFFSET, 1) & 2, 2, "config-change interrupt");
    assert_eq!(g.r(0x2000, 8), 2 * DISK_SECTORS as u64, "the new capacity");
    // Sector 100 exists only on the new disk; the new backend serves it at ring index 2.
    post_blk(&g, 2, false, 100, 1);
    wait_used(&g, 3);
    assert_eq!(g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(), 0);
    let mut data = vec![0u8; SECTOR];
    g.mem.read_slice(&mut data, GuestAddress(DATA)).unwrap();
    let expected: Vec<u8> = (100 * SECTOR..101 * SECTOR)
        .map(|i| (i % 251) as u8)
        .collect();
    assert_eq!(data, expected);
    assert_eq!(
        disk.read().unwrap().taken,
        1,
        "only the new request reached it"
    );
    assert_ne!(
        disk.read().unwrap().acked & VIRTIO_F_VERSION_1,
        0,
        "features set again"
    );
}

#[test]
fn a_request_the_backend_took_and_never_completed_is_failed_when_it_dies() {
    let (g, disk, shutdown) = running_blk_guest("in-flight");
    disk.write().unwrap().stall = true;
    post_blk(&g, 0, false, 0, 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while disk.read().unwrap().taken == 0 {
        assert!(
            Instant::now() < deadline,
            "the backend never took the request"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(g.used_idx(), 0);
    shutdown.lock().unwrap().take().unwrap().shutdown();
    wait_used(&g, 1);
    assert_eq!(
        g.mem.read_obj::<u8>(GuestAddress(STATUS)).unwrap(),
        failing::VIRTIO_BLK_S_IOERR
    );
}

/// Waits until `fd` was signalled; false after a second.
fn signalled(fd: &EventFd) -> bool {
    let deadline = Instant::now() + Duration::from_secs(1);
    while Instant::now() < deadline {
        if fd.read().is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    false
}

#[test]
fn completions_go_straight_to_the_vectors_irqfd_unless_it_is_masked() {
    let (path, _disk, _) = start_disk("irqfd");
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let device =
        VhostUserDevice::connect(DeviceKind::Block, &path, vec![8], memory.ram.clone()).unwrap();
    let irqfds: Vec<EventFd> = (0..2)
        .map(|_| EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap())
        .collect();
    let sink = RecordingSink {
        irqfds: Arc::new(irqfds.iter().map(|fd| fd.try_clone().unwrap()).collect()),
        ..Default::default()
    };
    let g = Guest::attach(Box::new(device), memory.ram, None, sink.clone());
    g.init(VIRTIO_F_VERSION_1);
    // MSI-X on, queue 0 on vector 1, routed and unmasked, as Linux leaves it before DRIVER_OK.
    g.enable_msix();
    g.w(0x16, 0, 2);
    g.w(0x1a, 1, 2);
    let entry = g.route_vector(1, 0x31);
    g.driver_ok();
    let calls = g.dev.lock().unwrap().call_fds().unwrap();

    // The backend's completion raises the vector's irqfd itself: no relay, no ISR bit.
    post_blk(&g, 0, false, 1, 1);
    assert!(
        signalled(&irqfds[1]),
        "the backend did not signal the irqfd"
    );
    assert_eq!(g.used_idx(), 1);
    assert!(
        calls[0].read().is_err(),
        "our call eventfd was signalled too"
    );

    // Masked, the vector's completions come through us and stay pending.
    g.w(entry + 12, 1, 4);
    post_blk(&g, 1, false, 2, 1);
    relay_call(&g);
    assert_eq!(g.used_idx(), 2);
    assert!(irqfds[1].read().is_err(), "a masked vector was raised");
    assert!(
        sink.fired.lock().unwrap().is_empty(),
        "delivered while masked"
    );
    // Unmasking delivers the pending one and gives the irqfd back to the backend.
    g.w(entry + 12, 0, 4);
    assert_eq!(*sink.fired.lock().unwrap(), vec![1]);
    post_blk(&g, 2, false, 3, 1);
    assert!(signalled(&irqfds[1]), "the irqfd was not given back");
    assert_eq!(g.used_idx(), 3);
}

#[test]
fn fs_devices_carry_their_tag_and_request_queue_count_in_config() {
    let (path, _disk, _) = start_disk("fs");
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let tag = DeviceKind::Fs {
        tag: "shared".into(),
    };
    let device = VhostUserDevice::connect(tag, &path, vec![8, 8], memory.ram.clone()).unwrap();
    let mut config = [0u8; FS_TAG_LEN + 4];
    device.read_config(0, &mut config);
    assert_eq!(&config[..7], b"shared\0");
    assert_eq!(
        u32::from_le_bytes(config[FS_TAG_LEN..].try_into().unwrap()),
        1
    );
    assert_eq!(device.device_type(), VIRTIO_ID_FS);
    for bad in ["", "a-tag-longer-than-thirty-six-bytes-xyz"] {
        let kind = DeviceKind::Fs { tag: bad.into() };
        let err = VhostUserDevice::connect(kind, &path, vec![8, 8], memory.ram.clone());
        assert!(
            matches!(err, Err(FrontendError::BadTag(_))),
            "{bad:?} accepted"
        );
    }
}

/// How a hand-written backend answers request `code` whose body starts with `value`.
type Reply = fn(u32, u64) -> Vec<u8>;

/// A backend that accepts one connection and answers each request with `reply(code)`.
fn bad_backend(name: &str, reply: Reply) -> PathBuf {
    let path = socket_path(name);
    let _ = std::fs::remove_file(&path);
    let listener = UnixListener::bind(&path).unwrap();
    std::thread::spawn(move || {
        let (mut conn, _) = listener.accept().unwrap();
        let mut header = [0u8; 12];
        while conn.read_exact(&mut header).is_ok() {
            let code = u32::from_le_bytes(header[..4].try_into().unwrap());
            let size = u32::from_le_bytes(header[8..].try_into().unwrap());
            let mut body = vec![0u8; size as usize];
            if conn.read_exact(&mut body).is_err() {
                return;
            }
            let value = body
                .get(..8)
                .map_or(0, |b| u64::from_le_bytes(b.try_into().unwrap()));
            if conn.write_all(&reply(code, value)).is_err() {
                return;
            }
        }
    });
    path
}

fn message(code: u32, body: &[u8]) -> Vec<u8> {
    let flags = 0x1u32 | 0x4; // version 1, reply
    [
        code.to_le_bytes().as_slice(),
        &flags.to_le_bytes(),
        &(body.len() as u32).to_le_bytes(),
        body,
    ]
    .concat()
}

const GET_FEATURES: u32 = 1;

#[test]
fn malformed_backend_replies_are_errors_not_panics() {
    let memory = crate::memory::Memory::new(1 << 20).unwrap();
    let cases: [(&str, Reply); 4] = [
        // Features without VERSION_1.
        ("legacy", |code, _| match code {
            GET_FEATURES => message(GET_FEATURES, &(1u64 << 6).to_le_bytes()),
            _ => Vec::new(),
        }),
        // A reply to another request than the one asked.
        ("wrong-code", |code, _| match code {
            GET_FEATURES => message(GET_FEATURES + 1, &(1u64 << 32).to_le_bytes()),
            _ => Vec::new(),
        }),
        // A reply whose body is shorter than its type.
        ("short", |code, _| match code {
            GET_FEATURES => message(GET_FEATURES, &[1, 2, 3]),
            _ => Vec::new(),
        }),
        // A header that claims a huge body.
        ("huge", |code, _| match code {
            GET_FEATURES => [
                GET_FEATURES.to_le_bytes().as_slice(),
                &5u32.to_le_bytes(),
                &u32::MAX.to_le_bytes(),
            ]
            .concat(),
            _ => Vec::new(),
        }),
    ];
    for (name, reply) in cases {
        let path = bad_backend(name, reply);
        let started = Instant::now();
        let timeout = Duration::from_millis(300);
        let result = VhostUserDevice::connect_with_timeout(
            DeviceKind::Block,
            &path,
            vec![8],
            memory.ram.clone(),
            timeout,
        );
        assert!(result.is_err(), "{name}: a bad backend was accepted");
        assert!(started.elapsed() < 10 * timeout, "{name}: gave up too late");
        let _ = std::fs::remove_file(&path);
    }
    let missing = socket_path("nobody-listens");
    let err = VhostUserDevice::connect(DeviceKind::Block, &missing, vec![8], memory.ram.clone());
    assert!(matches!(err, Err(FrontendError::Connect { .. })));
}

#[test]
fn the_worker_notices_a_backend_that_dies_without_polling_on_a_timer() {
    // The worker starts before the driver, as in a VM: it learns of the handed-over rings
    // (and the backend socket to watch) from the transport, not from a timer.
    let (path, _disk, shutdown) = start_disk("worker-dies");
    let (g, _) = blk_guest(&path);
    let worker = crate::virtio_pci::Worker::spawn(g.dev.clone(), "vu-worker").unwrap();
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();
    assert!(g.dev.lock().unwrap().queues_served_elsewhere());
    std::thread::sleep(Duration::from_millis(50));
    shutdown.lock().unwrap().take().unwrap().shutdown();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !needs_reset(&g) {
        assert!(
            Instant::now() < deadline,
            "the worker never noticed the hang-up"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    // Failing mode: the worker serves the kicks itself now.
    post_blk(&g, 0, false, 0, 1);
    assert_eq!(g.used_idx(), 1);
    drop(worker);
}
