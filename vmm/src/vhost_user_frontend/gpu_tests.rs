//! `--gpu vhost-user`: the frontend against our own vhost-user GPU backend (the code behind
//! `vgpu vhost-user-gpu`) in the same process. A guest draws through virtio-gpu commands on
//! the control queue; the backend sends the scanout over the display socket the frontend gave
//! it, and the screenshot shows the guest's pixels.

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
