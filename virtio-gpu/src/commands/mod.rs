//! Control and cursor commands: decoding, dispatch and responses. Each command's handler lives in
//! the module for its area and returns a [`Response`] or a [`CmdError`]; errors become the
//! spec's ERR_* response (with a `tracing` warning) here, in one place.

pub mod blob;
pub mod context;
pub mod cursor;
pub mod display;
pub mod resource;

use vm_memory::GuestMemory;
use zerocopy::{FromBytes, Immutable, IntoBytes, KnownLayout};

use crate::device::GpuDevice;
use crate::error::CmdError;
use crate::protocol::*;

/// A successful response: its type and the bytes after the header.
#[derive(Debug)]
pub struct Response {
    pub type_: u32,
    pub payload: Vec<u8>,
}

impl Response {
    pub fn ok() -> Self {
        Response {
            type_: VIRTIO_GPU_RESP_OK_NODATA,
            payload: Vec::new(),
        }
    }

    /// A response whose struct starts with a `CtrlHeader` (filled in by the dispatcher).
    pub fn with<T: IntoBytes + Immutable>(type_: u32, body: &T) -> Self {
        let bytes = body.as_bytes();
        let payload = bytes
            .get(std::mem::size_of::<CtrlHeader>()..)
            .unwrap_or(&[])
            .to_vec();
        Response { type_, payload }
    }
}

pub type CmdResult = Result<Response, CmdError>;

/// Decodes a command struct from the front of the request; the rest follows.
pub fn decode<'a, T: FromBytes + KnownLayout + Immutable>(
    bytes: &'a [u8],
    name: &'static str,
) -> Result<(T, &'a [u8]), CmdError> {
    T::read_from_prefix(bytes).map_err(|_| CmdError::ShortRequest(name))
}

/// Runs one control request; returns its header (when it had one) and the response bytes.
pub fn execute<M: GuestMemory>(
    dev: &mut GpuDevice,
    bytes: &[u8],
    mem: &M,
) -> (Option<CtrlHeader>, Vec<u8>) {
    let Ok((hdr, _)) = CtrlHeader::read_from_prefix(bytes) else {
        tracing::warn!(
            len = bytes.len(),
            "virtio-gpu: request shorter than a header"
        );
        let hdr = CtrlHeader {
            type_: VIRTIO_GPU_RESP_ERR_UNSPEC.into(),
            ..FromZeros::new_zeroed()
        };
        return (None, hdr.as_bytes().to_vec());
    };
    let type_ = hdr.type_.get();
    let result = dispatch(dev, type_, &hdr, bytes, mem);
    let (resp_type, payload) = match result {
        Ok(r) => (r.type_, r.payload),
        Err(e) => {
            tracing::warn!(command = format_args!("{type_:#x}"), "virtio-gpu: {e}");
            (e.response_type(), Vec::new())
        }
    };
    let mut out = response_header(&hdr, resp_type).as_bytes().to_vec();
    out.extend_from_slice(&payload);
    (Some(hdr), out)
}

use zerocopy::FromZeros;

fn dispatch<M: GuestMemory>(
    dev: &mut GpuDevice,
    type_: u32,
    hdr: &CtrlHeader,
    bytes: &[u8],
    mem: &M,
) -> CmdResult {
    match type_ {
        VIRTIO_GPU_CMD_GET_DISPLAY_INFO => display::get_display_info(dev),
        VIRTIO_GPU_CMD_GET_EDID => display::get_edid(dev, bytes),
        VIRTIO_GPU_CMD_SET_SCANOUT => display::set_scanout(dev, bytes),
        VIRTIO_GPU_CMD_RESOURCE_FLUSH => display::flush(dev, bytes, mem),
        VIRTIO_GPU_CMD_RESOURCE_CREATE_2D => resource::create_2d(dev, bytes),
        VIRTIO_GPU_CMD_RESOURCE_UNREF => resource::unref_cmd(dev, bytes),
        VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D => resource::transfer_to_host_2d(dev, bytes, mem),
        VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING => resource::attach_backing(dev, bytes, mem),
        VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING => resource::detach_backing(dev, bytes),
        VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID => resource::assign_uuid(dev, bytes),
        VIRTIO_GPU_CMD_GET_CAPSET_INFO => context::get_capset_info(dev, bytes),
        VIRTIO_GPU_CMD_GET_CAPSET => context::get_capset(dev, bytes),
        VIRTIO_GPU_CMD_CTX_CREATE => context::create(dev, hdr, bytes),
        VIRTIO_GPU_CMD_CTX_DESTROY => context::destroy(dev, hdr),
        VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE => context::attach_resource(dev, hdr, bytes),
        VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE => context::detach_resource(dev, hdr, bytes),
        VIRTIO_GPU_CMD_RESOURCE_CREATE_3D => context::create_3d(dev, hdr, bytes),
        VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D => context::transfer_3d(dev, hdr, bytes, mem, true),
        VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D => context::transfer_3d(dev, hdr, bytes, mem, false),
        VIRTIO_GPU_CMD_SUBMIT_3D => context::submit(dev, hdr, bytes),
        VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB => blob::create(dev, hdr, bytes, mem),
        VIRTIO_GPU_CMD_SET_SCANOUT_BLOB => blob::set_scanout_blob(dev, bytes, mem),
        VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB => blob::map(dev, bytes),
        VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB => blob::unmap(dev, bytes),
        VIRTIO_GPU_CMD_UPDATE_CURSOR | VIRTIO_GPU_CMD_MOVE_CURSOR => Err(
            CmdError::InvalidParameter("cursor command on the control queue"),
        ),
        other => Err(CmdError::UnknownCommand(other)),
    }
}

/// Reads `count` [`MemEntry`]s following a command.
pub fn mem_entries(rest: &[u8], count: u32) -> Result<Vec<MemEntry>, CmdError> {
    if count as usize > crate::backing::MAX_BACKING_ENTRIES {
        return Err(CmdError::InvalidParameter("too many backing entries"));
    }
    let need = (count as usize) * std::mem::size_of::<MemEntry>();
    let bytes = rest
        .get(..need)
        .ok_or(CmdError::ShortRequest("memory entries"))?;
    Ok(bytes
        .chunks_exact(std::mem::size_of::<MemEntry>())
        .filter_map(|c| MemEntry::read_from_bytes(c).ok())
        .collect())
}
