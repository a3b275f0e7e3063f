//! The compute pipeline that composes a scanout (primary plane plus cursor) on the GPU.

use std::sync::Arc;

use ash::vk;

use super::device::GpuDevice;
use super::shader::{self, ComposeParams, WORKGROUP};
use super::VulkanError;

/// Bindings of the compose shader: cursor, frame, params (all storage buffers).
const BINDINGS: u32 = 3;

/// Shader module, layouts, pipeline and the one descriptor set the compose dispatch uses.
pub struct ComposePipeline {
    dev: Arc<GpuDevice>,
    module: vk::ShaderModule,
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
}

/// The buffers one composition reads and writes.
pub struct ComposeBuffers {
    /// The primary plane (front buffer), `bytes` long, tightly packed like the frame.
    pub plane: vk::Buffer,
    pub bytes: u64,
    pub cursor: vk::Buffer,
    pub frame: vk::Buffer,
    pub params: vk::Buffer,
}

impl ComposePipeline {
    pub fn new(dev: &Arc<GpuDevice>) -> Result<Self, VulkanError> {
        let d = &dev.device;
        let mut this = ComposePipeline {
            dev: dev.clone(),
            module: vk::ShaderModule::null(),
            set_layout: vk::DescriptorSetLayout::null(),
            layout: vk::PipelineLayout::null(),
            pipeline: vk::Pipeline::null(),
            pool: vk::DescriptorPool::null(),
            set: vk::DescriptorSet::null(),
        };
        let code = shader::compose_spirv()?;
        let module_info = vk::ShaderModuleCreateInfo::default().code(&code);
        // SAFETY: `code` is SPIR-V produced and validated by naga; it outlives the call.
        this.module = unsafe { d.create_shader_module(&module_info, None) }
            .map_err(VulkanError::vk("vkCreateShaderModule"))?;
        let bindings: Vec<_> = (0..BINDINGS)
            .map(|b| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(b)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let set_layout_info = vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings);
        // SAFETY: valid create-info; destroyed in Drop.
        this.set_layout = unsafe { d.create_descriptor_set_layout(&set_layout_info, None) }
            .map_err(VulkanError::vk("vkCreateDescriptorSetLayout"))?;
        let set_layouts = [this.set_layout];
        let layout_info = vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts);
        // SAFETY: as above.
        this.layout = unsafe { d.create_pipeline_layout(&layout_info, None) }
            .map_err(VulkanError::vk("vkCreatePipelineLayout"))?;
        let entry = std::ffi::CString::new(shader::ENTRY)
            .map_err(|_| VulkanError::Other("entry point name".into()))?;
        let stage = vk::PipelineShaderStageCreateInfo::default()
            .stage(vk::ShaderStageFlags::COMPUTE)
            .module(this.module)
            .name(&entry);
        let pipeline_info = [vk::ComputePipelineCreateInfo::default()
            .stage(stage)
            .layout(this.layout)];
        // SAFETY: module and layout are live and match the shader's interface.
        this.pipeline =
            unsafe { d.create_compute_pipelines(vk::PipelineCache::null(), &pipeline_info, None) }
                .map_err(|(_, e)| VulkanError::vk("vkCreateComputePipelines")(e))?
                .first()
                .copied()
                .ok_or(VulkanError::Other("no pipeline returned".into()))?;
        let sizes = [vk::DescriptorPoolSize::default()
            .ty(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(BINDINGS)];
        let pool_info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(1)
            .pool_sizes(&sizes);
        // SAFETY: valid create-info; destroyed in Drop (which frees its set).
        this.pool = unsafe { d.create_descriptor_pool(&pool_info, None) }
            .map_err(VulkanError::vk("vkCreateDescriptorPool"))?;
        let alloc = vk::DescriptorSetAllocateInfo::default()
            .descriptor_pool(this.pool)
            .set_layouts(&set_layouts);
        // SAFETY: the pool has room for exactly this set.
        this.set = unsafe { d.allocate_descriptor_sets(&alloc) }
            .map_err(VulkanError::vk("vkAllocateDescriptorSets"))?
            .first()
            .copied()
            .ok_or(VulkanError::Other("no descriptor set returned".into()))?;
        Ok(this)
    }

