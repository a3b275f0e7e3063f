//! Query pools (results and resets are forwarded as they are).

use ash::vk;

use super::object::{create, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_query_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateQueryPool_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pQueryPool,
        vk::ObjectType::QUERY_POOL,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct.
        |d, out: &mut vk::QueryPool| unsafe {
            (d.fp_v1_0().create_query_pool)(
                d.handle(),
                (info as *const VkQueryPoolCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the pool just created.
        |d, h| unsafe { d.destroy_query_pool(h, None) },
    )
}

pub fn destroy_query_pool(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyQueryPool_args,
) -> Result<(), RenderError> {
    // SAFETY: a live pool of this device.
    destroy(
        ctx,
        a.device,
        a.queryPool,
        vk::ObjectType::QUERY_POOL,
        |d, h| unsafe { d.destroy_query_pool(h, None) },
    )
}
