//! Capset VENUS on the Vulkan backend, driven as the guest kernel and Mesa's venus driver drive
//! it: capset queries, CONTEXT_INIT contexts, HOST3D blobs (blob id 0 and device memory) mapped
//! through the host-visible region, venus streams in SUBMIT_3D with replies in a mapped blob,
//! fences per ring, a hostile stream that ends only its own context, and teardown.

mod common;

use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use venus::driver_stream::{device_with_queue_on_ring_1, Stream, DEVICE};
use virtio_gpu::backend::{create_backend, BackendKind};
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, QueueKind};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;
const CAPSET_VENUS: u32 = 4;
/// vkSetReplyCommandStreamMESA, vkEnumerateInstanceVersion, vkAllocateMemory.
const SET_REPLY: u32 = 178;
const ENUMERATE_INSTANCE_VERSION: u32 = 137;
const ALLOCATE_MEMORY: u32 = 21;

type Maps = Arc<Mutex<Vec<(u64, gpu_interface::BlobMapping)>>>;

/// A guest on the Vulkan backend with a 16 MiB host-visible region, or None (the test says it
/// skipped) where the host has no Vulkan.
fn vulkan_guest(test: &str) -> Option<(Guest, Maps)> {
    let backend = match create_backend(BackendKind::Vulkan) {
        Ok(b) => b,
        Err(e) => {
            println!("SKIPPED {test}: no Vulkan device: {e}");
            return None;
        }
    };
    let config = GpuConfig {
        scanouts: vec![gpu_interface::DisplayMode::new(64, 64)],
        edid: false,
    };
    let mut g = Guest::with_backend(backend, config);
    let maps = Maps::default();
    g.dev.set_shm_mapper(Box::new(RecordingMapper {
        size: 16 << 20,
        maps: maps.clone(),
    }));
    Some((g, maps))
}

fn host3d_blob(ctx: u32, id: u32, size: u64, blob_id: u64) -> Vec<u8> {
    let mut c = ResourceCreateBlob::new_zeroed();
    c.hdr = ctx_hdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB, ctx);
    c.resource_id = id.into();
    c.blob_mem = VIRTIO_GPU_BLOB_MEM_HOST3D.into();
    c.blob_flags = VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE.into();
    c.size = size.into();
    c.blob_id = blob_id.into();
    c.as_bytes().to_vec()
}

fn ctx_resource_attach(ctx: u32, id: u32) -> Vec<u8> {
    CtxResource {
        hdr: ctx_hdr(VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, ctx),
        resource_id: id.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

/// Replies go to blob `reply`; then vkEnumerateInstanceVersion asks for one.
fn ask_instance_version(reply: u32) -> Vec<u8> {
    let mut s = Stream::default();
    s.command(SET_REPLY, false)
        .some()
        .u32(reply)
        .u64(0)
        .u64(4096);
    s.command(ENUMERATE_INSTANCE_VERSION, true).some();
    s.0
}

/// The guest's view of mapped blob memory at region offset `at`.
fn read_mapped(maps: &Maps, at: u64, offset: u64, len: usize) -> Vec<u8> {
    let maps = maps.lock().unwrap();
    let (_, m) = maps.iter().find(|(o, _)| *o == at).expect("blob mapped");
    let file = std::fs::File::from(m.fd.try_clone().unwrap());
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, m.offset + offset).unwrap();
    buf
}

/// Creates venus context `ctx` with a mapped 4 KiB reply blob `reply` at region offset `at`,
/// and checks that a command's reply lands there.
fn venus_context_with_reply(g: &mut Guest, maps: &Maps, ctx: u32, reply: u32, at: u64) {
    assert_eq!(g.cmd_type(&ctx_create(ctx, CAPSET_VENUS, "venus")), OK);
    assert_eq!(g.cmd_type(&host3d_blob(ctx, reply, 4096, 0)), OK);
    let resp = g.cmd(&map_blob(reply, at));
    let (info, _) = RespMapInfo::read_from_prefix(&resp).unwrap();
    assert_eq!(info.hdr.type_.get(), VIRTIO_GPU_RESP_OK_MAP_INFO);
    assert_eq!(
        info.map_info.get() & VIRTIO_GPU_MAP_CACHE_MASK,
        VIRTIO_GPU_MAP_CACHE_CACHED
    );
    let h = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, ctx);
    assert_eq!(
        g.cmd_type(&submit_bytes(h, &ask_instance_version(reply))),
        OK
    );
    let r = read_mapped(maps, at, 0, 20);
    let word = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().unwrap());
    assert_eq!(
        word(0),
        ENUMERATE_INSTANCE_VERSION,
        "the reply's command type"
    );
    assert_eq!(word(4), 0, "VK_SUCCESS");
    assert!(
        word(16) >= (1 << 22) | (1 << 12),
        "apiVersion >= 1.1: {:#x}",
        word(16)
    );
}

