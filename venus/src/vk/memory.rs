//! Device memory. Host-visible memory is allocated by importing a memfd of ours
//! (VK_EXT_external_memory_host), so the blob the driver maps is that memfd: one copy of the
//! bytes, coherent on both sides, whatever fd types the host driver exports. A context resource
//! (VkImportMemoryResourceInfoMESA) is imported the same way, from its own mapping.

use std::sync::Arc;

use ash::vk::{self, Handle as _};

use super::object::{create, destroy, find_in_chain, remove_from_chain};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
    resource::SharedMemory,
};

pub fn allocate_memory(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkAllocateMemory_args,
) -> Result<(), RenderError> {
    let mut info = *a.pAllocateInfo.ok_or(RenderError::Fatal)?;
    let dev_info = ctx.host.device_info(a.device.raw)?;
    let flags = ctx
        .host
        .memory_type_flags(a.device.raw, info.memoryTypeIndex)?;
    // SAFETY: the decoder's chain, in this command's arena.
    let import_resource = unsafe {
        find_in_chain::<VkImportMemoryResourceInfoMESA>(
            info.pNext,
            stype::VkImportMemoryResourceInfoMESA,
        )
    }
    .map(|r| r.resourceId);
    // SAFETY: as above. An export request cannot combine with a host-pointer import, and the
    // resource import is ours to do, not the host's.
    info.pNext = unsafe {
        remove_from_chain(
            info.pNext,
            &[
                stype::VkExportMemoryAllocateInfo,
                stype::VkImportMemoryResourceInfoMESA,
            ],
        )
    };
    // The pages the memory is imported from: a context resource's, or for host-visible memory
    // a memfd of ours.
    let shm = if let Some(resource) = import_resource {
        // The resource's own pages become the memory: all of it, or the driver's error.
        let mem = match ctx.resource(resource) {
            Ok(m) if dev_info.host_pointer_import => m,
            _ => {
                tracing::warn!("venus: cannot import resource {resource} as device memory");
                a.ret = vk::Result::ERROR_INVALID_EXTERNAL_HANDLE.as_raw();
                return Ok(());
            }
        };
        let fits = info
            .allocationSize
            .checked_next_multiple_of(dev_info.host_pointer_alignment)
            .is_some_and(|s| s > 0 && s <= mem.size() as u64);
        if !fits {
            a.ret = vk::Result::ERROR_INVALID_EXTERNAL_HANDLE.as_raw();
            return Ok(());
        }
        info.allocationSize = info
            .allocationSize
            .next_multiple_of(dev_info.host_pointer_alignment);
        Some(mem)
    } else if flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE) && dev_info.host_pointer_import
    {
        let align = dev_info.host_pointer_alignment;
        let size = info
            .allocationSize
            .checked_next_multiple_of(align)
            .filter(|&s| s > 0);
        let Some(size) = size else {
            a.ret = vk::Result::ERROR_OUT_OF_DEVICE_MEMORY.as_raw();
            return Ok(());
        };
        let mem = match SharedMemory::new(size as usize) {
            Ok(m) => Arc::new(m),
            Err(_) => {
                a.ret = vk::Result::ERROR_OUT_OF_HOST_MEMORY.as_raw();
                return Ok(());
            }
        };
        info.allocationSize = size;
        Some(mem)
    } else {
        None
    };
    let mut import = vk::ImportMemoryHostPointerInfoEXT::default();
    if let Some(mem) = &shm {
        import = import
            .handle_type(vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT)
            .host_pointer(mem.host_pointer());
        import.p_next = info.pNext;
        info.pNext = (&import as *const vk::ImportMemoryHostPointerInfoEXT).cast();
    }
    // What the slice's quota holds for it, given back when it is freed (or the context goes).
    let charge = match ctx.limits.charge(info.allocationSize) {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!("venus: vkAllocateMemory: {e}");
            a.ret = vk::Result::ERROR_OUT_OF_DEVICE_MEMORY.as_raw();
            return Ok(());
        }
    };
    let id = a.pMemory.first().copied().unwrap_or(0);
    create(
        ctx,
        a.device,
        a.pMemory,
        vk::ObjectType::DEVICE_MEMORY,
        &mut a.ret,
        // SAFETY: the allocate info mirrors the ash struct; its chain is the decoder's plus our
        // host-pointer import, whose memfd mapping outlives the allocation (kept below).
        |d, out: &mut vk::DeviceMemory| unsafe {
            (d.fp_v1_0().allocate_memory)(
                d.handle(),
                (&info as *const VkMemoryAllocateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: freeing the memory just allocated.
        |d, h| unsafe { d.free_memory(h, None) },
    )?;
    if a.ret != vk::Result::SUCCESS.as_raw() {
        return Ok(());
    }
    if let Some(mem) = shm {
        ctx.memory_blobs.lock().unwrap().insert(id, mem);
    }
    if let Some(charge) = charge {
        ctx.memory_charges.lock().unwrap().insert(id, charge);
    }
    Ok(())
}

pub fn free_memory(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkFreeMemory_args,
) -> Result<(), RenderError> {
    destroy(
        ctx,
        a.device,
        a.memory,
        vk::ObjectType::DEVICE_MEMORY,
        |d, h| {
            // SAFETY: live memory of this device; the driver no longer uses it.
            unsafe { d.free_memory(h, None) }
        },
    )?;
    // Any blob of it keeps its own reference to the memfd.
    ctx.memory_blobs.lock().unwrap().remove(&a.memory.id);
    ctx.memory_charges.lock().unwrap().remove(&a.memory.id);
    Ok(())
}

/// The memory types a context resource can be imported as (its pages, through
/// VK_EXT_external_memory_host), and with VkMemoryResourceAllocationSizePropertiesMESA its size.
pub fn get_memory_resource_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetMemoryResourcePropertiesMESA_args,
) -> Result<(), RenderError> {
    let dev_info = ctx.host.device_info(a.device.raw)?;
    let props = a
        .pMemoryResourceProperties
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    let Ok(mem) = ctx.resource(a.resourceId) else {
        a.ret = vk::Result::ERROR_INVALID_EXTERNAL_HANDLE.as_raw();
        return Ok(());
    };
    if !dev_info.host_pointer_import {
        a.ret = vk::Result::ERROR_INVALID_EXTERNAL_HANDLE.as_raw();
        return Ok(());
    }
    let device = ctx.host.device(a.device.raw)?;
    let instance = ctx.host.instance_of(dev_info.physical_device)?;
    let ext = ash::ext::external_memory_host::Device::new(&instance, &device);
    let mut host = vk::MemoryHostPointerPropertiesEXT::default();
    // SAFETY: the resource's mapping, live while the context holds it.
    let r = unsafe {
        (ext.fp().get_memory_host_pointer_properties_ext)(
            device.handle(),
            vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT,
            mem.host_pointer(),
            &mut host,
        )
    };
    if r != vk::Result::SUCCESS {
        a.ret = r.as_raw();
        return Ok(());
    }
    props.memoryTypeBits = host.memory_type_bits;
    // SAFETY: the decoder's output chain, in this command's arena.
    let size = unsafe {
        find_in_chain::<VkMemoryResourceAllocationSizePropertiesMESA>(
            props.pNext,
            stype::VkMemoryResourceAllocationSizePropertiesMESA,
        )
    };
    if let Some(size) = size {
        let whole = mem.size() as u64;
        let usable = whole - whole % dev_info.host_pointer_alignment.max(1);
        // SAFETY: the node is the decoder's, writable, in this command's arena.
        unsafe {
            (*(size as *const VkMemoryResourceAllocationSizePropertiesMESA).cast_mut())
                .allocationSize = usable
        };
    }
    a.ret = vk::Result::SUCCESS.as_raw();
    Ok(())
}

pub fn get_device_memory_commitment(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceMemoryCommitment_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let Some(out) = a.pCommittedMemoryInBytes.first_mut() else {
        return Err(RenderError::Fatal);
    };
    // SAFETY: live memory; `out` is a u64 slot.
    unsafe {
        (d.fp_v1_0().get_device_memory_commitment)(
            d.handle(),
            vk::DeviceMemory::from_raw(a.memory.raw),
            out,
        )
    };
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::driver_stream::{live_context, Stream, DEVICE};
    use crate::protocol::generated::stype;
    use crate::resource::SharedMemory;

    const RESOURCE: u32 = 7;
    const REPLY: u32 = 8;

    /// vkAllocateMemory(device, {import resource}, NULL, pMemory)
    fn import(s: &mut Stream, resource: u32, size: u64, id: u64) {
        s.command(21, false).u64(DEVICE).some();
        s.u32(5).some(); // VkMemoryAllocateInfo: sType, pNext ->
        s.u32(stype::VkImportMemoryResourceInfoMESA as u32)
            .none()
            .u32(resource);
        s.u64(size).u32(0); // allocationSize, memoryTypeIndex
        s.none().some().u64(id);
    }

    #[test]
    fn a_context_resource_is_imported_as_device_memory() {
        let Some((ctx, mut cx)) = live_context("memory resource") else {
            return;
        };
        ctx.add_resource(RESOURCE, Arc::new(SharedMemory::new(64 << 10).unwrap()));
        ctx.add_resource(REPLY, Arc::new(SharedMemory::new(4096).unwrap()));
        let mut s = Stream::default();
        // vkSetReplyCommandStreamMESA({REPLY, 0, 4096})
        s.command(178, false).some().u32(REPLY).u64(0).u64(4096);
        // vkGetMemoryResourcePropertiesMESA(device, RESOURCE, {.pNext = allocation size})
        s.command(192, true).u64(DEVICE).u32(RESOURCE).some();
        s.u32(stype::VkMemoryResourcePropertiesMESA as u32).some();
        s.u32(stype::VkMemoryResourceAllocationSizePropertiesMESA as u32)
            .none();
        import(&mut s, RESOURCE, 64 << 10, 0x500);
        // Bigger than the resource, and a resource that does not exist: the driver's errors.
        import(&mut s, RESOURCE, 128 << 10, 0x501);
        import(&mut s, 99, 4096, 0x502);
        ctx.execute(&mut cx, &s.0).expect("stream runs");

        // The reply: type, ret, marker, sType, chain (marker, sType, end, allocationSize), bits.
        let mut r = [0u8; 52];
        ctx.resource(REPLY).unwrap().read(0, &mut r).unwrap();
        let word = |i: usize| u32::from_le_bytes(r[i..i + 4].try_into().unwrap());
        let dword = |i: usize| u64::from_le_bytes(r[i..i + 8].try_into().unwrap());
        assert_eq!(word(0), 192, "reply of vkGetMemoryResourcePropertiesMESA");
        assert_eq!(word(4), 0, "VK_SUCCESS");
        assert_eq!(dword(32), 0, "end of the chain");
        assert_eq!(dword(40), 64 << 10, "allocation size: the whole resource");
        assert_ne!(word(48), 0, "some memory type can import it");

        let memory = vk_object(&ctx, 0x500);
        assert!(memory.is_some(), "the import made device memory");
        assert!(vk_object(&ctx, 0x501).is_none(), "too big for the resource");
        assert!(vk_object(&ctx, 0x502).is_none(), "no such resource");
        ctx.shutdown();
    }

    fn vk_object(ctx: &crate::Context, id: u64) -> Option<u64> {
        use crate::protocol::wire::Lookup;
        ctx.objects
            .lookup(id, ash::vk::ObjectType::DEVICE_MEMORY.as_raw())
    }
}
