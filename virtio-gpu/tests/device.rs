//! The device as a transport sees it: features, config space, hotplug events, listeners, reset,
//! and malformed descriptor chains.

mod common;

use std::sync::{Arc, Mutex};

use common::*;
use gpu_interface::display::RectView;
use gpu_interface::{CursorImage, DisplayListener, DisplayMode, Rect as GRect};
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, QueueKind};
use zerocopy::IntoBytes;

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;

fn config_u32(g: &Guest, offset: u64) -> u32 {
    let mut b = [0u8; 4];
    g.dev.read_config(offset, &mut b);
    u32::from_le_bytes(b)
}

#[test]
fn config_reports_scanouts_and_display_events() {
    let modes = (0..16)
        .map(|i| DisplayMode::new(320 + i * 16, 240))
        .collect();
    let mut g = Guest::with_config(GpuConfig {
        scanouts: modes,
        edid: false,
    });
    assert_eq!(config_u32(&g, 8), 16);
    assert_eq!(
        g.dev.device_features() & (1 << VIRTIO_GPU_F_EDID),
        0,
        "edid off"
    );
    assert_eq!(config_u32(&g, 0), 0);
    assert!(g.dev.set_display_mode(3, Some(DisplayMode::new(1280, 720))));
    assert!(
        !g.dev.set_display_mode(3, Some(DisplayMode::new(1280, 720))),
        "unchanged"
    );
    assert!(!g.dev.set_display_mode(16, None), "no such scanout");
    assert_eq!(config_u32(&g, 0), VIRTIO_GPU_EVENT_DISPLAY);
    // The driver re-reads the display info, then acknowledges.
    let resp = g.cmd(hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO).as_bytes());
    let w = u32::from_le_bytes(resp[24 + 3 * 24 + 8..][..4].try_into().unwrap());
    assert_eq!(w, 1280);
    g.dev
        .write_config(4, &VIRTIO_GPU_EVENT_DISPLAY.to_le_bytes());
    assert_eq!(config_u32(&g, 0), 0);
    // Unplugging shows up as a disabled mode.
    assert!(g.dev.set_display_mode(0, None));
    let resp = g.cmd(hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO).as_bytes());
    assert_eq!(&resp[24 + 16..24 + 20], &0u32.to_le_bytes());
    // Writes to read-only fields change nothing.
    g.dev.write_config(8, &[0; 4]);
    assert_eq!(config_u32(&g, 8), 16);
}

#[test]
fn more_than_sixteen_scanouts_are_clamped_and_none_gives_one() {
    let modes = vec![DisplayMode::new(64, 64); 20];
    let g = Guest::with_config(GpuConfig {
        scanouts: modes,
        edid: true,
    });
    assert_eq!(config_u32(&g, 8), 16);
    let g = Guest::with_config(GpuConfig {
        scanouts: vec![],
        edid: true,
    });
    assert_eq!(config_u32(&g, 8), 1);
}

#[derive(Default)]
struct Events(Vec<String>);

struct Recorder(Arc<Mutex<Events>>);

impl DisplayListener for Recorder {
    fn scanout_changed(&mut self, scanout: u32, size: Option<(u32, u32)>) {
        self.0
            .lock()
            .unwrap()
            .0
            .push(format!("changed {scanout} {size:?}"));
    }
    fn scanout_updated(&mut self, scanout: u32, rect: GRect, pixels: &RectView<'_>) {
        assert_eq!((pixels.width, pixels.height), (rect.width, rect.height));
        let last = pixels.row(rect.height - 1).expect("every row is lent");
        assert_eq!(last.len(), rect.width as usize * 4);
        let px = pixels.row(0).map(|row| pixels.format.to_rgba(&row[0..4]));
        self.0
            .lock()
            .unwrap()
            .0
            .push(format!("updated {scanout} {rect:?} {px:?}"));
    }
    fn cursor_changed(&mut self, scanout: u32, image: Option<(&CursorImage, &[u8])>) {
        let first = image.map(|(i, argb)| (i.resource, argb.len(), argb[0..4].to_vec()));
        self.0
            .lock()
            .unwrap()
            .0
            .push(format!("cursor {scanout} {first:?}"));
    }
    fn cursor_moved(&mut self, scanout: u32, x: u32, y: u32) {
        self.0
            .lock()
            .unwrap()
            .0
            .push(format!("moved {scanout} {x} {y}"));
    }
}

