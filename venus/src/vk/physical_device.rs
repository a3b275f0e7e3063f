//! Physical devices: enumeration (only the selected devices), and the property, feature, format
//! and extension queries, passed to the host with the driver's (decoded) output chains.

use ash::vk::{self, Handle as _};

use super::{
    instance::{copy_extension, fill_counted},
    query_count, served_extension, OBJECT_TYPE_PHYSICAL_DEVICE,
};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn enumerate_physical_devices(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumeratePhysicalDevices_args,
) -> Result<(), RenderError> {
    let instance = ctx.host.instance(a.instance.raw)?;
    let devices = ctx.host.selected_devices(&instance);
    let ids = a.pPhysicalDevices.to_vec();
    for (pd, &id) in devices.iter().zip(&ids) {
        // The driver may enumerate again with the same ids.
        ctx.objects
            .insert_or_same(id, OBJECT_TYPE_PHYSICAL_DEVICE, pd.as_raw())?;
    }
    a.ret = fill_counted(
        &devices,
        a.pPhysicalDeviceCount,
        a.pPhysicalDevices,
        |_, _| {},
    );
    Ok(())
}

pub fn enumerate_physical_device_groups(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumeratePhysicalDeviceGroups_args,
) -> Result<(), RenderError> {
    let instance = ctx.host.instance(a.instance.raw)?;
    let devices = ctx.host.selected_devices(&instance);
    // One group per exposed device: groups of several would need every member exposed.
    let groups: Vec<u64> = devices
        .iter()
        .map(|pd| {
            ctx.objects
                .id_of(OBJECT_TYPE_PHYSICAL_DEVICE, pd.as_raw())
                .unwrap_or(0)
        })
        .collect();
    a.ret = fill_counted(
        &groups,
        a.pPhysicalDeviceGroupCount,
        a.pPhysicalDeviceGroupProperties,
        |&id, g| {
            g.physicalDeviceCount = 1;
            g.physicalDevices = [0; 32];
            g.physicalDevices[0] = id;
            g.subsetAllocation = 0;
        },
    );
    Ok(())
}

/// A decoded input struct as the host's pointer (null when the driver sent none).
fn input<T, U>(s: Option<&T>) -> *const U {
    s.map_or(std::ptr::null(), |s| (s as *const T).cast())
}

/// The host instance functions for a physical device argument.
fn fns(ctx: &Context, pd: Handle) -> Result<(ash::Instance, vk::PhysicalDevice), RenderError> {
    Ok((
        ctx.host.instance_of(pd.raw)?,
        vk::PhysicalDevice::from_raw(pd.raw),
    ))
}

// Each query below passes the driver's output struct (a generated mirror of the ash type, layout
// asserted at build time, in this command's arena, its pNext chain only decoded structs) to the
// host function, which fills it.

pub fn get_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_0().get_physical_device_properties)(pd, mut_ptr_or_null(a.pProperties).cast())
    };
    Ok(())
}

pub fn get_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1().get_physical_device_properties2)(pd, mut_ptr_or_null(a.pProperties).cast())
    };
    Ok(())
}

pub fn get_features(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceFeatures_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe { (i.fp_v1_0().get_physical_device_features)(pd, mut_ptr_or_null(a.pFeatures).cast()) };
    Ok(())
}

pub fn get_features2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceFeatures2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe { (i.fp_v1_1().get_physical_device_features2)(pd, mut_ptr_or_null(a.pFeatures).cast()) };
    Ok(())
}

pub fn get_queue_family_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceQueueFamilyProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pQueueFamilyPropertyCount, a.pQueueFamilyProperties) else {
        return Ok(());
    };
    // SAFETY: see the note above; `count` is no more than the array the driver made room for.
    unsafe {
        (i.fp_v1_0().get_physical_device_queue_family_properties)(
            pd,
            count,
            mut_ptr_or_null(a.pQueueFamilyProperties).cast(),
        )
    };
    Ok(())
}

/// VK_EXT_calibrated_timestamps: the host's time domains for this device.
pub fn get_calibrateable_time_domains(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceCalibrateableTimeDomainsEXT_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pTimeDomainCount, a.pTimeDomains) else {
        return Ok(());
    };
    // Looked up by hand: ash would make a missing function one that panics, and a hostile
    // driver may call this on a host without the extension.
    // SAFETY: a live instance and a NUL-terminated name.
    let f = unsafe {
        ctx.host.entry().get_instance_proc_addr(
            i.handle(),
            c"vkGetPhysicalDeviceCalibrateableTimeDomainsEXT".as_ptr(),
        )
    };
    let Some(f) = f else {
        a.ret = vk::Result::ERROR_EXTENSION_NOT_PRESENT.as_raw();
        return Ok(());
    };
    // SAFETY: the loader returned the function of this name, whose C signature this is.
    let f = unsafe {
        std::mem::transmute::<
            unsafe extern "system" fn(),
            vk::PFN_vkGetPhysicalDeviceCalibrateableTimeDomainsKHR,
        >(f)
    };
    // SAFETY: see the note above; `count` is no more than the array the driver made room for.
    a.ret = unsafe { f(pd, count, mut_ptr_or_null(a.pTimeDomains).cast()) }.as_raw();
    Ok(())
}

pub fn get_queue_family_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceQueueFamilyProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pQueueFamilyPropertyCount, a.pQueueFamilyProperties) else {
        return Ok(());
    };
    // SAFETY: see the note above; `count` is no more than the array the driver made room for.
    unsafe {
        (i.fp_v1_1().get_physical_device_queue_family_properties2)(
            pd,
            count,
            mut_ptr_or_null(a.pQueueFamilyProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_memory_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceMemoryProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_0().get_physical_device_memory_properties)(
            pd,
            mut_ptr_or_null(a.pMemoryProperties).cast(),
        )
    };
    if let Some(p) = a.pMemoryProperties.first_mut() {
        clamp_heaps_to_quota(ctx, p);
    }
    Ok(())
}

