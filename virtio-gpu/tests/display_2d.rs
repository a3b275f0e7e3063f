//! 2D commands driven through the control queue as a guest does: responses, used ring, pixels.

mod common;

use common::*;
use virtio_gpu::protocol::*;
use zerocopy::{FromBytes, IntoBytes};

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;
const XRGB: u32 = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM;

#[test]
fn get_display_info_lists_configured_scanouts() {
    let mut g = Guest::new();
    let resp = g.cmd(hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO).as_bytes());
    let (info, _) = RespDisplayInfo::read_from_prefix(&resp).unwrap();
    assert_eq!(info.hdr.type_.get(), VIRTIO_GPU_RESP_OK_DISPLAY_INFO);
    assert_eq!(info.pmodes[0].r.width.get(), 640);
    assert_eq!(info.pmodes[1].r.height.get(), 600);
    assert_eq!(info.pmodes[1].enabled.get(), 1);
    assert_eq!(info.pmodes[2].enabled.get(), 0);
}

#[test]
fn create_2d_checks_ids_formats_and_sizes() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 64, 64)), OK);
    assert_eq!(
        g.cmd_type(&create_2d(1, XRGB, 64, 64)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&create_2d(0, XRGB, 64, 64)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&create_2d(2, 999, 64, 64)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&create_2d(2, XRGB, 0, 64)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&create_2d(2, XRGB, u32::MAX, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "row size overflows"
    );
    assert_eq!(
        g.cmd_type(&create_2d(2, XRGB, 65536, 65536)),
        VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY
    );
    // The device keeps serving after errors.
    assert_eq!(g.cmd_type(&create_2d(2, XRGB, 8, 8)), OK);
}

#[test]
fn unref_frees_and_rejects_unknown() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(5, XRGB, 8, 8)), OK);
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 5)), OK);
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 5)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&create_2d(5, XRGB, 8, 8)),
        OK,
        "id reusable after unref"
    );
}

#[test]
fn transfer_set_scanout_flush_shows_guest_pixels() {
    let mut g = Guest::new();
    uploaded_resource(&mut g, 1, 64, 48, |x, y| [x as u8 * 4, y as u8 * 5, 0x80]);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, 64, 48))), OK);
    assert_eq!(g.cmd_type(&flush(1, rect(0, 0, 64, 48))), OK);
    let frame = g.dev.screenshot(0).unwrap();
    assert_eq!((frame.width, frame.height), (64, 48));
    assert_eq!(frame.pixel_rgba(10, 20), Some([40, 100, 0x80, 255]));
    assert_eq!(frame.pixel_rgba(63, 47), Some([252, 235, 0x80, 255]));
}

#[test]
fn partial_transfer_uses_offset_and_stride() {
    let mut g = Guest::new();
    uploaded_resource(&mut g, 1, 32, 32, |_, _| [0, 0, 0]);
    // Change a 4x4 block at (8, 8) in guest memory, then transfer only that block.
    let addr = guest_image(&mut g, 32, 32, |x, y| {
        if (8..12).contains(&x) && (8..12).contains(&y) {
            [255, 255, 255]
        } else {
            [1, 1, 1]
        }
    });
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1)),
        OK
    );
    assert_eq!(g.cmd_type(&attach_backing(1, &[(addr.0, 32 * 32 * 4)])), OK);
    let offset = (8 * 32 + 8) * 4;
    assert_eq!(g.cmd_type(&transfer_2d(1, rect(8, 8, 4, 4), offset)), OK);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, 32, 32))), OK);
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(f.pixel_rgba(9, 9), Some([255, 255, 255, 255]));
    assert_eq!(
        f.pixel_rgba(7, 9),
        Some([0, 0, 0, 255]),
        "outside the transfer: untouched"
    );
}

