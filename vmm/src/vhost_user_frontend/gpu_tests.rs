//! `--gpu vhost-user`: the frontend against our own vhost-user GPU backend (the code behind
//! `vgpu vhost-user-gpu`) in the same process. A guest draws through virtio-gpu commands on
//! the control queue; the backend sends the scanout over the display socket the frontend gave
//! it, and the screenshot shows the guest's pixels.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gpu_interface::DisplayMode;
use vhost_user_backend::VhostUserDaemon;
use virtio_gpu::backend::{create_backend, BackendKind};
use virtio_gpu::guest_driver::requests;
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, GpuDevice};
use vm_memory::{Bytes, GuestAddress, GuestMemoryAtomic, GuestMemoryMmap};

use super::gpu_display::GpuDisplay;
use super::*;
use crate::pci::msix::tests::RecordingSink;
use crate::pci::PciDevice;
use crate::vhost_user::backend::GpuVhostUserBackend;
use crate::vhost_user::display::{DisplaySocket, VhostUserDisplay};
use crate::virtio_pci::test_guest::{Guest, RESP};
use crate::virtio_pci::transport::NOTIFY_OFFSET;
use crate::vm::Display;

const PIXELS: u64 = 0x10_0000;
const CURSOR_RINGS: u64 = 0x20_0000;
const SIZE: u32 = 64;

/// Our GPU backend on a fresh socket, served by a daemon thread.
fn start_backend(name: &str) -> PathBuf {
    let path = std::env::temp_dir().join(format!("vgpu-vu-gpu-{name}-{}.sock", std::process::id()));
    let _ = std::fs::remove_file(&path);
    let config = GpuConfig {
        scanouts: vec![DisplayMode::new(SIZE, SIZE)],
        edid: false,
    };
    let mut device = GpuDevice::new(create_backend(BackendKind::Software).unwrap(), config);
    let socket = DisplaySocket::default();
    device.set_display_listener(Box::new(VhostUserDisplay::new(socket.clone())));
    let backend = GpuVhostUserBackend::new(device, 1, socket);
    let mut listener = vhost::vhost_user::Listener::new(&path, true).unwrap();
    std::thread::spawn(move || {
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let mut daemon = VhostUserDaemon::new("gpu".into(), backend, mem).unwrap();
        daemon.start(&mut listener).unwrap();
        let _ = daemon.wait();
    });
    path
}

/// Sends one control command (avail index `n`) and waits for its response type.
fn command(g: &Guest, n: u16, request: &[u8]) -> u32 {
    g.post(n, request);
    g.w(NOTIFY_OFFSET, 0, 2);
    let deadline = Instant::now() + Duration::from_secs(5);
    while g.used_idx() <= n {
        assert!(Instant::now() < deadline, "command {n} never completed");
        std::thread::sleep(Duration::from_millis(1));
    }
    let response: [u8; 24] = g.mem.read_obj(GuestAddress(RESP)).unwrap();
    requests::response_type(&response)
}

#[test]
fn a_guest_draws_through_a_vhost_user_gpu_backend_and_the_screenshot_shows_it() {
    let path = start_backend("draw");
    let memory = crate::memory::Memory::new(4 << 20).unwrap();
    let kind = DeviceKind::Gpu { scanouts: 1 };
    let mut device = VhostUserDevice::connect(kind, &path, vec![8, 8], memory.ram.clone()).unwrap();
    let (mut display, backend_end) = GpuDisplay::start(vec![DisplayMode::new(SIZE, SIZE)]).unwrap();
    device.set_gpu_socket(&backend_end).unwrap();
    let g = Guest::attach(Box::new(device), memory.ram, None, RecordingSink::default());
    assert_eq!(g.cfg_read(0, 4), 0x1050_1af4, "virtio-gpu");
    // The scanout count is the frontend's; events_clear is handled here, not forwarded.
    assert_eq!(g.r(0x2000 + 8, 4), 1, "num_scanouts");
    g.w(0x2000 + 4, 1, 4);
    assert_eq!(g.r(0x2000 + 4, 4), 0, "events_clear reads back 0");
    assert!(
        display.screenshot(0).is_err(),
        "nothing shown before the guest draws"
    );
    g.init(VIRTIO_F_VERSION_1);
    g.setup_queue(1, CURSOR_RINGS);
    g.driver_ok();

    // A 64x64 B8G8R8X8 resource backed by guest pages holding one colour (B, G, R, X).
    let colour = [0xe0u8, 0x80, 0x20, 0xff];
    let pixels: Vec<u8> = colour.repeat((SIZE * SIZE) as usize);
    g.mem.write_slice(&pixels, GuestAddress(PIXELS)).unwrap();
    let all = requests::rect(0, 0, SIZE, SIZE);
    let ok = VIRTIO_GPU_RESP_OK_NODATA;
    let create = requests::create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, SIZE, SIZE);
    assert_eq!(command(&g, 0, &create), ok);
    let backing = requests::attach_backing(1, &[(PIXELS, pixels.len() as u32)]);
    assert_eq!(command(&g, 1, &backing), ok);
    assert_eq!(
        command(&g, 2, &requests::transfer_to_host_2d(1, all, 0)),
        ok
    );
    assert_eq!(command(&g, 3, &requests::set_scanout(0, 1, all)), ok);
    assert_eq!(command(&g, 4, &requests::resource_flush(1, all)), ok);

    // SCANOUT and UPDATE arrive over the display socket shortly after.
    let deadline = Instant::now() + Duration::from_secs(5);
    let frame = loop {
        if let Ok(frame) = display.screenshot(0) {
            if frame.pixel_rgba(SIZE - 1, SIZE - 1) == Some([0x20, 0x80, 0xe0, 0xff]) {
                break frame;
            }
        }
        assert!(
            Instant::now() < deadline,
            "the guest's pixels never arrived"
        );
        std::thread::sleep(Duration::from_millis(5));
    };
    assert_eq!((frame.width, frame.height), (SIZE, SIZE));
    assert_eq!(frame.pixel_rgba(0, 0), Some([0x20, 0x80, 0xe0, 0xff]));
    assert!(display.screenshot(1).is_err(), "there is one scanout");
}

