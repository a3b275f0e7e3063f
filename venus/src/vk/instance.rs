//! Instances: version and extension queries, create and destroy.

use ash::vk::{self, Handle as _};
use tracing::warn;

use super::{served_extension, OBJECT_TYPE_INSTANCE, OBJECT_TYPE_PHYSICAL_DEVICE};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

/// Writes `items` the Vulkan way: a count query when there is no array, else as many as fit,
/// VK_INCOMPLETE when some did not.
pub(crate) fn fill_counted<T, U>(
    items: &[U],
    count: &mut [u32],
    out: &mut [T],
    conv: impl Fn(&U, &mut T),
) -> i32 {
    let Some(count) = count.first_mut() else {
        return vk::Result::ERROR_INITIALIZATION_FAILED.as_raw();
    };
    if out.is_empty() {
        *count = items.len() as u32;
        return vk::Result::SUCCESS.as_raw();
    }
    let n = (*count as usize).min(out.len()).min(items.len());
    for (item, slot) in items.iter().zip(out.iter_mut()).take(n) {
        conv(item, slot);
    }
    *count = n as u32;
    if n < items.len() {
        vk::Result::INCOMPLETE.as_raw()
    } else {
        vk::Result::SUCCESS.as_raw()
    }
}

pub(crate) fn copy_extension(e: &vk::ExtensionProperties, out: &mut VkExtensionProperties) {
    out.extensionName = e.extension_name;
    out.specVersion = e.spec_version;
}

pub fn enumerate_instance_version(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumerateInstanceVersion_args,
) -> Result<(), RenderError> {
    if let Some(v) = a.pApiVersion.first_mut() {
        *v = ctx.host.instance_version();
    }
    a.ret = vk::Result::SUCCESS.as_raw();
    Ok(())
}

pub fn enumerate_instance_extension_properties(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumerateInstanceExtensionProperties_args,
) -> Result<(), RenderError> {
    if !a.pLayerName.is_null() {
        a.ret = vk::Result::ERROR_LAYER_NOT_PRESENT.as_raw();
        return Ok(());
    }
    // SAFETY: a global query; ash copies the results into a Vec.
    let host = unsafe {
        ctx.host
            .entry()
            .enumerate_instance_extension_properties(None)
    }
    .unwrap_or_default();
    let served: Vec<_> = host
        .into_iter()
        .filter(|e| served_extension(&e.extension_name))
        .collect();
    a.ret = fill_counted(&served, a.pPropertyCount, a.pProperties, copy_extension);
    Ok(())
}

pub fn enumerate_instance_layer_properties(
    _: &Context,
    _: &mut StreamCx,
    a: &mut vkEnumerateInstanceLayerProperties_args,
) -> Result<(), RenderError> {
    a.ret = fill_counted::<VkLayerProperties, ()>(&[], a.pPropertyCount, a.pProperties, |_, _| {});
    Ok(())
}

pub fn create_instance(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateInstance_args,
) -> Result<(), RenderError> {
    let id = a.pInstance.first().copied().unwrap_or(0);
    let mut info = *a.pCreateInfo.ok_or(RenderError::Fatal)?;
    // Layers and extensions are the driver's business; the host instance gets only what the
    // protocol serves (none today).
    info.enabledLayerCount = 0;
    info.ppEnabledLayerNames = std::ptr::null();
    info.enabledExtensionCount = 0;
    info.ppEnabledExtensionNames = std::ptr::null();
    // The host instance asks for the highest version we serve, whatever the application asked
    // the driver for: on a device of an older version the host exports a promoted command only
    // under its extension's name (a 1.2 device has vkCmdBeginRenderingKHR, not
    // vkCmdBeginRendering), and the driver names every command by its core number.
    // SAFETY: null or the decoder's VkApplicationInfo in this command's arena.
    let given = unsafe { info.pApplicationInfo.as_ref() };
    let mut app = given.copied().unwrap_or_else(|| VkApplicationInfo {
        sType: vk::StructureType::APPLICATION_INFO.as_raw(),
        ..zeroed()
    });
    app.apiVersion = app.apiVersion.max(ctx.host.instance_version());
    info.pApplicationInfo = &app;
    // SAFETY: VkInstanceCreateInfo mirrors vk::InstanceCreateInfo (layout asserted at build).
    let host_info =
        unsafe { &*(&info as *const VkInstanceCreateInfo).cast::<vk::InstanceCreateInfo<'_>>() };
    // SAFETY: its pointers are into this command's arena and its pNext chain holds only
    // decoded structs.
    match unsafe { ctx.host.entry().create_instance(host_info, None) } {
        Ok(instance) => {
            ctx.objects
                .insert(id, OBJECT_TYPE_INSTANCE, instance.handle().as_raw())
                .inspect_err(|_| {
                    // SAFETY: the instance was just created and is referenced nowhere else.
                    unsafe { instance.destroy_instance(None) };
                })?;
            ctx.host.add_instance(instance);
            a.ret = vk::Result::SUCCESS.as_raw();
        }
        Err(e) => {
            warn!("venus: host vkCreateInstance failed: {e}");
            a.ret = e.as_raw();
        }
    }
    Ok(())
}

pub fn destroy_instance(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyInstance_args,
) -> Result<(), RenderError> {
    ctx.objects.remove(a.instance.id, OBJECT_TYPE_INSTANCE)?;
    if let Some(instance) = ctx.host.remove_instance(a.instance.raw) {
        // SAFETY: enumerate before destroying, so the physical device ids can be dropped too.
        let devices = unsafe { instance.enumerate_physical_devices() }.unwrap_or_default();
        for pd in devices {
            ctx.objects
                .remove_handle(OBJECT_TYPE_PHYSICAL_DEVICE, pd.as_raw());
        }
        // SAFETY: the driver destroyed its instance; nothing of ours refers to the host one now.
        unsafe { instance.destroy_instance(None) };
    }
    Ok(())
}