#[test]
fn display_listener_sees_scanout_flush_and_cursor() {
    let mut g = Guest::new();
    let events = Arc::new(Mutex::new(Events::default()));
    g.dev
        .set_display_listener(Box::new(Recorder(events.clone())));
    uploaded_resource(&mut g, 1, 16, 16, |_, _| [9, 8, 7]);
    uploaded_resource(&mut g, 2, 64, 64, |_, _| [1, 2, 3]);
    assert_eq!(g.cmd_type(&set_scanout(1, 1, rect(0, 0, 16, 16))), OK);
    assert_eq!(g.cmd_type(&flush(1, rect(2, 3, 4, 4))), OK);
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        1,
        5,
        6,
        2,
        (0, 0),
    ));
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1)), OK);
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 2)), OK);
    let got = events.lock().unwrap().0.clone();
    assert_eq!(
        got,
        vec![
            "changed 1 Some((16, 16))".to_string(),
            "updated 1 Rect { x: 2, y: 3, width: 4, height: 4 } Some([9, 8, 7, 255])".into(),
            "cursor 1 Some((2, 16384, [3, 2, 1, 255]))".into(),
            "moved 1 5 6".into(),
            "changed 1 None".into(),
            "cursor 1 None".into(),
        ]
    );
    // Reset tells the listener once per scanout that showed something.
    uploaded_resource(&mut g, 3, 8, 8, |_, _| [0, 0, 0]);
    assert_eq!(g.cmd_type(&set_scanout(0, 3, rect(0, 0, 8, 8))), OK);
    events.lock().unwrap().0.clear();
    g.dev.reset();
    assert_eq!(events.lock().unwrap().0, vec!["changed 0 None".to_string()]);
}

#[test]
fn listener_updates_carry_the_damage_without_the_cursor() {
    let mut g = Guest::new();
    let events = Arc::new(Mutex::new(Events::default()));
    g.dev
        .set_display_listener(Box::new(Recorder(events.clone())));
    uploaded_resource(&mut g, 1, 32, 32, |x, _| [x as u8, 10, 20]);
    uploaded_resource(&mut g, 2, 64, 64, |_, _| [200, 0, 0]);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(8, 4, 16, 16))), OK);
    // An opaque cursor over the scanout's (3, 2).
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        0,
        3,
        2,
        2,
        (0, 0),
    ));
    events.lock().unwrap().0.clear();
    // Damage in resource coordinates, partly outside the scanout rectangle: the listener gets
    // the clipped rectangle in scanout coordinates, showing the resource, not the cursor.
    assert_eq!(g.cmd_type(&flush(1, rect(11, 6, 21, 2))), OK);
    assert_eq!(
        events.lock().unwrap().0,
        vec!["updated 0 Rect { x: 3, y: 2, width: 13, height: 2 } Some([11, 10, 20, 255])"]
    );
    // The screenshot is still the composed image.
    let shot = g.dev.screenshot(0).unwrap();
    assert_eq!(shot.pixel_rgba(3, 2), Some([200, 0, 0, 255]));
    assert_eq!(shot.pixel_rgba(2, 2), Some([10, 10, 20, 255]));
}

