//! Shader modules, pipeline layouts, pipeline caches and pipelines (compute and graphics).

use ash::vk::{self, Handle as _};

use super::object::{create, destroy};
use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
};

pub fn create_shader_module(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreateShaderModule_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pShaderModule,
        vk::ObjectType::SHADER_MODULE,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; pCode holds codeSize / 4 decoded words.
        |d, out: &mut vk::ShaderModule| unsafe {
            (d.fp_v1_0().create_shader_module)(
                d.handle(),
                (info as *const VkShaderModuleCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the module just created.
        |d, h| unsafe { d.destroy_shader_module(h, None) },
    )
}

pub fn destroy_shader_module(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyShaderModule_args,
) -> Result<(), RenderError> {
    // SAFETY: a live module of this device.
    destroy(
        ctx,
        a.device,
        a.shaderModule,
        vk::ObjectType::SHADER_MODULE,
        |d, h| unsafe { d.destroy_shader_module(h, None) },
    )
}

pub fn create_pipeline_layout(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreatePipelineLayout_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pPipelineLayout,
        vk::ObjectType::PIPELINE_LAYOUT,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; its set layouts were looked up.
        |d, out: &mut vk::PipelineLayout| unsafe {
            (d.fp_v1_0().create_pipeline_layout)(
                d.handle(),
                (info as *const VkPipelineLayoutCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the layout just created.
        |d, h| unsafe { d.destroy_pipeline_layout(h, None) },
    )
}

pub fn destroy_pipeline_layout(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyPipelineLayout_args,
) -> Result<(), RenderError> {
    // SAFETY: a live layout of this device.
    destroy(
        ctx,
        a.device,
        a.pipelineLayout,
        vk::ObjectType::PIPELINE_LAYOUT,
        |d, h| unsafe { d.destroy_pipeline_layout(h, None) },
    )
}

pub fn create_pipeline_cache(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkCreatePipelineCache_args,
) -> Result<(), RenderError> {
    let info = a.pCreateInfo.ok_or(RenderError::Fatal)?;
    create(
        ctx,
        a.device,
        a.pPipelineCache,
        vk::ObjectType::PIPELINE_CACHE,
        &mut a.ret,
        // SAFETY: the create info mirrors the ash struct; the initial data is a decoded blob of
        // initialDataSize bytes (the host validates its header).
        |d, out: &mut vk::PipelineCache| unsafe {
            (d.fp_v1_0().create_pipeline_cache)(
                d.handle(),
                (info as *const VkPipelineCacheCreateInfo).cast(),
                std::ptr::null(),
                out,
            )
        },
        // SAFETY: destroying the cache just created.
        |d, h| unsafe { d.destroy_pipeline_cache(h, None) },
    )
}

pub fn destroy_pipeline_cache(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyPipelineCache_args,
) -> Result<(), RenderError> {
    // SAFETY: a live cache of this device.
    destroy(
        ctx,
        a.device,
        a.pipelineCache,
        vk::ObjectType::PIPELINE_CACHE,
        |d, h| unsafe { d.destroy_pipeline_cache(h, None) },
    )
}

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
        if let Err(e) = ctx
            .objects
            .insert(id, vk::ObjectType::PIPELINE.as_raw(), p.as_raw())
        {
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

pub fn destroy_pipeline(
    ctx: &Context,
    _: &mut StreamCx,
    a: &mut vkDestroyPipeline_args,
) -> Result<(), RenderError> {
    // SAFETY: a live pipeline of this device.
    destroy(
        ctx,
        a.device,
        a.pipeline,
        vk::ObjectType::PIPELINE,
        |d, h| unsafe { d.destroy_pipeline(h, None) },
    )
}
