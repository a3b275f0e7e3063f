//! Blobs: guest-memory blobs on scanouts, HOST3D blobs mapped through the transport.

mod common;

use common::*;
use virtio_gpu::backend::software::stream::Command;
use virtio_gpu::protocol::*;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;

fn create_blob(
    ctx: u32,
    id: u32,
    mem: u32,
    flags: u32,
    size: u64,
    entries: &[(u64, u32)],
) -> Vec<u8> {
    let mut c = ResourceCreateBlob::new_zeroed();
    c.hdr = ctx_hdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, ctx);
    c.resource_id = id.into();
    c.blob_mem = mem.into();
    c.blob_flags = flags.into();
    c.nr_entries = (entries.len() as u32).into();
    c.size = size.into();
    let mut v = c.as_bytes().to_vec();
    for &(addr, len) in entries {
        v.extend_from_slice(
            MemEntry {
                addr: addr.into(),
                length: len.into(),
                padding: 0.into(),
            }
            .as_bytes(),
        );
    }
    v
}

fn set_scanout_blob(scanout: u32, id: u32, w: u32, h: u32, stride: u32, offset: u32) -> Vec<u8> {
    let mut s = SetScanoutBlob::new_zeroed();
    s.hdr = hdr(VIRTIO_GPU_CMD_SET_SCANOUT_BLOB);
    s.r = rect(0, 0, w, h);
    s.scanout_id = scanout.into();
    s.resource_id = id.into();
    s.width = w.into();
    s.height = h.into();
    s.format = VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM.into();
    s.strides[0] = stride.into();
    s.offsets[0] = offset.into();
    s.as_bytes().to_vec()
}

