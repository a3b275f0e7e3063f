//! Capsets and contexts: GET_CAPSET_INFO, GET_CAPSET, CTX_CREATE, CTX_DESTROY,
//! CTX_ATTACH_RESOURCE, CTX_DETACH_RESOURCE, RESOURCE_CREATE_3D, TRANSFER_TO/FROM_HOST_3D and
//! SUBMIT_3D.

use gpu_interface::{Resource3dDesc, Transfer3d};
use vm_memory::GuestMemory;
use zerocopy::FromZeros;

use super::{decode, CmdResult, Response};
use crate::backing::{GuestRows, RowLayout};
use crate::device::{Context, GpuDevice};
use crate::error::CmdError;
use crate::protocol::*;
use crate::resources::{Resource, ResourceKind};

/// The most contexts a guest may hold at once.
pub const MAX_CONTEXTS: usize = 1024;

/// Rings per context (ring_idx is below 64).
pub const MAX_RINGS: u8 = 64;

pub fn get_capset_info(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<GetCapsetInfo>(bytes, "GET_CAPSET_INFO")?;
    let index = cmd.capset_index.get();
    let info = dev.capsets.get(index as usize);
    let info = info.ok_or(CmdError::InvalidParameter("capset index out of range"))?;
    let mut resp = RespCapsetInfo::new_zeroed();
    resp.capset_id = info.id.into();
    resp.capset_max_version = info.max_version.into();
    resp.capset_max_size = info.max_size.into();
    Ok(Response::with(VIRTIO_GPU_RESP_OK_CAPSET_INFO, &resp))
}

pub fn get_capset(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<GetCapset>(bytes, "GET_CAPSET")?;
    let (id, version) = (cmd.capset_id.get(), cmd.capset_version.get());
    let info = dev.capsets.iter().find(|c| c.id == id);
    let info = info.ok_or(CmdError::InvalidParameter("unknown capset"))?;
    if version > info.max_version {
        return Err(CmdError::InvalidParameter(
            "capset version above the maximum",
        ));
    }
    let mut data = dev.backend.capset(id, version)?;
    data.truncate(info.max_size as usize);
    Ok(Response {
        type_: VIRTIO_GPU_RESP_OK_CAPSET,
        payload: data,
    })
}

fn context_id(dev: &GpuDevice, hdr: &CtrlHeader) -> Result<u32, CmdError> {
    let ctx_id = hdr.ctx_id.get();
    if dev.contexts.contains_key(&ctx_id) {
        Ok(ctx_id)
    } else {
        Err(CmdError::InvalidContextId(ctx_id))
    }
}

pub fn create(dev: &mut GpuDevice, hdr: &CtrlHeader, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<CtxCreate>(bytes, "CTX_CREATE")?;
    let ctx_id = hdr.ctx_id.get();
    if ctx_id == 0 || dev.contexts.contains_key(&ctx_id) {
        return Err(CmdError::InvalidContextId(ctx_id));
    }
    if dev.contexts.len() >= MAX_CONTEXTS {
        return Err(CmdError::OutOfMemory("too many contexts"));
    }
    let nlen = cmd.nlen.get() as usize;
    let name = cmd
        .debug_name
        .get(..nlen)
        .ok_or(CmdError::InvalidParameter("debug name length"))?;
    let name = String::from_utf8_lossy(name);
    // The capset id occupies the low byte of context_init; 0 selects the backend's default.
    let capset_id = cmd.context_init.get() & VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK;
    if capset_id != 0 && !dev.capsets.iter().any(|c| c.id == capset_id) {
        return Err(CmdError::InvalidParameter("context capset not offered"));
    }
    dev.backend.create_context(ctx_id, capset_id, &name)?;
    dev.contexts.insert(ctx_id, Context { capset_id });
    Ok(Response::ok())
}

pub fn destroy(dev: &mut GpuDevice, hdr: &CtrlHeader) -> CmdResult {
    let ctx_id = context_id(dev, hdr)?;
    dev.backend.destroy_context(ctx_id)?;
    dev.contexts.remove(&ctx_id);
    for res in dev.resources.values_mut() {
        res.contexts.remove(&ctx_id);
    }
    Ok(Response::ok())
}

pub fn attach_resource(dev: &mut GpuDevice, hdr: &CtrlHeader, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<CtxResource>(bytes, "CTX_ATTACH_RESOURCE")?;
    let ctx_id = context_id(dev, hdr)?;
    let id = cmd.resource_id.get();
    let res = dev.resources.get(id)?;
    if res.in_backend() {
        dev.backend.attach_resource(ctx_id, id)?;
    }
    dev.resources.get_mut(id)?.contexts.insert(ctx_id);
    Ok(Response::ok())
}

pub fn detach_resource(dev: &mut GpuDevice, hdr: &CtrlHeader, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<CtxResource>(bytes, "CTX_DETACH_RESOURCE")?;
    let ctx_id = context_id(dev, hdr)?;
    let id = cmd.resource_id.get();
    let res = dev.resources.get(id)?;
    if !res.contexts.contains(&ctx_id) {
        return Err(CmdError::InvalidResourceId(id));
    }
    if res.in_backend() {
        dev.backend.detach_resource(ctx_id, id)?;
    }
    dev.resources.get_mut(id)?.contexts.remove(&ctx_id);
    Ok(Response::ok())
}