#[test]
fn full_screen_flushes_report_only_the_pixels_that_changed() {
    let mut g = Guest::new();
    let events = Arc::new(Mutex::new(Events::default()));
    g.dev
        .set_display_listener(Box::new(Recorder(events.clone())));
    let (w, h) = (64u32, 48u32);
    let addr = guest_image(&mut g, w, h, |_, _| [5, 5, 5]);
    assert_eq!(
        g.cmd_type(&create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h)),
        OK
    );
    assert_eq!(g.cmd_type(&attach_backing(1, &[(addr.0, w * h * 4)])), OK);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, w, h))), OK);
    let full = rect(0, 0, w, h);
    // The first upload changes everything.
    assert_eq!(g.cmd_type(&transfer_2d(1, full, 0)), OK);
    assert_eq!(g.cmd_type(&flush(1, full)), OK);
    // The guest changes two pixels, then transfers and flushes the whole screen again.
    for (x, y) in [(10u64, 20u64), (13, 22)] {
        let at = vm_memory::GuestAddress(addr.0 + (y * u64::from(w) + x) * 4);
        vm_memory::Bytes::write_slice(g.mem, &[0, 0, 200, 0xff], at).unwrap();
    }
    assert_eq!(g.cmd_type(&transfer_2d(1, full, 0)), OK);
    assert_eq!(g.cmd_type(&flush(1, full)), OK);
    // Nothing changed: a flush sends nothing.
    assert_eq!(g.cmd_type(&transfer_2d(1, full, 0)), OK);
    assert_eq!(g.cmd_type(&flush(1, full)), OK);
    let got = events.lock().unwrap().0.clone();
    assert_eq!(
        got,
        vec![
            "changed 0 Some((64, 48))".to_string(),
            "updated 0 Rect { x: 0, y: 0, width: 64, height: 48 } Some([5, 5, 5, 255])".into(),
            "updated 0 Rect { x: 10, y: 20, width: 4, height: 3 } Some([200, 0, 0, 255])".into(),
        ]
    );
    assert_eq!(
        g.dev.screenshot(0).unwrap().pixel_rgba(13, 22),
        Some([200, 0, 0, 255])
    );
    // A page flip to the same, unchanged buffer on another scanout: the listener's new surface
    // is blank, so the first flush sends all of it even though no pixel changed.
    events.lock().unwrap().0.clear();
    assert_eq!(g.cmd_type(&set_scanout(1, 1, full)), OK);
    assert_eq!(g.cmd_type(&flush(1, full)), OK);
    assert_eq!(g.cmd_type(&flush(1, full)), OK);
    assert_eq!(
        events.lock().unwrap().0,
        vec![
            "changed 1 Some((64, 48))".to_string(),
            "updated 1 Rect { x: 0, y: 0, width: 64, height: 48 } Some([5, 5, 5, 255])".into(),
        ]
    );
}

#[test]
fn reset_drops_everything_and_the_device_serves_again() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    uploaded_resource(&mut g, 1, 8, 8, |_, _| [1, 1, 1]);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, 8, 8))), OK);
    assert!(g.dev.screenshot(0).is_ok());
    g.dev.reset();
    assert_eq!(
        g.dev.device_features() & (1 << VIRTIO_GPU_F_EDID),
        1 << VIRTIO_GPU_F_EDID
    );
    assert!(g.dev.screenshot(0).is_err(), "scanouts disabled");
    let f = g.dev.device_features();
    g.dev.ack_features(f);
    // Same ids are free again in the device and the backend.
    assert_eq!(g.cmd_type(&ctx_create(1, 0, "again")), OK);
    uploaded_resource(&mut g, 1, 8, 8, |_, _| [2, 2, 2]);
}

#[test]
fn malformed_chains_are_refused_and_the_queue_keeps_going() {
    let mut g = Guest::new();
    let req = g.put(hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO).as_bytes());
    let resp = g.alloc(4096);
    let ctrl = QueueKind::Control;
    // Readable after writable.
    let bad_order = g.post_descs(ctrl, &[(resp, 4096, true), (req, 24, false)]);
    // No writable buffer at all, and one too small for a header.
    let no_resp = g.post_descs(ctrl, &[(req, 24, false)]);
    let tiny = g.post_descs(ctrl, &[(req, 24, false), (resp, 8, true)]);
    // A descriptor outside guest memory.
    let outside = g.post_descs(
        ctrl,
        &[(vm_memory::GuestAddress(MEM_SIZE as u64), 24, false)],
    );
    // A response buffer too small for DISPLAY_INFO: the device answers ERR_UNSPEC in it.
    let small = g.post_descs(ctrl, &[(req, 24, false), (resp, 32, true)]);
    // Request split over two readable descriptors still decodes.
    let c2d = create_2d(3, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4);
    let (a, b) = (g.put(&c2d[..10]), g.put(&c2d[10..]));
    let resp2 = g.alloc(64);
    let split = g.post_descs(ctrl, &[(a, 10, false), (b, 30, false), (resp2, 64, true)]);
    g.process(ctrl);
    let used = g.used(ctrl);
    let len_of = |h: u16| used.iter().find(|u| u.0 == u32::from(h)).map(|u| u.1);
    assert_eq!(len_of(bad_order), Some(0));
    assert_eq!(len_of(no_resp), Some(0));
    assert_eq!(len_of(tiny), Some(0));
    assert_eq!(len_of(outside), Some(0));
    assert_eq!(len_of(small), Some(24));
    assert_eq!(resp_type(&g.read(resp, 24)), VIRTIO_GPU_RESP_ERR_UNSPEC);
    assert_eq!(len_of(split), Some(24));
    assert_eq!(resp_type(&g.read(resp2, 24)), OK);
    assert_eq!(used.len(), 6);
}
