//! RESOURCE_CREATE_2D, RESOURCE_UNREF, TRANSFER_TO_HOST_2D, RESOURCE_ATTACH_BACKING,
//! RESOURCE_DETACH_BACKING and RESOURCE_ASSIGN_UUID.

use gpu_interface::{Rect, Resource2dDesc};
use vm_memory::GuestMemory;
use zerocopy::FromZeros;

use super::{decode, mem_entries, CmdResult, Response};
use crate::backing::{Backing, GuestRows, RowLayout};
use crate::device::GpuDevice;
use crate::error::CmdError;
use crate::protocol::*;
use crate::resources::{Resource, ResourceKind};

pub fn create_2d(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceCreate2d>(bytes, "RESOURCE_CREATE_2D")?;
    let id = cmd.resource_id.get();
    dev.resources.check_new(id)?;
    let format = pixel_format(cmd.format.get())
        .ok_or(CmdError::InvalidParameter("unknown resource format"))?;
    let (width, height) = (cmd.width.get(), cmd.height.get());
    if width == 0 || height == 0 {
        return Err(CmdError::InvalidParameter("zero-sized resource"));
    }
    // The host's copy of the pixels.
    let bytes =
        (u64::from(width) * u64::from(height)).saturating_mul(u64::from(format.bytes_per_pixel()));
    let charge = dev.charge(bytes)?;
    dev.backend.create_resource_2d(
        id,
        Resource2dDesc {
            width,
            height,
            format,
        },
    )?;
    let mut res = Resource::new(ResourceKind::TwoD {
        width,
        height,
        format,
    });
    res.charge = charge;
    dev.resources.insert(id, res);
    Ok(Response::ok())
}

pub fn unref_cmd(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceUnref>(bytes, "RESOURCE_UNREF")?;
    unref(dev, cmd.resource_id.get())?;
    Ok(Response::ok())
}

/// Destroys resource `id`: unmaps it, takes it off scanouts and the cursor, frees backend state.
pub fn unref(dev: &mut GpuDevice, id: u32) -> Result<(), CmdError> {
    let res = dev.resources.remove(id)?;
    if let (Some((offset, size)), Some(shm)) = (res.mapped, dev.shm.as_mut()) {
        if let Err(e) = shm.unmap(offset, size) {
            tracing::warn!(id, "virtio-gpu: unmapping a destroyed blob: {e}");
        }
        let _ = dev.backend.unmap_blob(id);
    }
    for (i, s) in dev.scanouts.iter_mut().enumerate() {
        if s.resource == Some(id) {
            s.resource = None;
            if let Some(l) = dev.listener.as_mut() {
                l.scanout_changed(i as u32, None);
            }
        }
        if s.cursor == Some(id) {
            s.cursor = None;
            if let Some(l) = dev.listener.as_mut() {
                l.cursor_changed(i as u32, None);
            }
        }
    }
    if res.in_backend() {
        dev.backend.destroy_resource(id)?;
    }
    Ok(())
}

pub fn transfer_to_host_2d<M: GuestMemory>(
    dev: &mut GpuDevice,
    bytes: &[u8],
    mem: &M,
) -> CmdResult {
    let (cmd, _) = decode::<TransferToHost2d>(bytes, "TRANSFER_TO_HOST_2D")?;
    let id = cmd.resource_id.get();
    let rect = Rect::from(cmd.r);
    let res = dev.resources.get(id)?;
    if let ResourceKind::GuestBlob { size } = res.kind {
        return transfer_to_guest_blob(res.shadow, size, rect, cmd.offset.get());
    }
    let ResourceKind::TwoD {
        width,
        height,
        format,
    } = res.kind
    else {
        return Err(CmdError::InvalidParameter(
            "TRANSFER_TO_HOST_2D on a non-2D resource",
        ));
    };
    if !rect.fits_in(width, height) {
        return Err(CmdError::InvalidParameter(
            "transfer rectangle outside the resource",
        ));
    }
    let backing = res
        .backing
        .as_ref()
        .ok_or(CmdError::InvalidParameter("no backing"))?;
    if rect.is_empty() {
        return Ok(Response::ok());
    }
    // Rows lie `stride` apart in the backing, starting at the guest's offset; the last row
    // must end inside the backing before anything is copied.
    let bpp = u64::from(format.bytes_per_pixel());
    let stride = u64::from(width) * bpp;
    let offset = cmd.offset.get();
    let last_end = u64::from(rect.height - 1)
        .checked_mul(stride)
        .and_then(|n| n.checked_add(offset))
        .and_then(|n| n.checked_add(u64::from(rect.width) * bpp));
    if last_end.is_none_or(|end| end > backing.len()) {
        return Err(CmdError::InvalidParameter("transfer outside the backing"));
    }
    let layout = RowLayout::rows_2d(offset, stride, rect.height);
    let mut rows = GuestRows::new(mem, backing, layout);
    dev.backend.write_rect(id, rect, &mut rows)?;
    Ok(Response::ok())
}