#[test]
fn transfer_rejects_bad_rects_offsets_and_missing_backing() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 16, 16)), OK);
    let t = |r, o| transfer_2d(1, r, o);
    assert_eq!(
        g.cmd_type(&t(rect(0, 0, 16, 16), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    let addr = g.alloc(16 * 16 * 4);
    assert_eq!(g.cmd_type(&attach_backing(1, &[(addr.0, 16 * 16 * 4)])), OK);
    assert_eq!(
        g.cmd_type(&t(rect(0, 0, 17, 16), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&t(rect(u32::MAX, 0, 2, 1), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&t(rect(0, 0, 16, 16), 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&t(rect(0, 0, 1, 1), u64::MAX)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&transfer_2d(9, rect(0, 0, 1, 1), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(g.cmd_type(&t(rect(0, 0, 16, 16), 0)), OK);
}

#[test]
fn attach_backing_checks_guest_memory_and_counts() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 16, 16)), OK);
    let outside = (MEM_SIZE as u64) - 16;
    assert_eq!(
        g.cmd_type(&attach_backing(1, &[(outside, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&attach_backing(1, &[(u64::MAX - 8, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    // nr_entries claims more entries than the request carries.
    let mut short = attach_backing(1, &[(HEAP_START, 64)]);
    short[28..32].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(g.cmd_type(&short), VIRTIO_GPU_RESP_ERR_UNSPEC);
    short[28..32].copy_from_slice(&u32::MAX.to_le_bytes());
    assert_eq!(g.cmd_type(&short), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    assert_eq!(
        g.cmd_type(&attach_backing(7, &[(HEAP_START, 64)])),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    // Split across two entries works; attaching twice does not.
    let a = g.alloc(512);
    let b = g.alloc(512);
    assert_eq!(
        g.cmd_type(&attach_backing(1, &[(a.0, 512), (b.0, 512)])),
        OK
    );
    assert_eq!(
        g.cmd_type(&attach_backing(1, &[(a.0, 1024)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn detach_backing_requires_one() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 4, 4)), OK);
    let d = simple(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1);
    assert_eq!(g.cmd_type(&d), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    let a = g.alloc(64);
    assert_eq!(g.cmd_type(&attach_backing(1, &[(a.0, 64)])), OK);
    assert_eq!(g.cmd_type(&d), OK);
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 3)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn set_scanout_checks_scanout_resource_and_rect() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 64, 64)), OK);
    assert_eq!(
        g.cmd_type(&set_scanout(2, 1, rect(0, 0, 64, 64))),
        VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID,
        "only two scanouts configured"
    );
    assert_eq!(
        g.cmd_type(&set_scanout(u32::MAX, 1, rect(0, 0, 64, 64))),
        VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID
    );
    assert_eq!(
        g.cmd_type(&set_scanout(0, 9, rect(0, 0, 64, 64))),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&set_scanout(0, 1, rect(1, 0, 64, 64))),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(g.cmd_type(&set_scanout(1, 1, rect(16, 16, 32, 32))), OK);
    assert_eq!(g.dev.screenshot(1).unwrap().width, 32);
    assert_eq!(
        g.cmd_type(&set_scanout(1, 0, rect(0, 0, 0, 0))),
        OK,
        "disable"
    );
    assert!(g.dev.screenshot(1).is_err());
    assert!(g.dev.screenshot(5).is_err());
}

#[test]
fn flush_presents_only_damage_and_checks_rect() {
    let mut g = Guest::new();
    uploaded_resource(&mut g, 1, 16, 16, |_, _| [10, 10, 10]);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, 16, 16))), OK);
    let addr = guest_image(&mut g, 16, 16, |_, _| [200, 0, 0]);
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING, 1)),
        OK
    );
    assert_eq!(g.cmd_type(&attach_backing(1, &[(addr.0, 16 * 16 * 4)])), OK);
    assert_eq!(g.cmd_type(&transfer_2d(1, rect(0, 0, 16, 16), 0)), OK);
    assert_eq!(
        g.dev.screenshot(0).unwrap().pixel_rgba(1, 1),
        Some([10, 10, 10, 255])
    );
    assert_eq!(g.cmd_type(&flush(1, rect(0, 0, 4, 4))), OK);
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(f.pixel_rgba(1, 1), Some([200, 0, 0, 255]));
    assert_eq!(f.pixel_rgba(8, 8), Some([10, 10, 10, 255]));
    assert_eq!(
        g.cmd_type(&flush(1, rect(0, 0, 17, 1))),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&flush(2, rect(0, 0, 1, 1))),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn get_edid_returns_a_block_per_scanout() {
    let mut g = Guest::new();
    let req = |s: u32| {
        GetEdid {
            hdr: hdr(VIRTIO_GPU_CMD_GET_EDID),
            scanout: s.into(),
            padding: 0.into(),
        }
        .as_bytes()
        .to_vec()
    };
    let resp = g.cmd(&req(1));
    let (edid, _) = RespEdid::read_from_prefix(&resp).unwrap();
    assert_eq!(edid.hdr.type_.get(), VIRTIO_GPU_RESP_OK_EDID);
    assert_eq!(edid.size.get(), 128);
    let e = &edid.edid;
    let w = u32::from(e[56]) | (u32::from(e[58] >> 4) << 8);
    assert_eq!(w, 800);
    assert_eq!(g.cmd_type(&req(16)), VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID);
    // Without the feature negotiated the command is refused.
    g.dev.ack_features(0);
    assert_eq!(g.cmd_type(&req(0)), VIRTIO_GPU_RESP_ERR_UNSPEC);
}

#[test]
fn assign_uuid_is_stable_per_resource() {
    let mut g = Guest::new();
    assert_eq!(g.cmd_type(&create_2d(3, XRGB, 4, 4)), OK);
    let r1 = g.cmd(&simple(VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 3));
    let (u1, _) = RespResourceUuid::read_from_prefix(&r1).unwrap();
    assert_eq!(u1.hdr.type_.get(), VIRTIO_GPU_RESP_OK_RESOURCE_UUID);
    let r2 = g.cmd(&simple(VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 3));
    assert_eq!(
        RespResourceUuid::read_from_prefix(&r2).unwrap().0.uuid,
        u1.uuid
    );
    assert_ne!(u1.uuid, [0; 16]);
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
}

#[test]
fn cursor_is_composed_and_moved() {
    let mut g = Guest::new();
    uploaded_resource(&mut g, 1, 128, 128, |_, _| [0, 0, 255]);
    assert_eq!(g.cmd_type(&set_scanout(0, 1, rect(0, 0, 128, 128))), OK);
    uploaded_resource(&mut g, 2, 64, 64, |_, _| [255, 255, 0]);
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        0,
        40,
        40,
        2,
        (8, 8),
    ));
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(
        f.pixel_rgba(32, 32),
        Some([255, 255, 0, 255]),
        "hotspot offsets the cursor"
    );
    assert_eq!(f.pixel_rgba(31, 32), Some([0, 0, 255, 255]));
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_MOVE_CURSOR,
        0,
        100,
        100,
        0,
        (0, 0),
    ));
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(f.pixel_rgba(32, 32), Some([0, 0, 255, 255]));
    assert_eq!(f.pixel_rgba(100, 100), Some([255, 255, 0, 255]));
    // Bad scanout and unknown resource: ignored with a warning, device keeps going.
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        9,
        0,
        0,
        2,
        (0, 0),
    ));
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        0,
        0,
        0,
        77,
        (0, 0),
    ));
    g.cursor(&[1, 2, 3]);
    g.cursor(&update_cursor(
        VIRTIO_GPU_CMD_UPDATE_CURSOR,
        0,
        0,
        0,
        0,
        (0, 0),
    ));
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(f.pixel_rgba(100, 100), Some([0, 0, 255, 255]), "hidden");
}

