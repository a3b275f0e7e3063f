//! Contexts, capsets, 3D resources and SUBMIT_3D, driven through the control queue.

mod common;

use common::*;
use gpu_interface::Rect as GRect;
use virtio_gpu::backend::software::stream::{Command, CAPSET_ID};
use virtio_gpu::protocol::*;
use vm_memory::{Bytes, GuestAddress};
use zerocopy::{FromBytes, FromZeros, IntoBytes};

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;

fn ctx_resource(type_: u32, ctx: u32, id: u32) -> Vec<u8> {
    CtxResource {
        hdr: ctx_hdr(type_, ctx),
        resource_id: id.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

fn create_3d(ctx: u32, id: u32, target: u32, w: u32, h: u32) -> Vec<u8> {
    let mut c = ResourceCreate3d::new_zeroed();
    c.hdr = ctx_hdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D, ctx);
    c.resource_id = id.into();
    c.target = target.into();
    c.format = 1.into();
    c.width = w.into();
    c.height = h.into();
    c.depth = 1.into();
    c.array_size = 1.into();
    c.as_bytes().to_vec()
}

fn transfer_3d(type_: u32, ctx: u32, id: u32, b: (u32, u32, u32, u32), stride: u32) -> Vec<u8> {
    let mut t = TransferHost3d::new_zeroed();
    t.hdr = ctx_hdr(type_, ctx);
    t.box_ = Box3d {
        x: b.0.into(),
        y: b.1.into(),
        z: 0.into(),
        w: b.2.into(),
        h: b.3.into(),
        d: 1.into(),
    };
    t.resource_id = id.into();
    t.stride = stride.into();
    t.as_bytes().to_vec()
}

#[test]
fn capset_info_and_capset() {
    let mut g = Guest::new();
    let mut buf = [0u8; 4];
    g.dev.read_config(12, &mut buf);
    assert_eq!(u32::from_le_bytes(buf), 1, "num_capsets from the backend");
    let info = |i: u32| {
        GetCapsetInfo {
            hdr: hdr(VIRTIO_GPU_CMD_GET_CAPSET_INFO),
            capset_index: i.into(),
            padding: 0.into(),
        }
        .as_bytes()
        .to_vec()
    };
    let resp = g.cmd(&info(0));
    let (ci, _) = RespCapsetInfo::read_from_prefix(&resp).unwrap();
    assert_eq!(ci.hdr.type_.get(), VIRTIO_GPU_RESP_OK_CAPSET_INFO);
    assert_eq!(ci.capset_id.get(), CAPSET_ID);
    assert_eq!(g.cmd_type(&info(1)), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    let get = |id: u32, v: u32| {
        GetCapset {
            hdr: hdr(VIRTIO_GPU_CMD_GET_CAPSET),
            capset_id: id.into(),
            capset_version: v.into(),
        }
        .as_bytes()
        .to_vec()
    };
    let resp = g.cmd(&get(CAPSET_ID, 1));
    assert_eq!(resp_type(&resp), VIRTIO_GPU_RESP_OK_CAPSET);
    assert_eq!(&resp[24..28], b"VGSW");
    assert_eq!(resp.len(), 24 + 16);
    assert_eq!(
        g.cmd_type(&get(CAPSET_ID, 2)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(
        g.cmd_type(&get(VIRTIO_GPU_CAPSET_VIRGL, 1)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    // No virgl capset: VIRGL is not offered; the others are.
    let f = g.dev.device_features();
    assert_eq!(f & (1 << VIRTIO_GPU_F_VIRGL), 0);
    for bit in [
        VIRTIO_GPU_F_EDID,
        VIRTIO_GPU_F_RESOURCE_UUID,
        VIRTIO_GPU_F_RESOURCE_BLOB,
        VIRTIO_GPU_F_CONTEXT_INIT,
    ] {
        assert_ne!(f & (1 << bit), 0, "feature bit {bit}");
    }
}

#[test]
fn ctx_create_and_destroy_check_ids() {
    let mut g = Guest::new();
    assert_eq!(
        g.cmd_type(&ctx_create(0, 0, "")),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(g.cmd_type(&ctx_create(1, 0, "first")), OK);
    assert_eq!(
        g.cmd_type(&ctx_create(1, 0, "again")),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(
        g.cmd_type(&ctx_create(2, 3, "venus?")),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    let mut long = ctx_create(2, 0, "x");
    long[24..28].copy_from_slice(&65u32.to_le_bytes());
    assert_eq!(
        g.cmd_type(&long),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "nlen > 64"
    );
    let destroy = |c| ctx_hdr(VIRTIO_GPU_CMD_CTX_DESTROY, c).as_bytes().to_vec();
    assert_eq!(g.cmd_type(&destroy(1)), OK);
    assert_eq!(
        g.cmd_type(&destroy(1)),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(g.cmd_type(&ctx_create(1, 0, "reuse")), OK);
}

#[test]
fn attach_detach_resource_to_context() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    assert_eq!(
        g.cmd_type(&create_2d(5, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 4, 4)),
        OK
    );
    let a = |c, id| ctx_resource(VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE, c, id);
    let d = |c, id| ctx_resource(VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE, c, id);
    assert_eq!(g.cmd_type(&a(2, 5)), VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID);
    assert_eq!(
        g.cmd_type(&a(1, 6)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&d(1, 5)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
        "not attached"
    );
    assert_eq!(g.cmd_type(&a(1, 5)), OK);
    // Attached: the context's stream may fill it.
    let fill = Command::Fill {
        resource: 5,
        rect: GRect::new(0, 0, 4, 4),
        value: 0x00ff_0000,
    };
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1), &[fill])),
        OK
    );
    assert_eq!(g.cmd_type(&d(1, 5)), OK);
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1), &[fill])),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID,
        "detached resources are out of the context's reach"
    );
}

#[test]
fn submit_fills_a_3d_resource_read_back_by_transfer_from_host() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    assert_eq!(g.cmd_type(&create_3d(1, 10, 2, 16, 16)), OK);
    let backing = g.alloc(16 * 16 * 4);
    g.mem.write_slice(&vec![0u8; 16 * 16 * 4], backing).unwrap();
    assert_eq!(
        g.cmd_type(&attach_backing(10, &[(backing.0, 16 * 16 * 4)])),
        OK
    );
    let cmds = [
        Command::Fill {
            resource: 10,
            rect: GRect::new(0, 0, 16, 16),
            value: 0x1111_1111,
        },
        Command::Fill {
            resource: 10,
            rect: GRect::new(4, 4, 2, 2),
            value: 0xaabb_ccdd,
        },
    ];
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1), &cmds)),
        OK
    );
    let from = transfer_3d(
        VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
        1,
        10,
        (0, 0, 16, 16),
        0,
    );
    assert_eq!(g.cmd_type(&from), OK);
    let px = |g: &Guest, x: u64, y: u64| g.read(GuestAddress(backing.0 + (y * 16 + x) * 4), 4);
    assert_eq!(px(&g, 5, 5), 0xaabb_ccddu32.to_le_bytes());
    assert_eq!(px(&g, 6, 5), 0x1111_1111u32.to_le_bytes());

    // TRANSFER_TO_HOST_3D then COPY inside the context, read back again.
    g.mem
        .write_slice(&0x0102_0304u32.to_le_bytes(), backing)
        .unwrap();
    let to = transfer_3d(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D, 1, 10, (0, 0, 1, 1), 64);
    assert_eq!(g.cmd_type(&to), OK);
    let copy = Command::Copy {
        src: 10,
        dst: 10,
        src_rect: GRect::new(0, 0, 1, 1),
        dst_x: 15,
        dst_y: 15,
    };
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1), &[copy])),
        OK
    );
    assert_eq!(g.cmd_type(&from), OK);
    assert_eq!(px(&g, 15, 15), 0x0102_0304u32.to_le_bytes());
}

