//! Command pools and command buffers (allocation and recording state; vkCmd* live in cmd.rs).

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_command_pool,
    vkCreateCommandPool_args,
    VkCommandPoolCreateInfo,
    pCommandPool,
    fp_v1_0.create_command_pool,
    vk::CommandPool,
    COMMAND_POOL,
    destroy_command_pool
);

pub fn destroy_command_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyCommandPool_args,
) -> Result<(), RenderError> {
    // Buffers allocated from the pool go with it.
    for cb in ctx.host.take_command_buffers(a.commandPool.raw) {
        ctx.objects
            .remove_handle(vk::ObjectType::COMMAND_BUFFER.as_raw(), cb);
    }
    // SAFETY: a live pool of this device.
    destroy(
        ctx,
        a.device,
        a.commandPool,
        vk::ObjectType::COMMAND_POOL,
        |d, h| unsafe { d.destroy_command_pool(h, None) },
    )
}

pub fn reset_command_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkResetCommandPool_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live pool of this device.
    a.ret = unsafe {
        (d.fp_v1_0().reset_command_pool)(
            d.handle(),
            vk::CommandPool::from_raw(a.commandPool.raw),
            vk::CommandPoolResetFlags::from_raw(a.flags),
        )
    }
    .as_raw();
    Ok(())
}

pub fn trim_command_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkTrimCommandPool_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live pool of this device.
    unsafe {
        (d.fp_v1_1().trim_command_pool)(
            d.handle(),
            vk::CommandPool::from_raw(a.commandPool.raw),
            vk::CommandPoolTrimFlags::from_raw(a.flags),
        )
    };
    Ok(())
}

pub fn allocate_command_buffers(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkAllocateCommandBuffers_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pAllocateInfo.ok_or(RenderError::Fatal)?;
    if a.pCommandBuffers.len() != info.commandBufferCount as usize {
        return Err(RenderError::Invalid(
            "command buffer ids do not match commandBufferCount".into(),
        ));
    }
    let mut raw = vec![vk::CommandBuffer::null(); a.pCommandBuffers.len()];
    // SAFETY: the allocate info mirrors the ash struct; `raw` has commandBufferCount slots.
    let r = unsafe {
        (d.fp_v1_0().allocate_command_buffers)(
            d.handle(),
            (info as *const VkCommandBufferAllocateInfo).cast(),
            raw.as_mut_ptr(),
        )
    };
    a.ret = r.as_raw();
    if r != vk::Result::SUCCESS {
        return Ok(());
    }
    for (i, (&id, cb)) in a.pCommandBuffers.iter().zip(&raw).enumerate() {
        if let Err(e) = ctx.objects.insert_owned(
            id,
            vk::ObjectType::COMMAND_BUFFER.as_raw(),
            cb.as_raw(),
            a.device.raw,
        ) {
            for &done in &a.pCommandBuffers[..i] {
                let _ = ctx
                    .objects
                    .remove(done, vk::ObjectType::COMMAND_BUFFER.as_raw());
            }
            // SAFETY: returning the buffers just allocated from this pool.
            unsafe { d.free_command_buffers(vk::CommandPool::from_raw(info.commandPool), &raw) };
            return Err(e.into());
        }
        ctx.host
            .add_command_buffer(cb.as_raw(), a.device.raw, info.commandPool);
    }
    Ok(())
}

pub fn free_command_buffers(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkFreeCommandBuffers_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let raw: Vec<vk::CommandBuffer> = a
        .pCommandBuffers
        .iter()
        .filter(|&&h| h != 0)
        .map(|&h| vk::CommandBuffer::from_raw(h))
        .collect();
    for &h in &raw {
        ctx.host.forget_command_buffer(h.as_raw());
        ctx.objects
            .remove_handle(vk::ObjectType::COMMAND_BUFFER.as_raw(), h.as_raw());
    }
    // SAFETY: buffers of this pool, now out of the table.
    unsafe { d.free_command_buffers(vk::CommandPool::from_raw(a.commandPool.raw), &raw) };
    Ok(())
}

/// The device functions for a command buffer (found through its pool's device).
pub(crate) fn cmd_device(
    ctx: &Context,
    cb: &Handle,
) -> Result<std::sync::Arc<ash::Device>, RenderError> {
    ctx.host.device_of_command_buffer(cb.raw)
}

pub fn begin_command_buffer(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkBeginCommandBuffer_args,
) -> Result<(), RenderError> {
    let d = cmd_device(ctx, &a.commandBuffer)?;
    let info = a.pBeginInfo.ok_or(RenderError::Fatal)?;
    // SAFETY: a live command buffer; the begin info mirrors the ash struct.
    a.ret = unsafe {
        (d.fp_v1_0().begin_command_buffer)(
            vk::CommandBuffer::from_raw(a.commandBuffer.raw),
            (info as *const VkCommandBufferBeginInfo).cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn end_command_buffer(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEndCommandBuffer_args,
) -> Result<(), RenderError> {
    let d = cmd_device(ctx, &a.commandBuffer)?;
    // SAFETY: a live command buffer.
    a.ret = unsafe {
        (d.fp_v1_0().end_command_buffer)(vk::CommandBuffer::from_raw(a.commandBuffer.raw))
    }
    .as_raw();
    Ok(())
}

pub fn reset_command_buffer(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkResetCommandBuffer_args,
) -> Result<(), RenderError> {
    let d = cmd_device(ctx, &a.commandBuffer)?;
    // SAFETY: a live command buffer.
    a.ret = unsafe {
        (d.fp_v1_0().reset_command_buffer)(
            vk::CommandBuffer::from_raw(a.commandBuffer.raw),
            vk::CommandBufferResetFlags::from_raw(a.flags),
        )
    }
    .as_raw();
    Ok(())
}
