//! Fences, semaphores (binary and timeline) and events.

use ash::vk::{self, Handle as _};

use super::object::{create, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_fence(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateFence_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pFence,
        vk::ObjectType::FENCE,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct (asserted) and lives in the arena.
        |d, out: &mut vk::Fence| unsafe {
            (d.fp_v1_0().create_fence)(
                d.handle(),
                (info as *const VkFenceCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the fence just created.
        |d, h| unsafe { d.destroy_fence(h, None) },
    )
}

pub fn destroy_fence(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyFence_args,
) -> Result<(), RenderError> {
    // SAFETY: a live fence of this device.
    destroy(
        ctx,
        a.device,
        a.fence,
        vk::ObjectType::FENCE,
        |d, h| unsafe { d.destroy_fence(h, None) },
    )
}

fn fences(raw: &[u64]) -> Vec<vk::Fence> {
    raw.iter().map(|&f| vk::Fence::from_raw(f)).collect()
}

pub fn reset_fences(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkResetFences_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let f = fences(a.pFences);
    // SAFETY: live fences of this device (the decoder looked each one up).
    a.ret = unsafe { (d.fp_v1_0().reset_fences)(d.handle(), f.len() as u32, f.as_ptr()) }.as_raw();
    Ok(())
}

pub fn get_fence_status(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetFenceStatus_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live fence of this device.
    a.ret = unsafe { (d.fp_v1_0().get_fence_status)(d.handle(), vk::Fence::from_raw(a.fence.raw)) }
        .as_raw();
    Ok(())
}

pub fn wait_for_fences(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkWaitForFences_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let f = fences(a.pFences);
    // SAFETY: live fences of this device.
    a.ret = unsafe {
        (d.fp_v1_0().wait_for_fences)(d.handle(), f.len() as u32, f.as_ptr(), a.waitAll, a.timeout)
    }
    .as_raw();
    Ok(())
}

pub fn create_semaphore(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateSemaphore_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pSemaphore,
        vk::ObjectType::SEMAPHORE,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct (asserted) and lives in the arena.
        |d, out: &mut vk::Semaphore| unsafe {
            (d.fp_v1_0().create_semaphore)(
                d.handle(),
                (info as *const VkSemaphoreCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the semaphore just created.
        |d, h| unsafe { d.destroy_semaphore(h, None) },
    )
}

pub fn destroy_semaphore(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroySemaphore_args,
) -> Result<(), RenderError> {
    // SAFETY: a live semaphore of this device.
    destroy(
        ctx,
        a.device,
        a.semaphore,
        vk::ObjectType::SEMAPHORE,
        |d, h| unsafe { d.destroy_semaphore(h, None) },
    )
}

pub fn get_semaphore_counter_value(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetSemaphoreCounterValue_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let Some(value) = a.pValue.first_mut() else {
        return Err(RenderError::Fatal);
    };
    // SAFETY: a live semaphore; `value` is a u64 slot.
    a.ret = unsafe {
        (d.fp_v1_2().get_semaphore_counter_value)(
            d.handle(),
            vk::Semaphore::from_raw(a.semaphore.raw),
            value,
        )
    }
    .as_raw();
    Ok(())
}

pub fn signal_semaphore(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkSignalSemaphore_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pSignalInfo.ok_or(RenderError::Fatal)?;
    // SAFETY: the signal info mirrors the ash struct; its semaphore was looked up.
    a.ret = unsafe {
        (d.fp_v1_2().signal_semaphore)(d.handle(), (info as *const VkSemaphoreSignalInfo).cast())
    }
    .as_raw();
    Ok(())
}

pub fn wait_semaphores(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkWaitSemaphores_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pWaitInfo.ok_or(RenderError::Fatal)?;
    // SAFETY: the wait info mirrors the ash struct; its arrays are decoded and counted.
    a.ret = unsafe {
        (d.fp_v1_2().wait_semaphores)(
            d.handle(),
            (info as *const VkSemaphoreWaitInfo).cast(),
            a.timeout,
        )
    }
    .as_raw();
    Ok(())
}

pub fn create_event(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateEvent_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pEvent,
        vk::ObjectType::EVENT,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct (asserted) and lives in the arena.
        |d, out: &mut vk::Event| unsafe {
            (d.fp_v1_0().create_event)(
                d.handle(),
                (info as *const VkEventCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the event just created.
        |d, h| unsafe { d.destroy_event(h, None) },
    )
}

pub fn destroy_event(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyEvent_args,
) -> Result<(), RenderError> {
    // SAFETY: a live event of this device.
    destroy(
        ctx,
        a.device,
        a.event,
        vk::ObjectType::EVENT,
        |d, h| unsafe { d.destroy_event(h, None) },
    )
}

pub fn get_event_status(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetEventStatus_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live event.
    a.ret = unsafe { (d.fp_v1_0().get_event_status)(d.handle(), vk::Event::from_raw(a.event.raw)) }
        .as_raw();
    Ok(())
}

pub fn set_event(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkSetEvent_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live event.
    a.ret =
        unsafe { (d.fp_v1_0().set_event)(d.handle(), vk::Event::from_raw(a.event.raw)) }.as_raw();
    Ok(())
}

pub fn reset_event(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkResetEvent_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live event.
    a.ret =
        unsafe { (d.fp_v1_0().reset_event)(d.handle(), vk::Event::from_raw(a.event.raw)) }.as_raw();
    Ok(())
}