/// TRANSFER_TO_HOST_2D on a guest-memory blob (Linux 6.12 sends it for dumb buffers): the guest
/// pages are the resource, and RESOURCE_FLUSH copies them into the scanout shadow, so after the
/// same bounds checks as a 2D transfer there is nothing to do (QEMU answers OK as well).
fn transfer_to_guest_blob(
    shadow: Option<crate::resources::Shadow>,
    size: u64,
    rect: Rect,
    offset: u64,
) -> CmdResult {
    if rect.x.checked_add(rect.width).is_none() || rect.y.checked_add(rect.height).is_none() {
        return Err(CmdError::InvalidParameter("transfer rectangle overflows"));
    }
    if offset > size {
        return Err(CmdError::InvalidParameter("transfer outside the blob"));
    }
    let Some(shadow) = shadow else {
        // Not shown: no layout to check the rows against.
        return Ok(Response::ok());
    };
    if !rect.fits_in(shadow.width, shadow.height) {
        return Err(CmdError::InvalidParameter(
            "transfer rectangle outside the scanout blob",
        ));
    }
    if rect.is_empty() {
        return Ok(Response::ok());
    }
    let bpp = u64::from(shadow.format.bytes_per_pixel());
    let last_end = u64::from(rect.height - 1)
        .checked_mul(u64::from(shadow.stride))
        .and_then(|n| n.checked_add(offset))
        .and_then(|n| n.checked_add(u64::from(rect.width) * bpp));
    if last_end.is_none_or(|end| end > size) {
        return Err(CmdError::InvalidParameter("transfer outside the blob"));
    }
    Ok(Response::ok())
}

pub fn attach_backing<M: GuestMemory>(dev: &mut GpuDevice, bytes: &[u8], mem: &M) -> CmdResult {
    let (cmd, rest) = decode::<ResourceAttachBacking>(bytes, "RESOURCE_ATTACH_BACKING")?;
    let id = cmd.resource_id.get();
    let res = dev.resources.get_mut(id)?;
    if matches!(
        res.kind,
        ResourceKind::GuestBlob { .. } | ResourceKind::HostBlob { .. }
    ) {
        return Err(CmdError::InvalidParameter(
            "blobs get their backing at creation",
        ));
    }
    if res.backing.is_some() {
        return Err(CmdError::InvalidParameter("resource already has a backing"));
    }
    let entries = mem_entries(rest, cmd.nr_entries.get())?;
    res.backing = Some(Backing::new(&entries, mem)?);
    Ok(Response::ok())
}

pub fn detach_backing(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceDetachBacking>(bytes, "RESOURCE_DETACH_BACKING")?;
    let res = dev.resources.get_mut(cmd.resource_id.get())?;
    if matches!(res.kind, ResourceKind::GuestBlob { .. }) {
        return Err(CmdError::InvalidParameter(
            "a guest blob's backing is its memory",
        ));
    }
    res.backing
        .take()
        .ok_or(CmdError::InvalidParameter("resource has no backing"))?;
    Ok(Response::ok())
}

pub fn assign_uuid(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceAssignUuid>(bytes, "RESOURCE_ASSIGN_UUID")?;
    if !dev.has_feature(VIRTIO_GPU_F_RESOURCE_UUID) {
        return Err(CmdError::Unsupported(
            "RESOURCE_ASSIGN_UUID without the feature",
        ));
    }
    let id = cmd.resource_id.get();
    let res = dev.resources.get(id)?;
    let uuid = match (res.uuid, res.in_backend()) {
        (Some(uuid), _) => uuid,
        (None, true) => dev.backend.resource_uuid(id)?,
        // Guest blobs never reach the backend: the device names them itself (version-4 layout).
        (None, false) => {
            let mut u = *b"vgpu-guestblob\0\0";
            u[6] = 0x40 | (u[6] & 0x0f);
            u[8] = 0x80 | (u[8] & 0x3f);
            u[12..16].copy_from_slice(&id.to_be_bytes());
            u
        }
    };
    dev.resources.get_mut(id)?.uuid = Some(uuid);
    let mut resp = RespResourceUuid::new_zeroed();
    resp.uuid = uuid;
    Ok(Response::with(VIRTIO_GPU_RESP_OK_RESOURCE_UUID, &resp))
}
