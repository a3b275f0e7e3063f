//! Blobs: RESOURCE_CREATE_BLOB, SET_SCANOUT_BLOB, RESOURCE_MAP_BLOB and RESOURCE_UNMAP_BLOB.
//!
//! BLOB_MEM_GUEST blobs live in guest pages only. To show one, SET_SCANOUT_BLOB creates a 2D
//! "shadow" resource with the same id in the backend and the core copies guest pixels into it
//! (on SET_SCANOUT_BLOB and on every RESOURCE_FLUSH). HOST3D blobs are the backend's; mapping
//! them goes through the transport's [`crate::shm::SharedMemoryMapper`].

use gpu_interface::{BlobDesc, BlobMem, MapCache, Rect, Resource2dDesc};
use vm_memory::GuestMemory;
use zerocopy::FromZeros;

use super::display::{check_scanout, disable_scanout, scanout_shown};
use super::{decode, mem_entries, CmdResult, Response};
use crate::backing::{Backing, GuestRows, RowLayout};
use crate::device::GpuDevice;
use crate::error::CmdError;
use crate::protocol::*;
use crate::resources::{Resource, ResourceKind, Shadow};

const KNOWN_FLAGS: u32 = VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE
    | VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE
    | VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE;

pub fn create<M: GuestMemory>(
    dev: &mut GpuDevice,
    hdr: &CtrlHeader,
    bytes: &[u8],
    mem: &M,
) -> CmdResult {
    let (cmd, rest) = decode::<ResourceCreateBlob>(bytes, "RESOURCE_CREATE_BLOB")?;
    if !dev.has_feature(VIRTIO_GPU_F_RESOURCE_BLOB) {
        return Err(CmdError::Unsupported(
            "RESOURCE_CREATE_BLOB without the feature",
        ));
    }
    let id = cmd.resource_id.get();
    dev.resources.check_new(id)?;
    let (flags, size) = (cmd.blob_flags.get(), cmd.size.get());
    if flags & !KNOWN_FLAGS != 0 || size == 0 {
        return Err(CmdError::InvalidParameter(
            "unknown blob flags or zero size",
        ));
    }
    let mem_type = match cmd.blob_mem.get() {
        VIRTIO_GPU_BLOB_MEM_GUEST => BlobMem::Guest,
        VIRTIO_GPU_BLOB_MEM_HOST3D => BlobMem::Host3d,
        VIRTIO_GPU_BLOB_MEM_HOST3D_GUEST => BlobMem::Host3dGuest,
        _ => return Err(CmdError::InvalidParameter("unknown blob_mem")),
    };
    let entries = mem_entries(rest, cmd.nr_entries.get())?;
    let backing = match mem_type {
        BlobMem::Host3d if !entries.is_empty() => {
            return Err(CmdError::InvalidParameter("HOST3D blob with guest pages"));
        }
        BlobMem::Host3d => None,
        _ => {
            let backing = Backing::new(&entries, mem)?;
            if backing.len() < size {
                return Err(CmdError::InvalidParameter(
                    "blob larger than its guest pages",
                ));
            }
            Some(backing)
        }
    };
    let mappable = flags & VIRTIO_GPU_BLOB_FLAG_USE_MAPPABLE != 0;
    let mut charge = None;
    let kind = if mem_type == BlobMem::Guest {
        ResourceKind::GuestBlob { size }
    } else {
        let ctx_id = hdr.ctx_id.get();
        if !dev.contexts.contains_key(&ctx_id) {
            return Err(CmdError::InvalidContextId(ctx_id));
        }
        let desc = BlobDesc {
            mem: mem_type,
            size,
            blob_id: cmd.blob_id.get(),
            mappable,
            shareable: flags & VIRTIO_GPU_BLOB_FLAG_USE_SHAREABLE != 0,
            cross_device: flags & VIRTIO_GPU_BLOB_FLAG_USE_CROSS_DEVICE != 0,
        };
        // A venus context's memory was charged when it was allocated; other contexts' host
        // blobs are new host memory.
        let venus = dev
            .contexts
            .get(&ctx_id)
            .is_some_and(|c| c.capset_id == VIRTIO_GPU_CAPSET_VENUS);
        charge = if venus { None } else { dev.charge(size)? };
        dev.backend.create_blob(ctx_id, id, desc)?;
        ResourceKind::HostBlob { size, mappable }
    };
    let mut res = Resource::new(kind);
    res.charge = charge;
    res.backing = backing;
    if mem_type != BlobMem::Guest {
        res.contexts.insert(hdr.ctx_id.get());
    }
    dev.resources.insert(id, res);
    Ok(Response::ok())
}

