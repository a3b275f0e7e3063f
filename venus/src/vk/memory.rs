//! Device memory. Host-visible memory is allocated by importing a memfd of ours
//! (VK_EXT_external_memory_host), so the blob the driver maps is that memfd: one copy of the
//! bytes, coherent on both sides, whatever fd types the host driver exports.

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
    // SAFETY: the chain is the decoder's, in this command's arena. Resource imports are not
    // served, and an export request cannot combine with our host-pointer import.
    info.pNext = unsafe { remove_from_chain(info.pNext, &[stype::VkExportMemoryAllocateInfo]) };
    // SAFETY: the decoder's chain, in this command's arena.
    let import_resource = unsafe {
        find_in_chain::<VkImportMemoryResourceInfoMESA>(
            info.pNext,
            stype::VkImportMemoryResourceInfoMESA,
        )
    };
    if import_resource.is_some() {
        a.ret = vk::Result::ERROR_INVALID_EXTERNAL_HANDLE.as_raw();
        return Ok(());
    }
    let mut shm = None;
    let mut import = vk::ImportMemoryHostPointerInfoEXT::default();
    if flags.contains(vk::MemoryPropertyFlags::HOST_VISIBLE) && dev_info.host_pointer_import {
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
        import = import
            .handle_type(vk::ExternalMemoryHandleTypeFlags::HOST_ALLOCATION_EXT)
            .host_pointer(mem.host_pointer());
        import.p_next = info.pNext;
        info.pNext = (&import as *const vk::ImportMemoryHostPointerInfoEXT).cast();
        info.allocationSize = size;
        shm = Some(mem);
    }
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
    if let (Some(mem), true) = (shm, a.ret == vk::Result::SUCCESS.as_raw()) {
        ctx.memory_blobs.lock().unwrap().insert(id, mem);
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