#[test]
fn hostile_3d_requests_are_rejected() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    assert_eq!(
        g.cmd_type(&create_3d(1, 0, 2, 4, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&create_3d(9, 3, 2, 4, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(
        g.cmd_type(&create_3d(1, 3, 2, 0, 4)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(g.cmd_type(&create_3d(1, 3, 2, 4, 4)), OK);
    let from =
        |ctx, id, b, stride| transfer_3d(VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D, ctx, id, b, stride);
    assert_eq!(
        g.cmd_type(&from(1, 3, (0, 0, 4, 4), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "no backing"
    );
    let b = g.alloc(64);
    assert_eq!(g.cmd_type(&attach_backing(3, &[(b.0, 64)])), OK);
    assert_eq!(
        g.cmd_type(&from(2, 3, (0, 0, 4, 4), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(
        g.cmd_type(&from(1, 4, (0, 0, 4, 4), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_RESOURCE_ID
    );
    assert_eq!(
        g.cmd_type(&from(1, 3, (1, 0, 4, 4), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "box"
    );
    assert_eq!(
        g.cmd_type(&from(1, 3, (0, 0, 4, 4), 32)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "stride"
    );
    assert_eq!(
        g.cmd_type(&from(1, 3, (0, 0, 4, 4), 8)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "stride < row"
    );
    assert_eq!(
        g.cmd_type(&from(1, 3, (u32::MAX, 0, 2, 1), 0)),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    let huge = from(1, 3, (0, 0, u32::MAX, u32::MAX), 0);
    assert_eq!(
        g.cmd_type(&huge),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER,
        "overflow"
    );
    // Streams: unknown context, truncated, size past the request, garbage opcode.
    let h = ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 1);
    assert_eq!(
        g.cmd_type(&submit(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 7), &[])),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    let mut s = submit(h, &[Command::DelayUs(1)]);
    s[24..28].copy_from_slice(&1000u32.to_le_bytes());
    assert_eq!(g.cmd_type(&s), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    let mut s = submit(h, &[Command::Nop]);
    s.extend_from_slice(&0xffffu32.to_le_bytes());
    s[24..28].copy_from_slice(&8u32.to_le_bytes());
    assert_eq!(g.cmd_type(&s), VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER);
    let fill = Command::Fill {
        resource: 3,
        rect: GRect::new(2, 2, 4, 4),
        value: 0,
    };
    assert_eq!(
        g.cmd_type(&submit(h, &[fill])),
        VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
    );
    assert_eq!(g.cmd_type(&submit(h, &[Command::Nop])), OK);
}

/// Sizes near u32::MAX in every dimension (the fuzzer's find: the quota's estimate overflowed)
/// are over a slice's quota, not a panic; with one the device refuses them plainly.
#[test]
fn absurd_3d_and_2d_sizes_are_over_the_quota() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    let quota = gpu_interface::MemoryQuota::new(16 << 20);
    g.dev.set_slice_limits(gpu_interface::SliceLimits {
        quota: Some(quota.clone()),
        gate: None,
    });
    let mut c = ResourceCreate3d::new_zeroed();
    c.hdr = ctx_hdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_3D, 1);
    c.resource_id = 9.into();
    c.target = 2.into();
    c.format = 1.into();
    for v in [
        &mut c.width,
        &mut c.height,
        &mut c.depth,
        &mut c.array_size,
        &mut c.nr_samples,
    ] {
        *v = u32::MAX.into();
    }
    c.last_level = u32::MAX.into();
    assert_eq!(g.cmd_type(c.as_bytes()), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    let huge_2d = create_2d(10, VIRTIO_GPU_FORMAT_B8G8R8A8_UNORM, u32::MAX, u32::MAX);
    assert_eq!(g.cmd_type(&huge_2d), VIRTIO_GPU_RESP_ERR_OUT_OF_MEMORY);
    assert_eq!(quota.used(), 0);
    assert_eq!(g.cmd_type(&create_3d(1, 11, 2, 64, 64)), OK);
    assert_eq!(quota.used(), 64 * 64 * 4);
}
