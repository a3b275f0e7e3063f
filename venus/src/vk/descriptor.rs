//! Descriptor set layouts, pools and sets (writes and copies are forwarded as they are).

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_descriptor_set_layout,
    vkCreateDescriptorSetLayout_args,
    VkDescriptorSetLayoutCreateInfo,
    pSetLayout,
    fp_v1_0.create_descriptor_set_layout,
    vk::DescriptorSetLayout,
    DESCRIPTOR_SET_LAYOUT,
    destroy_descriptor_set_layout
);
destroy_fn!(
    destroy_descriptor_set_layout,
    vkDestroyDescriptorSetLayout_args,
    descriptorSetLayout,
    DESCRIPTOR_SET_LAYOUT,
    destroy_descriptor_set_layout
);
create_fn!(
    create_descriptor_update_template,
    vkCreateDescriptorUpdateTemplate_args,
    VkDescriptorUpdateTemplateCreateInfo,
    pDescriptorUpdateTemplate,
    fp_v1_1.create_descriptor_update_template,
    vk::DescriptorUpdateTemplate,
    DESCRIPTOR_UPDATE_TEMPLATE,
    destroy_descriptor_update_template
);
destroy_fn!(
    destroy_descriptor_update_template,
    vkDestroyDescriptorUpdateTemplate_args,
    descriptorUpdateTemplate,
    DESCRIPTOR_UPDATE_TEMPLATE,
    destroy_descriptor_update_template
);
create_fn!(
    create_descriptor_pool,
    vkCreateDescriptorPool_args,
    VkDescriptorPoolCreateInfo,
    pDescriptorPool,
    fp_v1_0.create_descriptor_pool,
    vk::DescriptorPool,
    DESCRIPTOR_POOL,
    destroy_descriptor_pool
);

pub fn destroy_descriptor_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyDescriptorPool_args,
) -> Result<(), RenderError> {
    // Sets allocated from the pool go with it.
    for set in ctx.host.take_descriptor_sets(a.descriptorPool.raw) {
        ctx.objects
            .remove_handle(vk::ObjectType::DESCRIPTOR_SET.as_raw(), set);
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
        if let Err(e) = ctx.objects.insert_owned(
            id,
            vk::ObjectType::DESCRIPTOR_SET.as_raw(),
            s.as_raw(),
            a.device.raw,
        ) {
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
        ctx.objects
            .remove_handle(vk::ObjectType::DESCRIPTOR_SET.as_raw(), s.as_raw());
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