/// A slice's heaps are no larger than its quota, as a vGPU profile reports its framebuffer
/// as the device's memory: applications size their pools from the heaps.
fn clamp_heaps_to_quota(ctx: &Context, p: &mut VkPhysicalDeviceMemoryProperties) {
    let Some(quota) = &ctx.limits.quota else {
        return;
    };
    let count = (p.memoryHeapCount as usize).min(p.memoryHeaps.len());
    for heap in &mut p.memoryHeaps[..count] {
        heap.size = heap.size.min(quota.limit());
    }
}

pub fn get_memory_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceMemoryProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1().get_physical_device_memory_properties2)(
            pd,
            mut_ptr_or_null(a.pMemoryProperties).cast(),
        )
    };
    if let Some(p) = a.pMemoryProperties.first_mut() {
        clamp_heaps_to_quota(ctx, &mut p.memoryProperties);
    }
    Ok(())
}

pub fn get_format_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceFormatProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_0().get_physical_device_format_properties)(
            pd,
            vk::Format::from_raw(a.format),
            mut_ptr_or_null(a.pFormatProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_format_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceFormatProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1().get_physical_device_format_properties2)(
            pd,
            vk::Format::from_raw(a.format),
            mut_ptr_or_null(a.pFormatProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_image_format_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceImageFormatProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above; the scalar arguments are plain values.
    a.ret = unsafe {
        (i.fp_v1_0().get_physical_device_image_format_properties)(
            pd,
            vk::Format::from_raw(a.format),
            vk::ImageType::from_raw(a.r#type),
            vk::ImageTiling::from_raw(a.tiling),
            vk::ImageUsageFlags::from_raw(a.usage),
            vk::ImageCreateFlags::from_raw(a.flags),
            mut_ptr_or_null(a.pImageFormatProperties).cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn get_image_format_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceImageFormatProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above; the input struct is decoded the same way.
    a.ret = unsafe {
        (i.fp_v1_1().get_physical_device_image_format_properties2)(
            pd,
            input(a.pImageFormatInfo),
            mut_ptr_or_null(a.pImageFormatProperties).cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn get_sparse_image_format_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceSparseImageFormatProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pPropertyCount, a.pProperties) else {
        return Ok(());
    };
    // SAFETY: see the note above; `count` bounds the array.
    unsafe {
        (i.fp_v1_0()
            .get_physical_device_sparse_image_format_properties)(
            pd,
            vk::Format::from_raw(a.format),
            vk::ImageType::from_raw(a.r#type),
            vk::SampleCountFlags::from_raw(a.samples as u32),
            vk::ImageUsageFlags::from_raw(a.usage),
            vk::ImageTiling::from_raw(a.tiling),
            count,
            mut_ptr_or_null(a.pProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_sparse_image_format_properties2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceSparseImageFormatProperties2_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pPropertyCount, a.pProperties) else {
        return Ok(());
    };
    // SAFETY: see the note above; `count` bounds the array.
    unsafe {
        (i.fp_v1_1()
            .get_physical_device_sparse_image_format_properties2)(
            pd,
            input(a.pFormatInfo),
            count,
            mut_ptr_or_null(a.pProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_external_buffer_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceExternalBufferProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1().get_physical_device_external_buffer_properties)(
            pd,
            input(a.pExternalBufferInfo),
            mut_ptr_or_null(a.pExternalBufferProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_external_semaphore_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceExternalSemaphoreProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1()
            .get_physical_device_external_semaphore_properties)(
            pd,
            input(a.pExternalSemaphoreInfo),
            mut_ptr_or_null(a.pExternalSemaphoreProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_external_fence_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceExternalFenceProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    // SAFETY: see the note above.
    unsafe {
        (i.fp_v1_1().get_physical_device_external_fence_properties)(
            pd,
            input(a.pExternalFenceInfo),
            mut_ptr_or_null(a.pExternalFenceProperties).cast(),
        )
    };
    Ok(())
}

pub fn get_tool_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetPhysicalDeviceToolProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    let Some(count) = query_count(a.pToolCount, a.pToolProperties) else {
        return Ok(());
    };
    // SAFETY: see the note above; `count` bounds the array.
    a.ret = unsafe {
        (i.fp_v1_3().get_physical_device_tool_properties)(
            pd,
            count,
            mut_ptr_or_null(a.pToolProperties).cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn enumerate_device_extension_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumerateDeviceExtensionProperties_args,
) -> Result<(), RenderError> {
    let (i, pd) = fns(ctx, a.physicalDevice)?;
    if !a.pLayerName.is_null() {
        a.ret = vk::Result::ERROR_LAYER_NOT_PRESENT.as_raw();
        return Ok(());
    }
    // SAFETY: `pd` belongs to `i`; ash copies the result into a Vec.
    let host = unsafe { i.enumerate_device_extension_properties(pd) }.unwrap_or_default();
    let served: Vec<_> = host
        .into_iter()
        .filter(|e| served_extension(&e.extension_name))
        .collect();
    a.ret = fill_counted(&served, a.pPropertyCount, a.pProperties, copy_extension);
    Ok(())
}

pub fn enumerate_device_layer_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumerateDeviceLayerProperties_args,
) -> Result<(), RenderError> {
    fns(ctx, a.physicalDevice)?;
    a.ret = fill_counted::<VkLayerProperties, ()>(&[], a.pPropertyCount, a.pProperties, |_, _| {});
    Ok(())
}