    /// Points the descriptor set at `buffers`. The set must not be in use by pending work, which
    /// holds because every submission is waited for.
    pub fn bind(&self, buffers: &ComposeBuffers) {
        let infos: Vec<[vk::DescriptorBufferInfo; 1]> =
            [buffers.cursor, buffers.frame, buffers.params]
                .iter()
                .map(|&b| {
                    [vk::DescriptorBufferInfo::default()
                        .buffer(b)
                        .range(vk::WHOLE_SIZE)]
                })
                .collect();
        let writes: Vec<_> = infos
            .iter()
            .enumerate()
            .map(|(i, info)| {
                vk::WriteDescriptorSet::default()
                    .dst_set(self.set)
                    .dst_binding(i as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(info)
            })
            .collect();
        // SAFETY: the set and buffers are live; the set is not used by any pending submission.
        unsafe { self.dev.device.update_descriptor_sets(&writes, &[]) };
    }

    /// Records the composition: the plane copied into the frame, then the blend dispatched over
    /// the visible cursor (`params.extent_*`; nothing when it is empty).
    pub fn record(
        &self,
        d: &ash::Device,
        cmd: vk::CommandBuffer,
        buffers: &ComposeBuffers,
        params: &ComposeParams,
    ) {
        let copy = [vk::BufferCopy {
            src_offset: 0,
            dst_offset: 0,
            size: buffers.bytes,
        }];
        // SAFETY: `cmd` is recording; plane and frame are live, distinct and `bytes` long.
        unsafe { d.cmd_copy_buffer(cmd, buffers.plane, buffers.frame, &copy) };
        if params.extent_w == 0 || params.extent_h == 0 {
            return;
        }
        let barrier = [vk::MemoryBarrier::default()
            .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
            .dst_access_mask(vk::AccessFlags::SHADER_READ | vk::AccessFlags::SHADER_WRITE)];
        let (src, dst) = (
            vk::PipelineStageFlags::TRANSFER,
            vk::PipelineStageFlags::COMPUTE_SHADER,
        );
        let flags = vk::DependencyFlags::empty();
        // SAFETY: `cmd` is recording; a global memory barrier has no handles.
        unsafe { d.cmd_pipeline_barrier(cmd, src, dst, flags, &barrier, &[], &[]) };
        let groups = |n: u32| n.div_ceil(WORKGROUP);
        // SAFETY: `cmd` is recording and the pipeline is live.
        unsafe { d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline) };
        let sets = [self.set];
        let bind = vk::PipelineBindPoint::COMPUTE;
        // SAFETY: `cmd` is recording; the set is live and matches the pipeline layout.
        unsafe { d.cmd_bind_descriptor_sets(cmd, bind, self.layout, 0, &sets, &[]) };
        let (x, y) = (groups(params.extent_w), groups(params.extent_h));
        // SAFETY: `cmd` is recording with a compute pipeline and its descriptor set bound.
        unsafe { d.cmd_dispatch(cmd, x, y, 1) };
    }
}

impl Drop for ComposePipeline {
    fn drop(&mut self) {
        let d = &self.dev.device;
        // SAFETY: the backend waits idle before dropping; null handles (from a failed `new`)
        // are ignored by vkDestroy*.
        unsafe { d.destroy_descriptor_pool(self.pool, None) };
        // SAFETY: as above.
        unsafe { d.destroy_pipeline(self.pipeline, None) };
        // SAFETY: as above.
        unsafe { d.destroy_pipeline_layout(self.layout, None) };
        // SAFETY: as above.
        unsafe { d.destroy_descriptor_set_layout(self.set_layout, None) };
        // SAFETY: as above.
        unsafe { d.destroy_shader_module(self.module, None) };
    }
}