#[test]
fn guest_blob_scanout_shows_guest_pages_on_flush() {
    let mut g = Guest::new();
    let (w, h) = (32u32, 16u32);
    let addr = guest_image(
        &mut g,
        w,
        h,
        |x, _| if x < 16 { [255, 0, 0] } else { [0, 255, 0] },
    );
    let size = u64::from(w * h * 4);
    let c = create_blob(
        0,
        7,
        VIRTIO_GPU_BLOB_MEM_GUEST,
        VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE,
        size,
        &[
            (addr.0, (size / 2) as u32),
            (addr.0 + size / 2, (size / 2) as u32),
        ],
    );
    assert_eq!(g.cmd_type(&c), OK);
    assert_eq!(g.cmd_type(&set_scanout_blob(1, 7, w, h, w * 4, 0)), OK);
    let f = g.dev.screenshot(1).unwrap();
    assert_eq!(f.pixel_rgba(3, 3), Some([255, 0, 0, 255]));
    assert_eq!(f.pixel_rgba(20, 15), Some([0, 255, 0, 255]));
    // The guest draws straight into the blob; a flush shows it.
    g.mem
        .write_slice(
            &[0xff, 0, 0, 0xff],
            GuestAddress(addr.0 + (5 * w as u64 + 3) * 4),
        )
        .unwrap();
    assert_eq!(
        g.dev.screenshot(1).unwrap().pixel_rgba(3, 5),
        Some([255, 0, 0, 255])
    );
    assert_eq!(g.cmd_type(&flush(7, rect(0, 0, w, h))), OK);
    assert_eq!(
        g.dev.screenshot(1).unwrap().pixel_rgba(3, 5),
        Some([0, 0, 255, 255])
    );
    // Layouts that reach outside the blob, bad resources, bad scanouts.
    assert_eq!(
        g.cmd_type(&set_scanout_blob(1, 7, w, h, w * 4, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&set_scanout_blob(1, 7, w, h, w * 2, 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&set_scanout_blob(1, 8, w, h, w * 4, 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&set_scanout_blob(16, 7, w, h, w * 4, 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID
    );
    let huge = set_scanout_blob(1, 7, 1, u32::MAX, u32::MAX, u32::MAX);
    assert_eq!(
        g.cmd_type(&huge),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "overflow"
    );
    // Unref takes it off the scanout.
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 7)), OK);
    assert!(g.dev.screenshot(1).is_err());
}

#[test]
fn create_blob_rejects_hostile_descriptions() {
    let mut g = Guest::new();
    let a = g.alloc(4096);
    let guest = VIRTIO_GPU_BLOB_MEM_GUEST;
    assert_eq!(
        g.cmd_type(&create_blob(0, 1, guest, 0, 8192, &[(a.0, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "size > pages"
    );
    assert_eq!(
        g.cmd_type(&create_blob(0, 1, guest, 0x80, 4096, &[(a.0, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "flags"
    );
    assert_eq!(
        g.cmd_type(&create_blob(0, 1, 9, 0, 4096, &[(a.0, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "blob_mem"
    );
    assert_eq!(
        g.cmd_type(&create_blob(0, 1, guest, 0, 0, &[])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "size 0"
    );
    assert_eq!(
        g.cmd_type(&create_blob(
            0,
            1,
            guest,
            0,
            4096,
            &[(MEM_SIZE as u64, 4096)]
        )),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "outside memory"
    );
    assert_eq!(
        g.cmd_type(&create_blob(0, 0, guest, 0, 4096, &[(a.0, 4096)])),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&create_blob(5, 1, VIRTIO_GPU_BLOB_MEM_HOST3D, 1, 4096, &[])),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    g.dev.ack_features(0);
    assert_eq!(
        g.cmd_type(&create_blob(0, 1, guest, 0, 4096, &[(a.0, 4096)])),
        VIRTIO_GPU_RESP_ERR_UNSPEC,
        "feature not negotiated"
    );
}

#[test]
fn host3d_blob_is_filled_by_a_context_and_mapped_through_the_transport() {
    use std::os::unix::fs::FileExt;
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    let host = VIRTIO_GPU_BLOB_MEM_HOST3D;
    let flags = VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE;
    assert_eq!(g.cmd_type(&create_blob(1, 4, host, flags, 8192, &[])), OK);
    assert_eq!(
        g.cmd_type(&map_blob(4, 0)),
        VIRTIO_GPU_RESP_ERR_UNSPEC,
        "no region yet"
    );
    let maps = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    g.dev.set_shm_mapper(Box::new(RecordingMapper {
        size: 1 << 20,
        maps: maps.clone(),
    }));
    let fill = Command::FillBlob {
        resource: 4,
        offset: 100,
        len: 8,
        value: 0x5a,
    };
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1), &[fill])),
        OK
    );
    assert_eq!(
        g.cmd_type(&map_blob(4, (1 << 20) - 4096)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "past region"
    );
    assert_eq!(
        g.cmd_type(&map_blob(4, u64::MAX - 10)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    let resp = g.cmd(&map_blob(4, 0x10000));
    let (info, _) = RespMapInfo::read_from_prefix(&resp).unwrap();
    assert_eq!(info.hdr.type_.get(), VIRTIO_GPU_RESP_OK_MAP_INFO);
    assert_eq!(
        info.map_info.get() & VIRTIO_GPU_MAP_CACHE_MASK,
        VIRTIO_GPU_MAP_CACHE_CACHED
    );
    {
        let maps = maps.lock().unwrap();
        let (offset, m) = &maps[0];
        assert_eq!((*offset, m.size), (0x10000, 8192));
        let file = std::fs::File::from(m.fd.try_clone().unwrap());
        let mut buf = [0u8; 9];
        file.read_exact_at(&mut buf, 100).unwrap();
        assert_eq!(buf, [0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0x5a, 0]);
    }
    assert_eq!(
        g.cmd_type(&map_blob(4, 0x20000)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "already mapped"
    );
    assert_eq!(g.cmd_type(&create_blob(1, 5, host, flags, 8192, &[])), OK);
    assert_eq!(
        g.cmd_type(&map_blob(5, 0x11000)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "overlap"
    );
    assert_eq!(g.cmd_type(&create_blob(1, 6, host, 0, 4096, &[])), OK);
    assert_eq!(
        g.cmd_type(&map_blob(6, 0x40000)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "not mappable"
    );
    let unmap = |id| simple(VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB, id);
    assert_eq!(g.cmd_type(&unmap(4)), OK);
    assert!(maps.lock().unwrap().is_empty());
    assert_eq!(g.cmd_type(&unmap(4)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    assert_eq!(
        g.cmd_type(&unmap(99)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    // Unref of a mapped blob unmaps it.
    assert_eq!(
        g.cmd_type(&map_blob(5, 0x11000)),
        VIRTIO_GPU_RESP_OK_MAP_INFO
    );
    assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, 5)), OK);
    assert!(maps.lock().unwrap().is_empty());
}

#[test]
fn transfer_to_host_2d_on_guest_blob_succeeds_and_checks_bounds() {
    // Linux 6.12 sends TRANSFER_TO_HOST_2D for dumb buffers backed by guest blobs, with the
    // offset of the rectangle's first pixel (y * pitch + x * 4).
    let mut g = Guest::new();
    let (w, h) = (32u32, 16u32);
    let addr = guest_image(&mut g, w, h, |_, _| [0, 0, 255]);
    let size = u64::from(w * h * 4);
    let c = create_blob(
        0,
        9,
        VIRTIO_GPU_BLOB_MEM_GUEST,
        VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE,
        size,
        &[(addr.0, size as u32)],
    );
    assert_eq!(g.cmd_type(&c), OK);
    // Not on a scanout yet: accepted, nothing to refresh.
    assert_eq!(g.cmd_type(&transfer_2d(9, rect(0, 0, w, h), 0)), OK);
    assert_eq!(g.cmd_type(&set_scanout_blob(0, 9, w, h, w * 4, 0)), OK);
    // The guest draws, transfers the damaged rectangle, then flushes it.
    let (x, y) = (4u64, 6u64);
    let offset = (y * u64::from(w) + x) * 4;
    g.mem
        .write_slice(&[0, 0xff, 0, 0xff], GuestAddress(addr.0 + offset))
        .unwrap();
    assert_eq!(g.cmd_type(&transfer_2d(9, rect(4, 6, 2, 2), offset)), OK);
    assert_eq!(g.cmd_type(&flush(9, rect(4, 6, 2, 2))), OK);
    let f = g.dev.screenshot(0).unwrap();
    assert_eq!(f.pixel_rgba(4, 6), Some([0, 255, 0, 255]));
    assert_eq!(f.pixel_rgba(5, 6), Some([0, 0, 255, 255]));
    // Rectangles and offsets that reach outside the blob are still refused.
    let bad = [
        transfer_2d(9, rect(0, 0, w + 1, h), 0),
        transfer_2d(9, rect(0, h - 1, w, 2), 0),
        transfer_2d(9, rect(0, 0, w, h), 4),
        transfer_2d(9, rect(0, 0, 1, 1), size + 1),
        transfer_2d(9, rect(u32::MAX, 0, 2, 1), 0),
        transfer_2d(9, rect(0, 0, 1, 1), u64::MAX),
    ];
    for cmd in &bad {
        assert_eq!(g.cmd_type(cmd), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    }
    assert_eq!(
        g.cmd_type(&transfer_2d(10, rect(0, 0, 1, 1), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
}