#[test]
fn unknown_and_short_commands_get_err_unspec() {
    let mut g = Guest::new();
    assert_eq!(
        g.cmd_type(hdr(0x0777).as_bytes()),
        VIRTIO_GPU_RESP_ERR_UNSPEC
    );
    let short = create_2d(1, XRGB, 4, 4);
    assert_eq!(g.cmd_type(&short[..30]), VIRTIO_GPU_RESP_ERR_UNSPEC);
    assert_eq!(g.cmd_type(&short[..10]), VIRTIO_GPU_RESP_ERR_UNSPEC);
    assert_eq!(
        g.cmd_type(&update_cursor(
            VIRTIO_GPU_CMD_MOVE_CURSOR,
            0,
            0,
            0,
            0,
            (0, 0)
        )),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "cursor command on the control queue"
    );
}

/// `read_scanout_rect` lends the flushed primary plane, without the cursor, on every backend.
#[test]
fn every_backend_lends_the_damaged_rect_without_the_cursor() {
    use gpu_interface::display::RectView;
    use gpu_interface::{CursorImage, PixelFormat, Rect, Resource2dDesc};
    use virtio_gpu::backend::{create_backend, BackendKind};

    let pixel = |x: u32, y: u32| [x as u8 * 10, y as u8 * 10, 77, 255];
    for kind in [
        BackendKind::Software,
        BackendKind::Vulkan,
        BackendKind::Rutabaga,
    ] {
        let mut b = match create_backend(kind) {
            Ok(b) => b,
            Err(e) => {
                println!("skipped {kind:?}: backend unavailable: {e}");
                continue;
            }
        };
        let format = PixelFormat::XRGB8888;
        for (id, size) in [(1, 16), (2, 64)] {
            let desc = Resource2dDesc {
                width: size,
                height: size,
                format,
            };
            b.create_resource_2d(id, desc).unwrap();
            let white = id == 2;
            let mut source = |row: u32, dst: &mut [u8]| {
                for (x, px) in dst.chunks_exact_mut(4).enumerate() {
                    let rgba = if white {
                        [255; 4]
                    } else {
                        pixel(x as u32, row)
                    };
                    format.from_rgba(rgba, px);
                }
                Ok(())
            };
            b.write_rect(id, Rect::full(size, size), &mut source)
                .unwrap();
        }
        b.set_scanout(0, Some(1), Rect::new(2, 2, 10, 10)).unwrap();
        let cursor = CursorImage {
            resource: 2,
            hot_x: 0,
            hot_y: 0,
        };
        b.set_cursor(0, Some(cursor)).unwrap();
        b.move_cursor(0, 0, 0).unwrap();
        b.flush(1, Rect::full(16, 16)).unwrap();
        let mut seen = Vec::new();
        let mut take = |v: &RectView<'_>| {
            assert_eq!((v.width, v.height), (4, 3), "{kind:?}");
            for y in 0..v.height {
                let row = v.row(y).unwrap();
                seen.extend(row.chunks_exact(4).map(|px| v.format.to_rgba(px)));
            }
        };
        b.read_scanout_rect(0, Rect::new(1, 1, 4, 3), &mut take)
            .unwrap();
        let want: Vec<[u8; 4]> = (0..3)
            .flat_map(|y| (0..4).map(move |x| pixel(3 + x, 3 + y)))
            .collect();
        assert_eq!(seen, want, "{kind:?}: primary plane only");
        // The composed read-back does show the cursor there.
        let shot = b.read_scanout(0).unwrap();
        assert_eq!(shot.pixel_rgba(1, 1), Some([255; 4]), "{kind:?}");
        // Software and Vulkan report only what changed since the last flush; others all damage.
        let tracks = kind != BackendKind::Rutabaga;
        let again = b.flush_changed(1, Rect::full(16, 16)).unwrap();
        assert_eq!(again.is_none(), tracks, "{kind:?}: nothing changed");
        let mut one = |_: u32, dst: &mut [u8]| {
            format.from_rgba([1, 2, 3, 255], dst);
            Ok(())
        };
        b.write_rect(1, Rect::new(5, 6, 1, 1), &mut one).unwrap();
        let box_ = b.flush_changed(1, Rect::full(16, 16)).unwrap();
        let want = if tracks {
            Rect::new(5, 6, 1, 1)
        } else {
            Rect::full(16, 16)
        };
        assert_eq!(box_, Some(want), "{kind:?}");
        b.move_cursor(0, 100, 100).unwrap();
        let shot = b.read_scanout(0).unwrap();
        assert_eq!(shot.pixel_rgba(3, 4), Some([1, 2, 3, 255]), "{kind:?}");
        let mut never = |_: &RectView<'_>| panic!("{kind:?}: lent a rectangle outside");
        assert!(b
            .read_scanout_rect(0, Rect::new(8, 0, 3, 1), &mut never)
            .is_err());
        assert!(b
            .read_scanout_rect(1, Rect::new(0, 0, 1, 1), &mut never)
            .is_err());
    }
}

