//! Devices and their queues. Queues the driver binds to a ring index (VkDeviceQueueTimelineInfoMESA)
//! are remembered for that timeline's fences.

use ash::vk::{self, Handle as _};
use tracing::warn;

use super::{served_extension, QueueInfo, OBJECT_TYPE_DEVICE, OBJECT_TYPE_QUEUE};
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
    // SAFETY: a plain query on a live physical device.
    let device_version = unsafe { instance.get_physical_device_properties(pd) }.api_version;
    // The renderer calls Vulkan 1.2 functions of every device (timeline semaphores, render
    // passes 2); 1.3 ones only where the device has them (Host::device_of_version).
    if device_version < vk::API_VERSION_1_2 {
        warn!("venus: the host device is Vulkan {device_version:#x}, older than 1.2");
        a.ret = vk::Result::ERROR_INCOMPATIBLE_DRIVER.as_raw();
        return Ok(());
    }
    let device_info = super::DeviceInfo {
        physical_device: a.physicalDevice.raw,
        // The version of the functions the host device has: the instance asked for ours.
        api_version: device_version.min(ctx.host.instance_version()),
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
    destroy_device_and_children(ctx, a.device.raw);
    Ok(())
}

/// Destroys host device `raw` with whatever it still owns, children first: a driver may destroy
/// a device with live children (a hostile one will), and a client that goes away leaves them all.
// One destroy call per object type under the one argument the SAFETY comment states.
#[allow(clippy::multiple_unsafe_ops_per_block)]
pub(crate) fn destroy_device_and_children(ctx: &Context, raw: u64) {
    let queues = ctx.host.take_queues(raw);
    for &q in &queues {
        ctx.objects.remove_handle(OBJECT_TYPE_QUEUE, q);
    }
    let Some(device) = ctx.host.remove_device(raw) else {
        return;
    };
    {
        let _queues = ctx.queue_lock.lock().unwrap();
        // SAFETY: our device; its work must be done before anything it uses goes.
        let _ = unsafe { device.device_wait_idle() };
    }
    // The timelines' fences of this device are signalled now; let them be destroyed first,
    // and the gate's timers with them.
    ctx.timelines.flush();
    {
        let mut timers = ctx.gate_timers.lock().unwrap();
        for q in &queues {
            timers.remove(q);
        }
    }
    let mut children = ctx.objects.take_owned(raw);
    if !children.is_empty() {
        tracing::debug!(
            "venus: destroying {} objects of device {raw:#x}",
            children.len()
        );
    }
    // Users before what they use; pools take their command buffers and sets with them.
    use vk::ObjectType as T;
    let order = [
        T::COMMAND_POOL,
        T::DESCRIPTOR_POOL,
        T::FENCE,
        T::SEMAPHORE,
        T::EVENT,
        T::QUERY_POOL,
        T::PIPELINE,
        T::PIPELINE_LAYOUT,
        T::DESCRIPTOR_UPDATE_TEMPLATE,
        T::DESCRIPTOR_SET_LAYOUT,
        T::SHADER_MODULE,
        T::PIPELINE_CACHE,
        T::FRAMEBUFFER,
        T::RENDER_PASS,
        T::IMAGE_VIEW,
        T::BUFFER_VIEW,
        T::SAMPLER,
        T::IMAGE,
        T::BUFFER,
        T::DEVICE_MEMORY,
    ];
    children.sort_by_key(|&(_, t, _)| {
        order
            .iter()
            .position(|o| o.as_raw() == t)
            .unwrap_or(order.len())
    });
    for (id, objtype, h) in children {
        let d = &device;
        // SAFETY: each handle is a live child of this idle device, named by no table any more,
        // destroyed once, users before what they use.
        unsafe {
            match T::from_raw(objtype) {
                T::COMMAND_POOL => d.destroy_command_pool(vk::CommandPool::from_raw(h), None),
                T::DESCRIPTOR_POOL => {
                    d.destroy_descriptor_pool(vk::DescriptorPool::from_raw(h), None)
                }
                T::FENCE => d.destroy_fence(vk::Fence::from_raw(h), None),
                T::SEMAPHORE => d.destroy_semaphore(vk::Semaphore::from_raw(h), None),
                T::EVENT => d.destroy_event(vk::Event::from_raw(h), None),
                T::QUERY_POOL => d.destroy_query_pool(vk::QueryPool::from_raw(h), None),
                T::PIPELINE => d.destroy_pipeline(vk::Pipeline::from_raw(h), None),
                T::PIPELINE_LAYOUT => {
                    d.destroy_pipeline_layout(vk::PipelineLayout::from_raw(h), None)
                }
                T::DESCRIPTOR_UPDATE_TEMPLATE => d.destroy_descriptor_update_template(
                    vk::DescriptorUpdateTemplate::from_raw(h),
                    None,
                ),
                T::DESCRIPTOR_SET_LAYOUT => {
                    d.destroy_descriptor_set_layout(vk::DescriptorSetLayout::from_raw(h), None)
                }
                T::SHADER_MODULE => d.destroy_shader_module(vk::ShaderModule::from_raw(h), None),
                T::PIPELINE_CACHE => d.destroy_pipeline_cache(vk::PipelineCache::from_raw(h), None),
                T::FRAMEBUFFER => d.destroy_framebuffer(vk::Framebuffer::from_raw(h), None),
                T::RENDER_PASS => d.destroy_render_pass(vk::RenderPass::from_raw(h), None),
                T::IMAGE_VIEW => d.destroy_image_view(vk::ImageView::from_raw(h), None),
                T::BUFFER_VIEW => d.destroy_buffer_view(vk::BufferView::from_raw(h), None),
                T::SAMPLER => d.destroy_sampler(vk::Sampler::from_raw(h), None),
                T::IMAGE => d.destroy_image(vk::Image::from_raw(h), None),
                T::BUFFER => d.destroy_buffer(vk::Buffer::from_raw(h), None),
                T::DEVICE_MEMORY => {
                    d.free_memory(vk::DeviceMemory::from_raw(h), None);
                    ctx.memory_blobs.lock().unwrap().remove(&id);
                    ctx.memory_charges.lock().unwrap().remove(&id);
                }
                T::COMMAND_BUFFER => ctx.host.forget_command_buffer(h),
                T::DESCRIPTOR_SET => ctx.host.forget_descriptor_set(h),
                other => warn!("venus: device {raw:#x} left a {other:?} we cannot destroy"),
            }
        }
    }
    // SAFETY: idle, childless, and no table refers to it any more.
    unsafe { device.destroy_device(None) };
}

fn register_queue(
    ctx: &Context,
    id: u64,
    queue: vk::Queue,
    info: QueueInfo,
) -> Result<(), RenderError> {
    if queue == vk::Queue::null() {
        return Err(RenderError::Invalid("the host has no such queue".into()));
    }
    ctx.objects
        .insert_or_same(id, OBJECT_TYPE_QUEUE, queue.as_raw())?;
    ctx.host.add_queue(queue.as_raw(), info);
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
    let info = QueueInfo {
        device: a.device.raw,
        ring_idx: None,
        family: a.queueFamilyIndex,
    };
    register_queue(ctx, id, queue, info)
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
    let queue_info = QueueInfo {
        device: a.device.raw,
        ring_idx,
        family: info.queueFamilyIndex,
    };
    register_queue(ctx, id, queue, queue_info)
}

pub fn device_wait_idle(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDeviceWaitIdle_args,
) -> Result<(), RenderError> {
    let device = ctx.host.device(a.device.raw)?;
    let _queues = ctx.queue_lock.lock().unwrap();
    // SAFETY: a live device, its queues held.
    a.ret = unsafe { (device.fp_v1_0().device_wait_idle)(device.handle()) }.as_raw();
    Ok(())
}
