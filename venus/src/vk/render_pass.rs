//! Render passes and framebuffers.

use ash::vk;

use super::object::{create_fn, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_render_pass,
    vkCreateRenderPass_args,
    VkRenderPassCreateInfo,
    pRenderPass,
    fp_v1_0.create_render_pass,
    vk::RenderPass,
    RENDER_PASS,
    destroy_render_pass
);
create_fn!(
    create_render_pass2,
    vkCreateRenderPass2_args,
    VkRenderPassCreateInfo2,
    pRenderPass,
    fp_v1_2.create_render_pass2,
    vk::RenderPass,
    RENDER_PASS,
    destroy_render_pass
);
destroy_fn!(
    destroy_render_pass,
    vkDestroyRenderPass_args,
    renderPass,
    RENDER_PASS,
    destroy_render_pass
);
create_fn!(
    create_framebuffer,
    vkCreateFramebuffer_args,
    VkFramebufferCreateInfo,
    pFramebuffer,
    fp_v1_0.create_framebuffer,
    vk::Framebuffer,
    FRAMEBUFFER,
    destroy_framebuffer
);
destroy_fn!(
    destroy_framebuffer,
    vkDestroyFramebuffer_args,
    framebuffer,
    FRAMEBUFFER,
    destroy_framebuffer
);