#[test]
fn a_slice_quota_refuses_resources_past_it_and_unref_gives_memory_back() {
    let mut g = Guest::new();
    let quota = gpu_interface::MemoryQuota::new(64 * 64 * 4 * 2);
    g.dev.set_slice_limits(gpu_interface::SliceLimits {
        quota: Some(quota.clone()),
        gate: None,
    });
    assert_eq!(g.cmd_type(&create_2d(1, XRGB, 64, 64)), OK);
    assert_eq!(g.cmd_type(&create_2d(2, XRGB, 64, 64)), OK);
    assert_eq!(quota.used(), 64 * 64 * 4 * 2);
    assert_eq!(
        g.cmd_type(&create_2d(3, XRGB, 1, 1)),
        VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY
    );
    // The refused resource does not exist; an unref frees its part of the quota.
    assert_eq!(
        g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 3)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 1)), OK);
    assert_eq!(quota.used(), 64 * 64 * 4);
    assert_eq!(g.cmd_type(&create_2d(3, XRGB, 32, 32)), OK);
    // A device reset destroys every resource: the quota is whole again.
    g.dev.reset();
    assert_eq!(quota.used(), 0);
}

/// The Vulkan backend's own GPU batches (here: clearing a new 3D resource) pass a slice's
/// submit gate, one turn each, charged the time until their fence signalled.
#[test]
fn the_vulkan_backend_submits_through_a_slice_gate() {
    use std::sync::{Arc, Mutex};
    use virtio_gpu::backend::{create_backend, BackendKind};

    #[derive(Default)]
    struct Recording(Mutex<Vec<(&'static str, u64)>>);
    impl gpu_interface::SubmitGate for Recording {
        fn enter(&self) -> gpu_interface::GateTicket {
            self.0.lock().unwrap().push(("enter", 0));
            gpu_interface::GateTicket(7)
        }
        fn leave(&self, ticket: gpu_interface::GateTicket, device_ns: u64) {
            assert_eq!(ticket.0, 7);
            self.0.lock().unwrap().push(("leave", device_ns));
        }
    }
    let mut b = match create_backend(BackendKind::Vulkan) {
        Ok(b) => b,
        Err(e) => {
            println!("skipped: the Vulkan backend is unavailable: {e}");
            return;
        }
    };
    let gate = Arc::new(Recording::default());
    b.set_slice_limits(gpu_interface::SliceLimits {
        quota: None,
        gate: Some(gate.clone()),
    });
    let desc = gpu_interface::Resource3dDesc {
        target: 2,
        format: 1,
        bind: 0,
        width: 64,
        height: 64,
        depth: 1,
        array_size: 1,
        last_level: 0,
        nr_samples: 0,
        flags: 0,
    };
    b.create_resource_3d(0, 5, desc).unwrap();
    let log = gate.0.lock().unwrap().clone();
    assert!(!log.is_empty(), "the clear went through the gate");
    assert!(
        log.chunks(2)
            .all(|p| p[0].0 == "enter" && p[1].0 == "leave" && p[1].1 > 0),
        "{log:?}"
    );
}
