//! Buffers: create, destroy, memory requirements, binding, device addresses.

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_buffer,
    vkCreateBuffer_args,
    VkBufferCreateInfo,
    pBuffer,
    fp_v1_0.create_buffer,
    vk::Buffer,
    BUFFER,
    destroy_buffer
);
destroy_fn!(
    destroy_buffer,
    vkDestroyBuffer_args,
    buffer,
    BUFFER,
    destroy_buffer
);

pub fn bind_buffer_memory(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkBindBufferMemory_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live buffer and memory (looked up by the decoder); the host checks the offset.
    a.ret = unsafe {
        (d.fp_v1_0().bind_buffer_memory)(
            d.handle(),
            vk::Buffer::from_raw(a.buffer.raw),
            vk::DeviceMemory::from_raw(a.memory.raw),
            a.memoryOffset,
        )
    }
    .as_raw();
    Ok(())
}

pub fn bind_buffer_memory2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkBindBufferMemory2_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: the bind infos mirror the ash structs, counted by the decoder.
    a.ret = unsafe {
        (d.fp_v1_1().bind_buffer_memory2)(
            d.handle(),
            a.pBindInfos.len() as u32,
            a.pBindInfos.as_ptr().cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn get_buffer_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetBufferMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: a live buffer; `out` mirrors vk::MemoryRequirements.
    unsafe {
        (d.fp_v1_0().get_buffer_memory_requirements)(
            d.handle(),
            vk::Buffer::from_raw(a.buffer.raw),
            (out as *mut VkMemoryRequirements).cast(),
        )
    };
    Ok(())
}

pub fn get_buffer_memory_requirements2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetBufferMemoryRequirements2_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs; the output chain is the decoder's.
    unsafe {
        (d.fp_v1_1().get_buffer_memory_requirements2)(
            d.handle(),
            (info as *const VkBufferMemoryRequirementsInfo2).cast(),
            (out as *mut VkMemoryRequirements2).cast(),
        )
    };
    Ok(())
}

pub fn get_device_buffer_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceBufferMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx
        .host
        .device_of_version(a.device.raw, vk::API_VERSION_1_3)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    if info.pCreateInfo.is_null() {
        return Err(RenderError::Invalid(
            "VkDeviceBufferMemoryRequirements without a create info".into(),
        ));
    }
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs, decoded in the arena.
    unsafe {
        (d.fp_v1_3().get_device_buffer_memory_requirements)(
            d.handle(),
            (info as *const VkDeviceBufferMemoryRequirements).cast(),
            (out as *mut VkMemoryRequirements2).cast(),
        )
    };
    Ok(())
}

pub fn get_buffer_device_address(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetBufferDeviceAddress_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    // SAFETY: the info mirrors the ash struct; its buffer was looked up.
    a.ret = unsafe {
        (d.fp_v1_2().get_buffer_device_address)(
            d.handle(),
            (info as *const VkBufferDeviceAddressInfo).cast(),
        )
    };
    Ok(())
}
