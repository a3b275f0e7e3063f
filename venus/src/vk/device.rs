//! Devices and their queues. Queues the driver binds to a ring index (VkDeviceQueueTimelineInfoMESA)
//! are remembered for that timeline's fences.

use ash::vk::{self, Handle as _};
use tracing::warn;

use super::{served_extension, OBJECT_TYPE_DEVICE, OBJECT_TYPE_QUEUE};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_device(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateDevice_args,
) -> Result<(), RenderError> {
    let instance = ctx.host.instance_of(a.physicalDevice.raw)?;
    let id = a.pDevice.first().copied().unwrap_or(0);
    let mut info = *a.pCreateInfo.ok_or(RenderError::Fatal)?;
    // Only extensions the protocol serves reach the host device.
    let names: Vec<*const i8> = (0..info.enabledExtensionCount as usize)
        .map(|i| {
            // SAFETY: the decoder built ppEnabledExtensionNames with enabledExtensionCount
            // NUL-terminated strings in this command's arena, so `i` is in bounds.
            let slot = unsafe { info.ppEnabledExtensionNames.add(i) };
            // SAFETY: as above, the slot holds a string pointer.
            unsafe { *slot }
        })
        .filter(|&n| {
            // SAFETY: as above, `n` is a NUL-terminated string.
            let s = unsafe { std::ffi::CStr::from_ptr(n) };
            let ok = served_extension(&s.to_bytes().iter().map(|&b| b as i8).collect::<Vec<_>>());
            if !ok {
                warn!("venus: dropping unserved device extension {s:?}");
            }
            ok
        })
        .collect();
    // Host-visible memory is a memfd we import (so the driver can map it): the renderer's own
    // VK_EXT_external_memory_host, where the host has it.
    let pd = vk::PhysicalDevice::from_raw(a.physicalDevice.raw);
    // SAFETY: `pd` belongs to `instance`.
    let host_exts =
        unsafe { instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
    let host_pointer = host_exts
        .iter()
        .any(|e| e.extension_name_as_c_str() == Ok(ash::ext::external_memory_host::NAME));
    let mut names = names;
    if host_pointer
        && !names.iter().any(|&n| {
            // SAFETY: every entry is a NUL-terminated string (arena or static).
            let s = unsafe { std::ffi::CStr::from_ptr(n) };
            s == ash::ext::external_memory_host::NAME
        })
    {
        names.push(ash::ext::external_memory_host::NAME.as_ptr());
    }
    let mut host_props = vk::PhysicalDeviceExternalMemoryHostPropertiesEXT::default();
    if host_pointer {
        let mut props2 = vk::PhysicalDeviceProperties2::default().push_next(&mut host_props);
        // SAFETY: a plain query on a live physical device.
        unsafe { instance.get_physical_device_properties2(pd, &mut props2) };
    }
    let device_info = super::DeviceInfo {
        physical_device: a.physicalDevice.raw,
        host_pointer_import: host_pointer,
        host_pointer_alignment: host_props.min_imported_host_pointer_alignment.max(4096),
    };
    info.enabledExtensionCount = names.len() as u32;
    info.ppEnabledExtensionNames = names.as_ptr();
    info.enabledLayerCount = 0;
    info.ppEnabledLayerNames = std::ptr::null();
    let mut raw = vk::Device::null();
    // SAFETY: VkDeviceCreateInfo mirrors the ash type (asserted at build); its pointers are into
    // this command's arena or `names`, which outlives the call.
    let r = unsafe {
        (instance.fp_v1_0().create_device)(
            vk::PhysicalDevice::from_raw(a.physicalDevice.raw),
            (&info as *const VkDeviceCreateInfo).cast(),
            std::ptr::null(),
            &mut raw,
        )
    };
    a.ret = r.as_raw();
    if r != vk::Result::SUCCESS {
        return Ok(());
    }
    // SAFETY: `raw` was just created from `instance`.
    let device = unsafe { ash::Device::load(instance.fp_v1_0(), raw) };
    if let Err(e) = ctx.objects.insert(id, OBJECT_TYPE_DEVICE, raw.as_raw()) {
        // SAFETY: the device was just created and is referenced nowhere else.
        unsafe { device.destroy_device(None) };
        return Err(e.into());
    }
    ctx.host.add_device(&instance, device, device_info);
    Ok(())
}

pub fn destroy_device(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyDevice_args,
) -> Result<(), RenderError> {
    if a.device.id == 0 {
        return Ok(());
    }
    ctx.objects.remove(a.device.id, OBJECT_TYPE_DEVICE)?;
    for q in ctx.host.take_queues(a.device.raw) {
        ctx.objects.remove_handle(OBJECT_TYPE_QUEUE, q);
    }
    if let Some(device) = ctx.host.remove_device(a.device.raw) {
        // SAFETY: the driver destroyed its device; no table refers to the host one any more.
        unsafe { device.destroy_device(None) };
    }
    Ok(())
}

fn register_queue(
    ctx: &Context,
    device: u64,
    id: u64,
    queue: vk::Queue,
    ring_idx: Option<u32>,
) -> Result<(), RenderError> {
    if queue == vk::Queue::null() {
        return Err(RenderError::Invalid("the host has no such queue".into()));
    }
    ctx.objects
        .insert_or_same(id, OBJECT_TYPE_QUEUE, queue.as_raw())?;
    ctx.host.add_queue(device, queue.as_raw(), ring_idx);
    Ok(())
}

pub fn get_device_queue(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceQueue_args,
) -> Result<(), RenderError> {
    let device = ctx.host.device(a.device.raw)?;
    let id = a.pQueue.first().copied().unwrap_or(0);
    let mut queue = vk::Queue::null();
    // SAFETY: a live device; an out-of-range family or index makes the host return null (checked).
    unsafe {
        (device.fp_v1_0().get_device_queue)(
            device.handle(),
            a.queueFamilyIndex,
            a.queueIndex,
            &mut queue,
        )
    };
    register_queue(ctx, a.device.raw, id, queue, None)
}

pub fn get_device_queue2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceQueue2_args,
) -> Result<(), RenderError> {
    let device = ctx.host.device(a.device.raw)?;
    let id = a.pQueue.first().copied().unwrap_or(0);
    let mut info = *a.pQueueInfo.ok_or(RenderError::Fatal)?;
    // Our VkDeviceQueueTimelineInfoMESA is for us, not the host: take it out of the chain.
    let mut ring_idx = None;
    let mut p = info.pNext;
    while !p.is_null() {
        // SAFETY: decoder-built chain in this command's arena (see context.rs).
        let base = unsafe { &*(p as *const BaseStructure) };
        if base.sType == stype::VkDeviceQueueTimelineInfoMESA {
            // SAFETY: as above; the sType names the node's type.
            ring_idx = Some(unsafe { &*(p as *const VkDeviceQueueTimelineInfoMESA) }.ringIdx);
        }
        p = base.pNext;
    }
    // In this registry nothing but ours extends VkDeviceQueueInfo2, so the host gets no chain.
    info.pNext = std::ptr::null();
    let mut queue = vk::Queue::null();
    // SAFETY: mirrors the ash struct (asserted); a live device.
    unsafe {
        (device.fp_v1_1().get_device_queue2)(
            device.handle(),
            (&info as *const VkDeviceQueueInfo2).cast(),
            &mut queue,
        )
    };
    register_queue(ctx, a.device.raw, id, queue, ring_idx)
}

pub fn device_wait_idle(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDeviceWaitIdle_args,
) -> Result<(), RenderError> {
    let device = ctx.host.device(a.device.raw)?;
    // SAFETY: a live device.
    a.ret = unsafe { (device.fp_v1_0().device_wait_idle)(device.handle()) }.as_raw();
    Ok(())
}
