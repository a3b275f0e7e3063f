//! Request builders: the bytes a guest driver puts in a chain for each command.

use zerocopy::{FromZeros, IntoBytes};

use crate::protocol::*;

pub fn header(type_: u32) -> CtrlHeader {
    CtrlHeader {
        type_: type_.into(),
        ..CtrlHeader::new_zeroed()
    }
}

pub fn rect(x: u32, y: u32, width: u32, height: u32) -> Rect {
    Rect {
        x: x.into(),
        y: y.into(),
        width: width.into(),
        height: height.into(),
    }
}

pub fn get_display_info() -> Vec<u8> {
    header(VIRTIO_GPU_CMD_GET_DISPLAY_INFO).as_bytes().to_vec()
}

pub fn create_2d(id: u32, format: u32, width: u32, height: u32) -> Vec<u8> {
    let cmd = ResourceCreate2d {
        hdr: header(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D),
        resource_id: id.into(),
        format: format.into(),
        width: width.into(),
        height: height.into(),
    };
    cmd.as_bytes().to_vec()
}

/// RESOURCE_ATTACH_BACKING with one entry per (guest address, length).
pub fn attach_backing(id: u32, entries: &[(u64, u32)]) -> Vec<u8> {
    let cmd = ResourceAttachBacking {
        hdr: header(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING),
        resource_id: id.into(),
        nr_entries: (entries.len() as u32).into(),
    };
    let mut v = cmd.as_bytes().to_vec();
    for &(addr, len) in entries {
        let e = MemEntry {
            addr: addr.into(),
            length: len.into(),
            padding: 0.into(),
        };
        v.extend_from_slice(e.as_bytes());
    }
    v
}

pub fn transfer_to_host_2d(id: u32, r: Rect, offset: u64) -> Vec<u8> {
    let cmd = TransferToHost2d {
        hdr: header(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D),
        r,
        offset: offset.into(),
        resource_id: id.into(),
        padding: 0.into(),
    };
    cmd.as_bytes().to_vec()
}

pub fn set_scanout(scanout: u32, id: u32, r: Rect) -> Vec<u8> {
    let cmd = SetScanout {
        hdr: header(VIRTIO_GPU_CMD_SET_SCANOUT),
        r,
        scanout_id: scanout.into(),
        resource_id: id.into(),
    };
    cmd.as_bytes().to_vec()
}

pub fn resource_flush(id: u32, r: Rect) -> Vec<u8> {
    let cmd = ResourceFlush {
        hdr: header(VIRTIO_GPU_CMD_RESOURCE_FLUSH),
        r,
        resource_id: id.into(),
        padding: 0.into(),
    };
    cmd.as_bytes().to_vec()
}

/// UPDATE_CURSOR (`id` != 0 sets the image) or MOVE_CURSOR, per `type_`.
pub fn cursor(type_: u32, scanout: u32, x: u32, y: u32, id: u32, hot: (u32, u32)) -> Vec<u8> {
    let cmd = UpdateCursor {
        hdr: header(type_),
        pos: CursorPos {
            scanout_id: scanout.into(),
            x: x.into(),
            y: y.into(),
            padding: 0.into(),
        },
        resource_id: id.into(),
        hot_x: hot.0.into(),
        hot_y: hot.1.into(),
        padding: 0.into(),
    };
    cmd.as_bytes().to_vec()
}

/// CTX_CREATE of context `ctx` with capset `capset` (0: the backend's default).
pub fn ctx_create(ctx: u32, capset: u32, name: &str) -> Vec<u8> {
    let mut cmd = CtxCreate::new_zeroed();
    cmd.hdr = CtrlHeader {
        ctx_id: ctx.into(),
        ..header(VIRTIO_GPU_CMD_CTX_CREATE)
    };
    let name = &name.as_bytes()[..name.len().min(cmd.debug_name.len())];
    cmd.nlen = (name.len() as u32).into();
    cmd.context_init = capset.into();
    cmd.debug_name[..name.len()].copy_from_slice(name);
    cmd.as_bytes().to_vec()
}

/// RESOURCE_CREATE_BLOB in context `ctx` of a `size`-byte blob from `mem`, without entries.
pub fn create_blob(ctx: u32, id: u32, mem: u32, flags: u32, size: u64) -> Vec<u8> {
    let mut cmd = ResourceCreateBlob::new_zeroed();
    cmd.hdr = CtrlHeader {
        ctx_id: ctx.into(),
        ..header(VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB)
    };
    cmd.resource_id = id.into();
    cmd.blob_mem = mem.into();
    cmd.blob_flags = flags.into();
    cmd.size = size.into();
    cmd.as_bytes().to_vec()
}

/// RESOURCE_MAP_BLOB of resource `id` at `offset` in the host-visible region.
pub fn map_blob(id: u32, offset: u64) -> Vec<u8> {
    let cmd = ResourceMapBlob {
        hdr: header(VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB),
        resource_id: id.into(),
        padding: 0.into(),
        offset: offset.into(),
    };
    cmd.as_bytes().to_vec()
}

pub fn unmap_blob(id: u32) -> Vec<u8> {
    let cmd = ResourceUnmapBlob {
        hdr: header(VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB),
        resource_id: id.into(),
        padding: 0.into(),
    };
    cmd.as_bytes().to_vec()
}

/// The response type of a response.
pub fn response_type(resp: &[u8]) -> u32 {
    resp.get(..4)
        .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
}
