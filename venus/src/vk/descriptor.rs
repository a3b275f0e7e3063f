//! Descriptor set layouts, pools and sets (writes and copies are forwarded as they are).

use ash::vk::{self, Handle as _};

use super::object::{create, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_descriptor_set_layout(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateDescriptorSetLayout_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pSetLayout,
        vk::ObjectType::DESCRIPTOR_SET_LAYOUT,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; bindings and immutable samplers decoded.
        |d, out: &mut vk::DescriptorSetLayout| unsafe {
            (d.fp_v1_0().create_descriptor_set_layout)(
                d.handle(),
                (info as *const VkDescriptorSetLayoutCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the layout just created.
        |d, h| unsafe { d.destroy_descriptor_set_layout(h, None) },
    )
}

pub fn destroy_descriptor_set_layout(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyDescriptorSetLayout_args,
) -> Result<(), RenderError> {
    // SAFETY: a live layout of this device.
    destroy(
        ctx,
        a.device,
        a.descriptorSetLayout,
        vk::ObjectType::DESCRIPTOR_SET_LAYOUT,
        |d, h| unsafe { d.destroy_descriptor_set_layout(h, None) },
    )
}

pub fn create_descriptor_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateDescriptorPool_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pDescriptorPool,
        vk::ObjectType::DESCRIPTOR_POOL,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct.
        |d, out: &mut vk::DescriptorPool| unsafe {
            (d.fp_v1_0().create_descriptor_pool)(
                d.handle(),
                (info as *const VkDescriptorPoolCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the pool just created.
        |d, h| unsafe { d.destroy_descriptor_pool(h, None) },
    )
}

pub fn destroy_descriptor_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyDescriptorPool_args,
) -> Result<(), RenderError> {
    // Sets allocated from the pool go with it.
    for set in ctx.host.take_descriptor_sets(a.descriptorPool.raw) {
        if let Some(id) = ctx
            .objects
            .id_of(vk::ObjectType::DESCRIPTOR_SET.as_raw(), set)
        {
            let _ = ctx
                .objects
                .remove(id, vk::ObjectType::DESCRIPTOR_SET.as_raw());
        }
    }
    // SAFETY: a live pool of this device.
    destroy(
        ctx,
        a.device,
        a.descriptorPool,
        vk::ObjectType::DESCRIPTOR_POOL,
        |d, h| unsafe { d.destroy_descriptor_pool(h, None) },
    )
}

pub fn allocate_descriptor_sets(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkAllocateDescriptorSets_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let info = a.pAllocateInfo.ok_or(RenderError::Fatal)?;
    if a.pDescriptorSets.len() != info.descriptorSetCount as usize {
        return Err(RenderError::Invalid(
            "descriptor set ids do not match descriptorSetCount".into(),
        ));
    }
    let mut raw = vec![vk::DescriptorSet::null(); a.pDescriptorSets.len()];
    // SAFETY: the allocate info mirrors the ash struct; `raw` has descriptorSetCount slots.
    let r = unsafe {
        (d.fp_v1_0().allocate_descriptor_sets)(
            d.handle(),
            (info as *const VkDescriptorSetAllocateInfo).cast(),
            raw.as_mut_ptr(),
        )
    };
    a.ret = r.as_raw();
    if r != vk::Result::SUCCESS {
        return Ok(());
    }
    for (i, (&id, s)) in a.pDescriptorSets.iter().zip(&raw).enumerate() {
        if let Err(e) = ctx
            .objects
            .insert(id, vk::ObjectType::DESCRIPTOR_SET.as_raw(), s.as_raw())
        {
            for &done in &a.pDescriptorSets[..i] {
                let _ = ctx
                    .objects
                    .remove(done, vk::ObjectType::DESCRIPTOR_SET.as_raw());
            }
            // SAFETY: sets just allocated from this pool (freeing needs the FREE flag; without it
            // the pool reclaims them when it is reset or destroyed).
            let _ = unsafe {
                d.free_descriptor_sets(vk::DescriptorPool::from_raw(info.descriptorPool), &raw)
            };
            return Err(e.into());
        }
        ctx.host.add_descriptor_set(s.as_raw(), info.descriptorPool);
    }
    Ok(())
}

pub fn free_descriptor_sets(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkFreeDescriptorSets_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let raw: Vec<vk::DescriptorSet> = a
        .pDescriptorSets
        .iter()
        .filter(|&&s| s != 0)
        .map(|&s| vk::DescriptorSet::from_raw(s))
        .collect();
    for s in &raw {
        ctx.host.forget_descriptor_set(s.as_raw());
        if let Some(id) = ctx
            .objects
            .id_of(vk::ObjectType::DESCRIPTOR_SET.as_raw(), s.as_raw())
        {
            let _ = ctx
                .objects
                .remove(id, vk::ObjectType::DESCRIPTOR_SET.as_raw());
        }
    }
    // SAFETY: sets of this pool, now out of the table.
    a.ret = unsafe {
        (d.fp_v1_0().free_descriptor_sets)(
            d.handle(),
            vk::DescriptorPool::from_raw(a.descriptorPool.raw),
            raw.len() as u32,
            raw.as_ptr(),
        )
    }
    .as_raw();
    Ok(())
}
