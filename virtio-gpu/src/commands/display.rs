//! GET_DISPLAY_INFO, GET_EDID, SET_SCANOUT and RESOURCE_FLUSH.

use gpu_interface::display::RectView;
use gpu_interface::edid::edid_for_mode;
use gpu_interface::{DisplayMode, Rect};
use vm_memory::GuestMemory;
use zerocopy::FromZeros;

use super::{decode, CmdResult, Response};
use crate::device::GpuDevice;
use crate::error::CmdError;
use crate::protocol::*;
use crate::resources::ResourceKind;

pub fn get_display_info(dev: &mut GpuDevice) -> CmdResult {
    let mut info = RespDisplayInfo::new_zeroed();
    for (one, scanout) in info.pmodes.iter_mut().zip(&dev.scanouts) {
        if let Some(mode) = scanout.mode {
            one.r = Rect::full(mode.width, mode.height).into();
            one.enabled = 1.into();
        }
    }
    Ok(Response::with(VIRTIO_GPU_RESP_OK_DISPLAY_INFO, &info))
}

pub fn get_edid(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<GetEdid>(bytes, "GET_EDID")?;
    if !dev.has_feature(VIRTIO_GPU_F_EDID) {
        return Err(CmdError::Unsupported("GET_EDID without VIRTIO_GPU_F_EDID"));
    }
    let scanout_id = cmd.scanout.get();
    let scanout = dev.scanouts.get(scanout_id as usize);
    let scanout = scanout.ok_or(CmdError::InvalidScanoutId(scanout_id))?;
    // An unplugged display still describes the mode it would come back with.
    let mode = scanout.mode.unwrap_or(DisplayMode::new(1024, 768));
    let block = edid_for_mode(mode, scanout_id);
    let mut resp = RespEdid::new_zeroed();
    resp.size = (block.len() as u32).into();
    resp.edid[..block.len()].copy_from_slice(&block);
    Ok(Response::with(VIRTIO_GPU_RESP_OK_EDID, &resp))
}

/// Checks a scanout id against the configured scanouts.
pub fn check_scanout(dev: &GpuDevice, scanout_id: u32) -> Result<(), CmdError> {
    if (scanout_id as usize) < dev.scanouts.len() {
        Ok(())
    } else {
        Err(CmdError::InvalidScanoutId(scanout_id))
    }
}

/// Disables `scanout_id` in the backend and the device, and tells the listener.
pub fn disable_scanout(dev: &mut GpuDevice, scanout_id: u32) -> Result<(), CmdError> {
    dev.backend.set_scanout(scanout_id, None, Rect::default())?;
    if let Some(s) = dev.scanouts.get_mut(scanout_id as usize) {
        s.resource = None;
        s.rect = Rect::default();
    }
    if let Some(l) = dev.listener.as_mut() {
        l.scanout_changed(scanout_id, None);
    }
    Ok(())
}

/// Records that `scanout_id` shows `rect` of `id` (the backend already does).
pub fn scanout_shown(dev: &mut GpuDevice, scanout_id: u32, id: u32, rect: Rect) {
    if let Some(s) = dev.scanouts.get_mut(scanout_id as usize) {
        s.resource = Some(id);
        s.rect = rect;
        s.listener_blank = true;
    }
    if let Some(l) = dev.listener.as_mut() {
        l.scanout_changed(scanout_id, Some((rect.width, rect.height)));
    }
}

pub fn set_scanout(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<SetScanout>(bytes, "SET_SCANOUT")?;
    let (scanout_id, id) = (cmd.scanout_id.get(), cmd.resource_id.get());
    let rect = Rect::from(cmd.r);
    check_scanout(dev, scanout_id)?;
    if id == 0 {
        disable_scanout(dev, scanout_id)?;
        return Ok(Response::ok());
    }
    let res = dev.resources.get(id)?;
    match res.kind {
        ResourceKind::TwoD { width, height, .. } => {
            if rect.is_empty() || !rect.fits_in(width, height) {
                return Err(CmdError::InvalidParameter(
                    "scanout rectangle outside the resource",
                ));
            }
        }
        ResourceKind::ThreeD(_) => {}
        ResourceKind::GuestBlob { .. } | ResourceKind::HostBlob { .. } => {
            return Err(CmdError::InvalidParameter(
                "blob resources use SET_SCANOUT_BLOB",
            ));
        }
    }
    dev.backend.set_scanout(scanout_id, Some(id), rect)?;
    scanout_shown(dev, scanout_id, id, rect);
    Ok(Response::ok())
}

pub fn flush<M: GuestMemory>(dev: &mut GpuDevice, bytes: &[u8], mem: &M) -> CmdResult {
    let (cmd, _) = decode::<ResourceFlush>(bytes, "RESOURCE_FLUSH")?;
    let id = cmd.resource_id.get();
    let rect = Rect::from(cmd.r);
    let res = dev.resources.get(id)?;
    match (res.kind, res.shadow) {
        (ResourceKind::TwoD { width, height, .. }, _) if !rect.fits_in(width, height) => {
            return Err(CmdError::InvalidParameter(
                "flush rectangle outside the resource",
            ));
        }
        (ResourceKind::GuestBlob { .. }, Some(shadow)) => {
            let Some(rect) = rect.intersect(&Rect::full(shadow.width, shadow.height)) else {
                return Ok(Response::ok());
            };
            super::blob::push_shadow(dev, id, rect, mem)?;
            let changed = dev.backend.flush_changed(id, rect)?;
            notify_flush(dev, id, rect, changed);
            return Ok(Response::ok());
        }
        (ResourceKind::GuestBlob { .. } | ResourceKind::HostBlob { .. }, _) => {
            // Not shown anywhere: nothing to present.
            return Ok(Response::ok());
        }
        _ => {}
    }
    let changed = dev.backend.flush_changed(id, rect)?;
    notify_flush(dev, id, rect, changed);
    Ok(Response::ok())
}

/// Tells the listener about damage on every scanout showing `id`: only the part of `damage` that
/// `changed` (guests often mark a whole screen dirty), except on a surface the listener has no
/// pixels of yet, which gets all of `damage`.
fn notify_flush(dev: &mut GpuDevice, id: u32, damage: Rect, changed: Option<Rect>) {
    let Some(listener) = dev.listener.as_mut() else {
        return;
    };
    for (i, s) in dev.scanouts.iter_mut().enumerate() {
        if s.resource != Some(id) {
            continue;
        }
        let send = if s.listener_blank {
            Some(damage)
        } else {
            changed
        };
        let Some(damage) = send.and_then(|r| r.intersect(&s.rect)) else {
            continue;
        };
        if damage == s.rect {
            s.listener_blank = false;
        }
        let local = Rect::new(
            damage.x - s.rect.x,
            damage.y - s.rect.y,
            damage.width,
            damage.height,
        );
        // Only the damaged rectangle of the primary plane, lent by the backend: no composed
        // frame, and the cursor travels separately.
        let scanout = i as u32;
        let mut send = |pixels: &RectView<'_>| listener.scanout_updated(scanout, local, pixels);
        if let Err(e) = dev.backend.read_scanout_rect(scanout, local, &mut send) {
            tracing::warn!(scanout, "virtio-gpu: read_scanout_rect for listener: {e}");
        }
    }
}