/// Reads `len` bytes at host address `addr` of a blob mapping the frontend made.
fn read_mapped(addr: u64, len: usize) -> Vec<u8> {
    // SAFETY: `addr` is the start of a live shared mapping of at least `len` bytes: the
    // frontend's region mapped it for a memory slot that is still registered.
    unsafe { std::slice::from_raw_parts(addr as *const u8, len) }.to_vec()
}

#[test]
fn host_visible_blobs_reach_the_guest_through_the_frontends_region() {
    use crate::hypervisor::mock::MockHypervisor;
    use crate::hypervisor::{Hypervisor, Vm};
    use crate::virtio_pci::shm::ShmRegion;

    let path = start_backend("blob");
    let memory = crate::memory::Memory::new(4 << 20).unwrap();
    let kind = DeviceKind::Gpu { scanouts: 1 };
    let mut device = VhostUserDevice::connect(kind, &path, vec![8, 8], memory.ram.clone()).unwrap();
    let size = crate::vhost_user::shm::HOST_VISIBLE_SIZE;
    assert_eq!(device.shm_request(), Some(size), "GET_SHMEM_CONFIG");
    let hv = MockHypervisor::new();
    let vm: Arc<dyn Vm> = Arc::from(hv.create_vm().unwrap());
    let region = ShmRegion::new(vm, size, vec![40, 41]);
    device.set_shm_region(region.clone());
    let g = Guest::attach(Box::new(device), memory.ram, None, RecordingSink::default());
    let bar2 = {
        let transport = g.dev.lock().unwrap();
        let config = transport.config();
        let bar = config.bar(crate::virtio_pci::transport::SHM_BAR);
        assert_eq!(bar.map(|bar| bar.size), Some(size), "the region is BAR 2");
        config
            .bar_address(crate::virtio_pci::transport::SHM_BAR)
            .unwrap()
    };
    g.w(0x00, 0, 4);
    let offered = g.r(0x04, 4);
    assert_ne!(offered & 1 << VIRTIO_GPU_F_RESOURCE_BLOB, 0);
    g.init(VIRTIO_F_VERSION_1 | offered);
    g.setup_queue(1, CURSOR_RINGS);
    g.driver_ok();

    let ok = VIRTIO_GPU_RESP_OK_NODATA;
    assert_eq!(command(&g, 0, &requests::ctx_create(1, 0, "blob")), ok);
    let blob = requests::create_blob(
        1,
        5,
        VIRTIO_GPU_BLOB_MEM_HOST3D,
        VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE,
        0x2000,
    );
    assert_eq!(command(&g, 1, &blob), ok);
    // The backend's SHMEM_MAP is done before the guest hears OK_MAP_INFO: the slot is there.
    let map_info = VIRTIO_GPU_RESP_OK_MAP_INFO;
    assert_eq!(command(&g, 2, &requests::map_blob(5, 0x10000)), map_info);
    let slot = hv.state.lock().unwrap().memory_slots.get(&41).copied();
    let (gpa, len, host) = slot.expect("a memory slot for the blob");
    assert_eq!(
        (gpa, len),
        (bar2 + 0x10000, 0x2000),
        "at BAR 2 + the offset"
    );
    // What the guest writes through it lands in the backend's blob, and stays there: unmapped
    // (the slot goes) and mapped elsewhere, the new mapping shows it.
    // SAFETY: as in `read_mapped`: the slot's mapping is live and 0x2000 bytes long.
    unsafe { std::ptr::write_bytes(host as *mut u8, 0xab, 0x2000) };
    assert_eq!(command(&g, 3, &requests::unmap_blob(5)), ok);
    assert!(hv.state.lock().unwrap().memory_slots.is_empty());
    assert_eq!(command(&g, 4, &requests::map_blob(5, 0x4000)), map_info);
    let (gpa, _, host) = hv.state.lock().unwrap().memory_slots[&41];
    assert_eq!(gpa, bar2 + 0x4000);
    assert_eq!(read_mapped(host, 0x2000), vec![0xab; 0x2000]);
    // A map past the region's end is refused by the device before it asks the frontend.
    assert_ne!(
        command(&g, 5, &requests::map_blob(5, size - 0x1000)),
        map_info
    );
}
