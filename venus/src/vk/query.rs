//! Query pools (results and resets are forwarded as they are).

use ash::vk;

use super::object::{create_fn, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_query_pool,
    vkCreateQueryPool_args,
    VkQueryPoolCreateInfo,
    pQueryPool,
    fp_v1_0.create_query_pool,
    vk::QueryPool,
    QUERY_POOL,
    destroy_query_pool
);
destroy_fn!(
    destroy_query_pool,
    vkDestroyQueryPool_args,
    queryPool,
    QUERY_POOL,
    destroy_query_pool
);