#[test]
fn capset_venus_is_offered_with_the_renderer_capset() {
    let Some((mut g, _)) = vulkan_guest("capset venus") else {
        return;
    };
    let mut buf = [0u8; 4];
    g.dev.read_config(12, &mut buf);
    assert_eq!(u32::from_le_bytes(buf), 2, "num_capsets: VG and venus");
    assert_ne!(
        g.dev.device_features() & (1 << VIRTIO_GPU_F_VIRGL),
        0,
        "venus contexts need the guest kernel's 3D mode"
    );
    let info = GetCapsetInfo {
        hdr: hdr(VIRTIO_GPU_CMD_GET_CAPSET_INFO),
        capset_index: 1.into(),
        padding: 0.into(),
    };
    let resp = g.cmd(info.as_bytes());
    let (info, _) = RespCapsetInfo::read_from_prefix(&resp).unwrap();
    assert_eq!(info.capset_id.get(), CAPSET_VENUS);
    assert_eq!(info.capset_max_version.get(), 0);
    let size = info.capset_max_size.get();
    assert_eq!(size, 40 * 4, "struct virgl_renderer_capset_venus");
    let get = |version: u32| GetCapset {
        hdr: hdr(VIRTIO_GPU_CMD_GET_CAPSET),
        capset_id: CAPSET_VENUS.into(),
        capset_version: version.into(),
    };
    let resp = g.cmd(get(0).as_bytes());
    assert_eq!(resp_type(&resp), VIRTIO_GPU_RESP_OK_CAPSET);
    let caps = &resp[std::mem::size_of::<CtrlHeader>()..];
    assert_eq!(caps.len(), size as usize);
    let word = |i: usize| u32::from_le_bytes(caps[i * 4..i * 4 + 4].try_into().unwrap());
    assert_eq!(word(0), 1, "wire format version");
    assert_eq!(word(4), 1, "supports blob id 0");
    assert_eq!(word(5) & 1, 1, "the extension mask is valid");
    assert_eq!(word(38), 1, "supports multiple timelines");
    assert_eq!(
        g.cmd_type(get(1).as_bytes()),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
}

#[test]
fn venus_streams_run_with_replies_in_mapped_blobs_and_fences_per_ring() {
    let Some((mut g, maps)) = vulkan_guest("venus streams") else {
        return;
    };
    venus_context_with_reply(&mut g, &maps, 1, 10, 0);

    // An instance, a device and a queue bound to ring 1; then a fence on ring 1 signals when
    // the GPU is done, one on ring 0 at once (the stream ran synchronously).
    let h = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1);
    assert_eq!(
        g.cmd_type(&submit_bytes(h, &device_with_queue_on_ring_1().0)),
        OK
    );
    let mut heads = Vec::new();
    for (fence, ring) in [(1u64, 1u8), (2, 0), (3, 1)] {
        let p = g.post(
            QueueKind::Control,
            &submit_bytes(fenced(h, fence, Some(ring)), &[]),
            RESP_LEN,
        );
        heads.push(u32::from(p.head));
    }
    g.process(QueueKind::Control);
    let mut done: Vec<u32> = g.used(QueueKind::Control).iter().map(|u| u.0).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    while done.len() < heads.len() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
        g.process_fences();
        done.extend(g.used(QueueKind::Control).iter().map(|u| u.0));
    }
    done.sort();
    heads.sort();
    assert_eq!(done, heads, "every fenced submit completed");

    // Host-visible device memory becomes a blob under its memory id.
    let mut s = Stream::default();
    s.command(ALLOCATE_MEMORY, false).u64(DEVICE).some();
    s.u32(5).none().u64(64 << 10).u32(0); // VkMemoryAllocateInfo: 64 KiB of type 0
    s.none().some().u64(0x600);
    assert_eq!(g.cmd_type(&submit_bytes(h, &s.0)), OK);
    assert_eq!(g.cmd_type(&host3d_blob(1, 11, 64 << 10, 0x600)), OK);
    assert_eq!(
        g.cmd_type(&map_blob(11, 1 << 20)),
        VIRTIO_GPU_RESP_OK_MAP_INFO
    );
    assert_eq!(
        maps.lock()
            .unwrap()
            .iter()
            .find(|m| m.0 == 1 << 20)
            .unwrap()
            .1
            .size,
        64 << 10
    );
    assert_eq!(
        g.cmd_type(&host3d_blob(1, 12, 128 << 10, 0x600)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "bigger than its memory"
    );
    assert_eq!(
        g.cmd_type(&host3d_blob(1, 12, 4096, 0x999)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "no such memory"
    );
    assert_eq!(
        g.cmd_type(&host3d_blob(1, 10, 4096, 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
        "id in use"
    );

    // Teardown: the context goes, then its blobs, unmapped on unref.
    assert_eq!(
        g.cmd_type(ctx_hdr(VIRTIO_GPU_CMD_CTX_DESTROY, 1).as_bytes()),
        OK
    );
    for id in [10, 11] {
        assert_eq!(g.cmd_type(&simple(VIRTIO_GPU_CMD_RESOURCE_UNREF, id)), OK);
    }
    assert!(maps.lock().unwrap().is_empty(), "every blob unmapped");
}

#[test]
fn a_hostile_stream_ends_its_context_only() {
    let Some((mut g, maps)) = vulkan_guest("hostile venus stream") else {
        return;
    };
    venus_context_with_reply(&mut g, &maps, 1, 10, 0);
    venus_context_with_reply(&mut g, &maps, 2, 20, 0x10000);
    // Display work beside the contexts.
    uploaded_resource(&mut g, 30, 64, 64, |x, y| [x as u8, y as u8, 7]);
    assert_eq!(g.cmd_type(&set_scanout(0, 30, rect(0, 0, 64, 64))), OK);

    let h1 = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1);
    let mut no_resource = Stream::default();
    no_resource
        .command(SET_REPLY, false)
        .some()
        .u32(999)
        .u64(0)
        .u64(8);
    let hostile: [&[u8]; 3] = [
        &[0xff; 64],                          // unknown command types
        &[137, 0, 0, 0, 1, 0, 0, 0, 9, 9, 9], // a truncated pointer
        &no_resource.0,                       // replies into a resource that does not exist
    ];
    // Each on a context of its own: the stream is refused and that context is dead after it.
    for (ctx, stream) in (3..).zip(hostile) {
        assert_eq!(g.cmd_type(&ctx_create(ctx, CAPSET_VENUS, "hostile")), OK);
        let h = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, ctx);
        let ask = ask_instance_version(10);
        assert_eq!(g.cmd_type(&ctx_resource_attach(ctx, 10)), OK);
        assert_eq!(
            g.cmd_type(&submit_bytes(h, &ask)),
            OK,
            "context {ctx} works"
        );
        assert_eq!(
            g.cmd_type(&submit_bytes(h, stream)),
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
        );
        assert_eq!(
            g.cmd_type(&submit_bytes(h, &ask)),
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
            "context {ctx} is dead"
        );
    }
    assert_eq!(g.cmd_type(&submit_bytes(h1, &ask_instance_version(10))), OK);
    // Context 2 and the display go on.
    let h2 = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 2);
    assert_eq!(g.cmd_type(&submit_bytes(h2, &ask_instance_version(20))), OK);
    assert_eq!(g.cmd_type(&flush(30, rect(0, 0, 64, 64))), OK);
    let frame = g.dev.screenshot(0).expect("scanout 0 shows resource 30");
    assert_eq!(
        frame.pixel_rgba(5, 9).map(|p| p[..3].to_vec()),
        Some(vec![5, 9, 7])
    );
    // The dead context can still be destroyed, and a new one takes its id.
    assert_eq!(
        g.cmd_type(ctx_hdr(VIRTIO_GPU_CMD_CTX_DESTROY, 1).as_bytes()),
        OK
    );
    assert_eq!(g.cmd_type(&ctx_create(1, CAPSET_VENUS, "again")), OK);
}