pub fn create_3d(dev: &mut GpuDevice, hdr: &CtrlHeader, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceCreate3d>(bytes, "RESOURCE_CREATE_3D")?;
    if dev.capsets.is_empty() {
        return Err(CmdError::Unsupported(
            "3D resources need a backend with a capset",
        ));
    }
    let id = cmd.resource_id.get();
    dev.resources.check_new(id)?;
    let ctx_id = hdr.ctx_id.get();
    if ctx_id != 0 {
        context_id(dev, hdr)?;
    }
    let desc = Resource3dDesc {
        target: cmd.target.get(),
        format: cmd.format.get(),
        bind: cmd.bind.get(),
        width: cmd.width.get(),
        height: cmd.height.get(),
        depth: cmd.depth.get(),
        array_size: cmd.array_size.get(),
        last_level: cmd.last_level.get(),
        nr_samples: cmd.nr_samples.get(),
        flags: cmd.flags.get(),
    };
    if desc.width == 0 {
        return Err(CmdError::InvalidParameter("zero-width 3D resource"));
    }
    let charge = dev.charge(resource_3d_bytes(&desc))?;
    dev.backend.create_resource_3d(ctx_id, id, desc)?;
    let mut res = Resource::new(ResourceKind::ThreeD(desc));
    res.charge = charge;
    if ctx_id != 0 {
        res.contexts.insert(ctx_id);
    }
    dev.resources.insert(id, res);
    Ok(Response::ok())
}

/// What a 3D resource holds on the host, for the slice's quota: its texels at 4 bytes each
/// (the formats the guest names are at most that, bar the rare wide ones), every level
/// counted as the first (an upper bound on the mip chain's 4/3).
fn resource_3d_bytes(d: &gpu_interface::Resource3dDesc) -> u64 {
    // Guest values: saturate, so that absurd sizes are simply over any quota.
    [
        d.height.max(1),
        d.depth.max(1),
        d.array_size.max(1),
        d.nr_samples.max(1),
        4,
    ]
    .into_iter()
    .fold(u64::from(d.width), |n, f| n.saturating_mul(u64::from(f)))
    .saturating_mul(u64::from(d.last_level) + 1)
}

pub fn transfer_3d<M: GuestMemory>(
    dev: &mut GpuDevice,
    hdr: &CtrlHeader,
    bytes: &[u8],
    mem: &M,
    to_host: bool,
) -> CmdResult {
    let (cmd, _) = decode::<TransferHost3d>(bytes, "TRANSFER_HOST_3D")?;
    let ctx_id = context_id(dev, hdr)?;
    let id = cmd.resource_id.get();
    let res = dev.resources.get(id)?;
    if matches!(
        res.kind,
        ResourceKind::GuestBlob { .. } | ResourceKind::HostBlob { .. }
    ) {
        return Err(CmdError::InvalidParameter("3D transfer on a blob"));
    }
    let backing = res
        .backing
        .as_ref()
        .ok_or(CmdError::InvalidParameter("no backing"))?;
    let b = cmd.box_;
    let (w, h, d) = (b.w.get(), b.h.get().max(1), b.d.get().max(1));
    let bpp = u64::from(res.bytes_per_pixel());
    let row_len = u64::from(w) * bpp;
    let stride = match cmd.stride.get() {
        0 => row_len,
        s => u64::from(s),
    };
    let layer_stride = match cmd.layer_stride.get() {
        0 => stride.saturating_mul(u64::from(h)),
        s => u64::from(s),
    };
    let offset = cmd.offset.get();
    // The last row of the last layer must end inside the backing.
    let last_end = u64::from(d - 1)
        .checked_mul(layer_stride)
        .and_then(|n| n.checked_add(u64::from(h - 1).checked_mul(stride)?))
        .and_then(|n| n.checked_add(offset)?.checked_add(row_len));
    if w == 0 || stride < row_len || last_end.is_none_or(|end| end > backing.len()) {
        return Err(CmdError::InvalidParameter(
            "transfer box outside the backing",
        ));
    }
    let transfer = Transfer3d {
        x: b.x.get(),
        y: b.y.get(),
        z: b.z.get(),
        width: w,
        height: h,
        depth: d,
        level: cmd.level.get(),
        stride: stride as u32,
        layer_stride: layer_stride.try_into().unwrap_or(u32::MAX),
        offset,
    };
    let layout = RowLayout {
        offset,
        stride,
        rows_per_layer: h,
        layer_stride,
    };
    let mut rows = GuestRows::new(mem, backing, layout);
    if to_host {
        dev.backend
            .transfer_to_host_3d(ctx_id, id, transfer, &mut rows)?;
    } else {
        dev.backend
            .transfer_from_host_3d(ctx_id, id, transfer, &mut rows)?;
    }
    Ok(Response::ok())
}

pub fn submit(dev: &mut GpuDevice, hdr: &CtrlHeader, bytes: &[u8]) -> CmdResult {
    let (cmd, rest) = decode::<CmdSubmit>(bytes, "SUBMIT_3D")?;
    let ctx_id = context_id(dev, hdr)?;
    let size = cmd.size.get() as usize;
    let stream = rest
        .get(..size)
        .ok_or(CmdError::InvalidParameter("stream past the request"))?;
    let ring_idx = if hdr.flags.get() & VIRTIO_GPU_FLAG_INFO_RING_IDX != 0 {
        hdr.ring_idx
    } else {
        0
    };
    if ring_idx >= MAX_RINGS {
        return Err(CmdError::InvalidParameter("ring index above 63"));
    }
    dev.backend.submit(ctx_id, ring_idx, stream)?;
    Ok(Response::ok())
}
