//! Images, image and buffer views, samplers.

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy_fn};
use super::query_count;
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_image,
    vkCreateImage_args,
    VkImageCreateInfo,
    pImage,
    fp_v1_0.create_image,
    vk::Image,
    IMAGE,
    destroy_image
);
destroy_fn!(
    destroy_image,
    vkDestroyImage_args,
    image,
    IMAGE,
    destroy_image
);
create_fn!(
    create_image_view,
    vkCreateImageView_args,
    VkImageViewCreateInfo,
    pView,
    fp_v1_0.create_image_view,
    vk::ImageView,
    IMAGE_VIEW,
    destroy_image_view
);
destroy_fn!(
    destroy_image_view,
    vkDestroyImageView_args,
    imageView,
    IMAGE_VIEW,
    destroy_image_view
);
create_fn!(
    create_buffer_view,
    vkCreateBufferView_args,
    VkBufferViewCreateInfo,
    pView,
    fp_v1_0.create_buffer_view,
    vk::BufferView,
    BUFFER_VIEW,
    destroy_buffer_view
);
destroy_fn!(
    destroy_buffer_view,
    vkDestroyBufferView_args,
    bufferView,
    BUFFER_VIEW,
    destroy_buffer_view
);
create_fn!(
    create_sampler,
    vkCreateSampler_args,
    VkSamplerCreateInfo,
    pSampler,
    fp_v1_0.create_sampler,
    vk::Sampler,
    SAMPLER,
    destroy_sampler
);
destroy_fn!(
    destroy_sampler,
    vkDestroySampler_args,
    sampler,
    SAMPLER,
    destroy_sampler
);

pub fn bind_image_memory(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkBindImageMemory_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: a live image and memory; the host checks the offset.
    a.ret = unsafe {
        (d.fp_v1_0().bind_image_memory)(
            d.handle(),
            vk::Image::from_raw(a.image.raw),
            vk::DeviceMemory::from_raw(a.memory.raw),
            a.memoryOffset,
        )
    }
    .as_raw();
    Ok(())
}

pub fn bind_image_memory2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkBindImageMemory2_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    // SAFETY: the bind infos mirror the ash structs, counted by the decoder.
    a.ret = unsafe {
        (d.fp_v1_1().bind_image_memory2)(
            d.handle(),
            a.pBindInfos.len() as u32,
            a.pBindInfos.as_ptr().cast(),
        )
    }
    .as_raw();
    Ok(())
}

pub fn get_image_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetImageMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: a live image; `out` mirrors vk::MemoryRequirements.
    unsafe {
        (d.fp_v1_0().get_image_memory_requirements)(
            d.handle(),
            vk::Image::from_raw(a.image.raw),
            (out as *mut VkMemoryRequirements).cast(),
        )
    };
    Ok(())
}

pub fn get_image_memory_requirements2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetImageMemoryRequirements2_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs; the output chain is the decoder's.
    unsafe {
        (d.fp_v1_1().get_image_memory_requirements2)(
            d.handle(),
            (info as *const VkImageMemoryRequirementsInfo2).cast(),
            (out as *mut VkMemoryRequirements2).cast(),
        )
    };
    Ok(())
}

pub fn get_device_image_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceImageMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx
        .host
        .device_of_version(a.device.raw, vk::API_VERSION_1_3)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    if info.pCreateInfo.is_null() {
        return Err(RenderError::Invalid(
            "VkDeviceImageMemoryRequirements without a create info".into(),
        ));
    }
    let out = a
        .pMemoryRequirements
        .first_mut()
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs, decoded in the arena.
    unsafe {
        (d.fp_v1_3().get_device_image_memory_requirements)(
            d.handle(),
            (info as *const VkDeviceImageMemoryRequirements).cast(),
            (out as *mut VkMemoryRequirements2).cast(),
        )
    };
    Ok(())
}

pub fn get_image_sparse_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetImageSparseMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let count = query_count(a.pSparseMemoryRequirementCount, a.pSparseMemoryRequirements)
        .ok_or(RenderError::Fatal)?;
    // SAFETY: a live image; `count` bounds the output array (or it is a count query).
    unsafe {
        (d.fp_v1_0().get_image_sparse_memory_requirements)(
            d.handle(),
            vk::Image::from_raw(a.image.raw),
            count,
            mut_ptr_or_null(a.pSparseMemoryRequirements).cast(),
        )
    };
    Ok(())
}

pub fn get_image_sparse_memory_requirements2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetImageSparseMemoryRequirements2_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    let count = query_count(a.pSparseMemoryRequirementCount, a.pSparseMemoryRequirements)
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs; `count` bounds the output array.
    unsafe {
        (d.fp_v1_1().get_image_sparse_memory_requirements2)(
            d.handle(),
            (info as *const VkImageSparseMemoryRequirementsInfo2).cast(),
            count,
            mut_ptr_or_null(a.pSparseMemoryRequirements).cast(),
        )
    };
    Ok(())
}

pub fn get_device_image_sparse_memory_requirements(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetDeviceImageSparseMemoryRequirements_args,
) -> Result<(), RenderError> {
    let d = ctx
        .host
        .device_of_version(a.device.raw, vk::API_VERSION_1_3)?;
    let info = a.pInfo.ok_or(RenderError::Fatal)?;
    if info.pCreateInfo.is_null() {
        return Err(RenderError::Invalid(
            "VkDeviceImageMemoryRequirements without a create info".into(),
        ));
    }
    let count = query_count(a.pSparseMemoryRequirementCount, a.pSparseMemoryRequirements)
        .ok_or(RenderError::Fatal)?;
    // SAFETY: mirrors of the ash structs; `count` bounds the output array.
    unsafe {
        (d.fp_v1_3().get_device_image_sparse_memory_requirements)(
            d.handle(),
            (info as *const VkDeviceImageMemoryRequirements).cast(),
            count,
            mut_ptr_or_null(a.pSparseMemoryRequirements).cast(),
        )
    };
    Ok(())
}

pub fn get_image_subresource_layout(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkGetImageSubresourceLayout_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let sub = a.pSubresource.ok_or(RenderError::Fatal)?;
    let out = a.pLayout.first_mut().ok_or(RenderError::Fatal)?;
    // SAFETY: a live image; mirrors of the ash structs.
    unsafe {
        (d.fp_v1_0().get_image_subresource_layout)(
            d.handle(),
            vk::Image::from_raw(a.image.raw),
            (sub as *const VkImageSubresource).cast(),
            (out as *mut VkSubresourceLayout).cast(),
        )
    };
    Ok(())
}
