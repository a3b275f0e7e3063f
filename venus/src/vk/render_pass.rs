//! Render passes and framebuffers.

use ash::vk;

use super::object::{create, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_render_pass(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateRenderPass_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pRenderPass,
        vk::ObjectType::RENDER_PASS,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; attachments and subpasses decoded.
        |d, out: &mut vk::RenderPass| unsafe {
            (d.fp_v1_0().create_render_pass)(
                d.handle(),
                (info as *const VkRenderPassCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the render pass just created.
        |d, h| unsafe { d.destroy_render_pass(h, None) },
    )
}

pub fn create_render_pass2(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateRenderPass2_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pRenderPass,
        vk::ObjectType::RENDER_PASS,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; attachments and subpasses decoded.
        |d, out: &mut vk::RenderPass| unsafe {
            (d.fp_v1_2().create_render_pass2)(
                d.handle(),
                (info as *const VkRenderPassCreateInfo2).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the render pass just created.
        |d, h| unsafe { d.destroy_render_pass(h, None) },
    )
}

pub fn destroy_render_pass(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyRenderPass_args,
) -> Result<(), RenderError> {
    // SAFETY: a live render pass of this device.
    destroy(
        ctx,
        a.device,
        a.renderPass,
        vk::ObjectType::RENDER_PASS,
        |d, h| unsafe { d.destroy_render_pass(h, None) },
    )
}

pub fn create_framebuffer(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateFramebuffer_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pFramebuffer,
        vk::ObjectType::FRAMEBUFFER,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; its views were looked up.
        |d, out: &mut vk::Framebuffer| unsafe {
            (d.fp_v1_0().create_framebuffer)(
                d.handle(),
                (info as *const VkFramebufferCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the framebuffer just created.
        |d, h| unsafe { d.destroy_framebuffer(h, None) },
    )
}

pub fn destroy_framebuffer(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyFramebuffer_args,
) -> Result<(), RenderError> {
    // SAFETY: a live framebuffer of this device.
    destroy(
        ctx,
        a.device,
        a.framebuffer,
        vk::ObjectType::FRAMEBUFFER,
        |d, h| unsafe { d.destroy_framebuffer(h, None) },
    )
}
