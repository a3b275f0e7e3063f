//! Shader modules, pipeline layouts, pipeline caches and pipelines (compute and graphics).

use ash::vk::{self, Handle as _};

use super::object::{create_fn, destroy_fn};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

create_fn!(
    create_shader_module,
    vkCreateShaderModule_args,
    VkShaderModuleCreateInfo,
    pShaderModule,
    fp_v1_0.create_shader_module,
    vk::ShaderModule,
    SHADER_MODULE,
    destroy_shader_module
);
destroy_fn!(
    destroy_shader_module,
    vkDestroyShaderModule_args,
    shaderModule,
    SHADER_MODULE,
    destroy_shader_module
);
create_fn!(
    create_pipeline_layout,
    vkCreatePipelineLayout_args,
    VkPipelineLayoutCreateInfo,
    pPipelineLayout,
    fp_v1_0.create_pipeline_layout,
    vk::PipelineLayout,
    PIPELINE_LAYOUT,
    destroy_pipeline_layout
);
destroy_fn!(
    destroy_pipeline_layout,
    vkDestroyPipelineLayout_args,
    pipelineLayout,
    PIPELINE_LAYOUT,
    destroy_pipeline_layout
);
create_fn!(
    create_pipeline_cache,
    vkCreatePipelineCache_args,
    VkPipelineCacheCreateInfo,
    pPipelineCache,
    fp_v1_0.create_pipeline_cache,
    vk::PipelineCache,
    PIPELINE_CACHE,
    destroy_pipeline_cache
);
destroy_fn!(
    destroy_pipeline_cache,
    vkDestroyPipelineCache_args,
    pipelineCache,
    PIPELINE_CACHE,
    destroy_pipeline_cache
);
destroy_fn!(
    destroy_pipeline,
    vkDestroyPipeline_args,
    pipeline,
    PIPELINE,
    destroy_pipeline
);

/// Registers the pipelines a create call made; those the host did not make (null) get no id.
fn register_pipelines(
    ctx: &Context,
    device: &ash::Device,
    ids: &[u64],
    raw: &[vk::Pipeline],
) -> Result<(), RenderError> {
    for (i, (&id, p)) in ids.iter().zip(raw).enumerate() {
        if *p == vk::Pipeline::null() {
            continue;
        }
        if let Err(e) = ctx.objects.insert_owned(
            id,
            vk::ObjectType::PIPELINE.as_raw(),
            p.as_raw(),
            device.handle().as_raw(),
        ) {
            for (&done, q) in ids[..i].iter().zip(raw) {
                if *q != vk::Pipeline::null() {
                    let _ = ctx.objects.remove(done, vk::ObjectType::PIPELINE.as_raw());
                }
            }
            for q in raw.iter().filter(|q| **q != vk::Pipeline::null()) {
                // SAFETY: pipelines just created and now in no table.
                unsafe { device.destroy_pipeline(*q, None) };
            }
            return Err(e.into());
        }
    }
    Ok(())
}

pub fn create_compute_pipelines(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateComputePipelines_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let mut raw = vec![vk::Pipeline::null(); a.pCreateInfos.len()];
    if a.pPipelines.len() != raw.len() {
        return Err(RenderError::Invalid(
            "pipeline ids do not match createInfoCount".into(),
        ));
    }
    // SAFETY: the create infos mirror the ash structs (counted by the decoder); `raw` has one
    // slot per create info.
    let r = unsafe {
        (d.fp_v1_0().create_compute_pipelines)(
            d.handle(),
            vk::PipelineCache::from_raw(a.pipelineCache.raw),
            raw.len() as u32,
            a.pCreateInfos.as_ptr().cast(),
            std::ptr::null(),
            raw.as_mut_ptr(),
        )
    };
    a.ret = r.as_raw();
    register_pipelines(ctx, &d, a.pPipelines, &raw)
}

pub fn create_graphics_pipelines(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateGraphicsPipelines_args,
) -> Result<(), RenderError> {
    let d = ctx.host.device(a.device.raw)?;
    let mut raw = vec![vk::Pipeline::null(); a.pCreateInfos.len()];
    if a.pPipelines.len() != raw.len() {
        return Err(RenderError::Invalid(
            "pipeline ids do not match createInfoCount".into(),
        ));
    }
    // SAFETY: as for compute pipelines.
    let r = unsafe {
        (d.fp_v1_0().create_graphics_pipelines)(
            d.handle(),
            vk::PipelineCache::from_raw(a.pipelineCache.raw),
            raw.len() as u32,
            a.pCreateInfos.as_ptr().cast(),
            std::ptr::null(),
            raw.as_mut_ptr(),
        )
    };
    a.ret = r.as_raw();
    register_pipelines(ctx, &d, a.pPipelines, &raw)
}
