//! Fences, semaphores (binary and timeline) and events.

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_fence,
    vkCreateFence_args,
    VkFenceCreateInfo,
    pFence,
    fp_v1_0.create_fence,
    vk::Fence,
    FENCE,
    destroy_fence
);
destroy_fn!(
    destroy_fence,
    vkDestroyFence_args,
    fence,
    FENCE,
    destroy_fence
);
create_fn!(
    create_semaphore,
    vkCreateSemaphore_args,
    VkSemaphoreCreateInfo,
    pSemaphore,
    fp_v1_0.create_semaphore,
    vk::Semaphore,
    SEMAPHORE,
    destroy_semaphore
);
destroy_fn!(
    destroy_semaphore,
    vkDestroySemaphore_args,
    semaphore,
    SEMAPHORE,
    destroy_semaphore
);
create_fn!(
    create_event,
    vkCreateEvent_args,
    VkEventCreateInfo,
    pEvent,
    fp_v1_0.create_event,
    vk::Event,
    EVENT,
    destroy_event
);
destroy_fn!(
    destroy_event,
    vkDestroyEvent_args,
    event,
    EVENT,
    destroy_event
);

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