pub fn set_scanout_blob<M: GuestMemory>(dev: &mut GpuDevice, bytes: &[u8], mem: &M) -> CmdResult {
    let (cmd, _) = decode::<SetScanoutBlob>(bytes, "SET_SCANOUT_BLOB")?;
    let (scanout_id, id) = (cmd.scanout_id.get(), cmd.resource_id.get());
    check_scanout(dev, scanout_id)?;
    if id == 0 {
        disable_scanout(dev, scanout_id)?;
        return Ok(Response::ok());
    }
    let res = dev.resources.get(id)?;
    let ResourceKind::GuestBlob { size } = res.kind else {
        return Err(CmdError::InvalidParameter(
            "SET_SCANOUT_BLOB needs a guest-memory blob",
        ));
    };
    let format = pixel_format(cmd.format.get())
        .ok_or(CmdError::InvalidParameter("unknown scanout format"))?;
    let (width, height) = (cmd.width.get(), cmd.height.get());
    let (stride, offset) = (cmd.strides[0].get(), cmd.offsets[0].get());
    let rect = Rect::from(cmd.r);
    let row_len = u64::from(width) * u64::from(format.bytes_per_pixel());
    let end = u64::from(height.saturating_sub(1))
        .checked_mul(u64::from(stride))
        .and_then(|n| n.checked_add(u64::from(offset))?.checked_add(row_len));
    let fits = end.is_some_and(|end| end <= size);
    if width == 0 || height == 0 || u64::from(stride) < row_len || !fits {
        return Err(CmdError::InvalidParameter(
            "scanout blob layout outside the blob",
        ));
    }
    if rect.is_empty() || !rect.fits_in(width, height) {
        return Err(CmdError::InvalidParameter(
            "scanout rectangle outside the blob image",
        ));
    }
    let shadow = Shadow {
        width,
        height,
        format,
        stride,
        offset,
    };
    if res.shadow != Some(shadow) {
        if res.shadow.is_some() {
            dev.backend.destroy_resource(id)?;
            dev.resources.get_mut(id)?.shadow = None;
        }
        dev.backend.create_resource_2d(
            id,
            Resource2dDesc {
                width,
                height,
                format,
            },
        )?;
        dev.resources.get_mut(id)?.shadow = Some(shadow);
    }
    push_shadow(dev, id, Rect::full(width, height), mem)?;
    dev.backend.set_scanout(scanout_id, Some(id), rect)?;
    scanout_shown(dev, scanout_id, id, rect);
    Ok(Response::ok())
}

/// Copies `rect` of a guest blob's pixels from guest pages into its backend shadow.
pub fn push_shadow<M: GuestMemory>(
    dev: &mut GpuDevice,
    id: u32,
    rect: Rect,
    mem: &M,
) -> Result<(), CmdError> {
    let res = dev.resources.get(id)?;
    let (Some(shadow), Some(backing)) = (res.shadow, res.backing.as_ref()) else {
        return Err(CmdError::InvalidParameter("blob is not shown on a scanout"));
    };
    let bpp = u64::from(shadow.format.bytes_per_pixel());
    let offset = u64::from(shadow.offset)
        + u64::from(rect.y) * u64::from(shadow.stride)
        + u64::from(rect.x) * bpp;
    let layout = RowLayout::rows_2d(offset, u64::from(shadow.stride), rect.height);
    let mut rows = GuestRows::new(mem, backing, layout);
    dev.backend.write_rect(id, rect, &mut rows)?;
    Ok(())
}

pub fn map(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceMapBlob>(bytes, "RESOURCE_MAP_BLOB")?;
    let (id, offset) = (cmd.resource_id.get(), cmd.offset.get());
    let res = dev.resources.get(id)?;
    let ResourceKind::HostBlob {
        size,
        mappable: true,
    } = res.kind
    else {
        return Err(CmdError::InvalidParameter("not a mappable host blob"));
    };
    if res.mapped.is_some() {
        return Err(CmdError::InvalidParameter("blob already mapped"));
    }
    let shm = dev
        .shm
        .as_ref()
        .ok_or(CmdError::Unsupported("no host-visible region"))?;
    let end = offset.checked_add(size);
    if end.is_none_or(|end| end > shm.region_size()) {
        return Err(CmdError::InvalidParameter(
            "mapping outside the host-visible region",
        ));
    }
    let overlaps = dev
        .resources
        .values()
        .filter_map(|r| r.mapped)
        .any(|(o, s)| offset < o.saturating_add(s) && o < offset.saturating_add(size));
    if overlaps {
        return Err(CmdError::InvalidParameter("mapping overlaps another blob"));
    }
    let mapping = dev.backend.map_blob(id)?;
    let cache = match mapping.cache {
        MapCache::Cached => VIRTIO_GPU_MAP_CACHE_CACHED,
        MapCache::Uncached => VIRTIO_GPU_MAP_CACHE_UNCACHED,
        MapCache::WriteCombined => VIRTIO_GPU_MAP_CACHE_WC,
    };
    let map_size = mapping.size.min(size);
    let shm = dev
        .shm
        .as_mut()
        .ok_or(CmdError::Unsupported("no host-visible region"))?;
    if let Err(e) = shm.map(offset, mapping) {
        tracing::warn!(id, offset, "virtio-gpu: transport could not map blob: {e}");
        let _ = dev.backend.unmap_blob(id);
        return Err(CmdError::Unsupported("transport mapping failed"));
    }
    dev.resources.get_mut(id)?.mapped = Some((offset, map_size));
    let mut resp = RespMapInfo::new_zeroed();
    resp.map_info = cache.into();
    Ok(Response::with(VIRTIO_GPU_RESP_OK_MAP_INFO, &resp))
}

pub fn unmap(dev: &mut GpuDevice, bytes: &[u8]) -> CmdResult {
    let (cmd, _) = decode::<ResourceUnmapBlob>(bytes, "RESOURCE_UNMAP_BLOB")?;
    let id = cmd.resource_id.get();
    let res = dev.resources.get(id)?;
    let (offset, size) = res
        .mapped
        .ok_or(CmdError::InvalidParameter("blob is not mapped"))?;
    if let Some(shm) = dev.shm.as_mut() {
        if let Err(e) = shm.unmap(offset, size) {
            tracing::warn!(id, "virtio-gpu: transport could not unmap blob: {e}");
        }
    }
    dev.resources.get_mut(id)?.mapped = None;
    dev.backend.unmap_blob(id)?;
    Ok(Response::ok())
}
