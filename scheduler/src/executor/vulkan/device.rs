//! The host GPU through ash: one compute pipeline running the busy-loop kernel, and one
//! context per tenant (its own buffers, descriptor set, command buffer, timestamp queries and
//! fence), so tenants do not share state on the device.

// Each unsafe block below is one sequence of Vulkan calls on handles this module owns, under
// one argument (stated in its SAFETY comment); a block per call would repeat it verbatim.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use std::ffi::c_void;

use ash::vk;

use super::shader::{self, ShaderError, WORKGROUP_SIZE};
use crate::clock::Nanos;

/// Workgroups per dispatch: enough for lavapipe to spread over its threads.
const WORKGROUPS: u32 = 4;
const PARAMS_BYTES: u64 = 16;

#[derive(Debug, thiserror::Error)]
pub enum DeviceError {
    #[error("loading the Vulkan library: {0}")]
    Load(#[from] ash::LoadingError),
    #[error("{call}: {result}")]
    Vk {
        call: &'static str,
        result: vk::Result,
    },
    #[error("no Vulkan device with a compute queue that supports timestamps")]
    NoDevice,
    #[error("no host-visible, coherent memory type")]
    NoMemory,
    #[error("compiling the kernel: {0}")]
    Shader(#[from] ShaderError),
}

fn vkr(call: &'static str) -> impl FnOnce(vk::Result) -> DeviceError {
    move |result| DeviceError::Vk { call, result }
}

/// A host-visible buffer, mapped for its whole life.
struct Buffer {
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    mapped: *mut c_void,
}

/// One tenant's resources on the device.
pub struct Context {
    params: Buffer,
    data: Buffer,
    descriptor_pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    command_pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    queries: vk::QueryPool,
    fence: vk::Fence,
}

pub struct Gpu {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    queue: vk::Queue,
    queue_family: u32,
    memory_type: u32,
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    module: vk::ShaderModule,
    pipeline: vk::Pipeline,
    /// Nanoseconds per timestamp tick.
    timestamp_period: f64,
    timestamp_mask: u64,
    name: String,
}

// SAFETY: Vulkan handles may be used from any thread as long as access to each queue and
// command pool is externally synchronised; `Gpu` and `Context` are only used through `&mut`
// or from one thread at a time by the executor, and the mapped pointers point into device
// memory that lives as long as the owning object.
unsafe impl Send for Gpu {}
// SAFETY: as for `Gpu`: a context is used by one thread at a time.
unsafe impl Send for Context {}

impl Gpu {
    pub fn new() -> Result<Self, DeviceError> {
        // SAFETY: loads the system Vulkan loader; nothing else in this process unloads it.
        let entry = unsafe { ash::Entry::load()? };
        let app = vk::ApplicationInfo::default()
            .application_name(c"vgpu-sched")
            .api_version(vk::API_VERSION_1_1);
        // SAFETY: the create info and what it points to outlive the call.
        let instance = unsafe {
            entry.create_instance(
                &vk::InstanceCreateInfo::default().application_info(&app),
                None,
            )
        }
        .map_err(vkr("vkCreateInstance"))?;
        match Self::with_instance(entry.clone(), instance.clone()) {
            Ok(gpu) => Ok(gpu),
            Err(e) => {
                // SAFETY: nothing created from the instance survives a failed set-up.
                unsafe { instance.destroy_instance(None) };
                Err(e)
            }
        }
    }

    fn with_instance(entry: ash::Entry, instance: ash::Instance) -> Result<Self, DeviceError> {
        // SAFETY: `instance` is a live instance.
        let physical = unsafe { instance.enumerate_physical_devices() }
            .map_err(vkr("vkEnumeratePhysicalDevices"))?;
        let (pd, queue_family, bits) = physical
            .iter()
            .find_map(|&pd| {
                // SAFETY: `pd` came from this instance.
                let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
                families.iter().enumerate().find_map(|(i, f)| {
                    (f.queue_flags.contains(vk::QueueFlags::COMPUTE) && f.timestamp_valid_bits > 0)
                        .then_some((pd, i as u32, f.timestamp_valid_bits))
                })
            })
            .ok_or(DeviceError::NoDevice)?;
        // SAFETY: `pd` came from this instance.
        let (props, memory) = unsafe {
            (
                instance.get_physical_device_properties(pd),
                instance.get_physical_device_memory_properties(pd),
            )
        };
        let name = props
            .device_name_as_c_str()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unnamed device".to_owned());
        let wanted = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let memory_type = (0..memory.memory_type_count)
            .find(|&i| {
                memory.memory_types[i as usize]
                    .property_flags
                    .contains(wanted)
            })
            .ok_or(DeviceError::NoMemory)?;
        let priorities = [1.0];
        let queue_info = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(queue_family)
            .queue_priorities(&priorities)];
        // SAFETY: the create infos outlive the call; `pd` came from this instance.
        let device = unsafe {
            instance.create_device(
                pd,
                &vk::DeviceCreateInfo::default().queue_create_infos(&queue_info),
                None,
            )
        }
        .map_err(vkr("vkCreateDevice"))?;
        // SAFETY: queue 0 of this family was requested at device creation.
        let queue = unsafe { device.get_device_queue(queue_family, 0) };
        let words = shader::compile(shader::BUSY_LOOP_WGSL)?;
        let bindings = [0, 1].map(|b| {
            vk::DescriptorSetLayoutBinding::default()
                .binding(b)
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE)
        });
        // SAFETY: `device` is live and every create info outlives its call. Objects created
        // here are destroyed in `Drop` (or leak with the device on the error path, which
        // only happens at start-up).
        let (set_layout, layout, module, pipeline) = unsafe {
            let set_layout = device
                .create_descriptor_set_layout(
                    &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
                    None,
                )
                .map_err(vkr("vkCreateDescriptorSetLayout"))?;
            let set_layouts = [set_layout];
            let layout = device
                .create_pipeline_layout(
                    &vk::PipelineLayoutCreateInfo::default().set_layouts(&set_layouts),
                    None,
                )
                .map_err(vkr("vkCreatePipelineLayout"))?;
            let module = device
                .create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&words), None)
                .map_err(vkr("vkCreateShaderModule"))?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main");
            let info = [vk::ComputePipelineCreateInfo::default()
                .stage(stage)
                .layout(layout)];
            let pipeline = device
                .create_compute_pipelines(vk::PipelineCache::null(), &info, None)
                .map_err(|(_, r)| vkr("vkCreateComputePipelines")(r))?[0];
            (set_layout, layout, module, pipeline)
        };
        tracing::info!(device = %name, "Vulkan executor ready");
        Ok(Self {
            _entry: entry,
            instance,
            device,
            queue,
            queue_family,
            memory_type,
            set_layout,
            layout,
            module,
            pipeline,
            timestamp_period: f64::from(props.limits.timestamp_period),
            timestamp_mask: if bits >= 64 {
                u64::MAX
            } else {
                (1u64 << bits) - 1
            },
            name,
        })
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    fn buffer(&self, size: u64) -> Result<Buffer, DeviceError> {
        let d = &self.device;
        // SAFETY: `d` is live; the buffer is bound to fresh memory of at least its size and
        // mapped whole; both are freed in `destroy_context`.
        unsafe {
            let buffer = d
                .create_buffer(
                    &vk::BufferCreateInfo::default()
                        .size(size)
                        .usage(vk::BufferUsageFlags::STORAGE_BUFFER)
                        .sharing_mode(vk::SharingMode::EXCLUSIVE),
                    None,
                )
                .map_err(vkr("vkCreateBuffer"))?;
            let req = d.get_buffer_memory_requirements(buffer);
            if req.memory_type_bits & (1 << self.memory_type) == 0 {
                d.destroy_buffer(buffer, None);
                return Err(DeviceError::NoMemory);
            }
            let memory = d
                .allocate_memory(
                    &vk::MemoryAllocateInfo::default()
                        .allocation_size(req.size)
                        .memory_type_index(self.memory_type),
                    None,
                )
                .map_err(vkr("vkAllocateMemory"))?;
            d.bind_buffer_memory(buffer, memory, 0)
                .map_err(vkr("vkBindBufferMemory"))?;
            let mapped = d
                .map_memory(memory, 0, vk::WHOLE_SIZE, vk::MemoryMapFlags::empty())
                .map_err(vkr("vkMapMemory"))?;
            Ok(Buffer {
                buffer,
                memory,
                mapped,
            })
        }
    }

    /// A tenant's context: its own buffers, descriptor set, command buffer, queries, fence.
    pub fn context(&self) -> Result<Context, DeviceError> {
        let params = self.buffer(PARAMS_BYTES)?;
        let data = self.buffer(u64::from(WORKGROUPS * WORKGROUP_SIZE) * 4)?;
        let d = &self.device;
        let sizes = [vk::DescriptorPoolSize {
            ty: vk::DescriptorType::STORAGE_BUFFER,
            descriptor_count: 2,
        }];
        // SAFETY: `d` is live and every create info outlives its call; the objects are
        // destroyed in `destroy_context`.
        unsafe {
            let descriptor_pool = d
                .create_descriptor_pool(
                    &vk::DescriptorPoolCreateInfo::default()
                        .max_sets(1)
                        .pool_sizes(&sizes),
                    None,
                )
                .map_err(vkr("vkCreateDescriptorPool"))?;
            let layouts = [self.set_layout];
            let set = d
                .allocate_descriptor_sets(
                    &vk::DescriptorSetAllocateInfo::default()
                        .descriptor_pool(descriptor_pool)
                        .set_layouts(&layouts),
                )
                .map_err(vkr("vkAllocateDescriptorSets"))?[0];
            let infos = [params.buffer, data.buffer].map(|buffer| {
                [vk::DescriptorBufferInfo {
                    buffer,
                    offset: 0,
                    range: vk::WHOLE_SIZE,
                }]
            });
            let writes = [0usize, 1].map(|b| {
                vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .dst_binding(b as u32)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&infos[b])
            });
            d.update_descriptor_sets(&writes, &[]);
            let command_pool = d
                .create_command_pool(
                    &vk::CommandPoolCreateInfo::default()
                        .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER)
                        .queue_family_index(self.queue_family),
                    None,
                )
                .map_err(vkr("vkCreateCommandPool"))?;
            let cmd = d
                .allocate_command_buffers(
                    &vk::CommandBufferAllocateInfo::default()
                        .command_pool(command_pool)
                        .level(vk::CommandBufferLevel::PRIMARY)
                        .command_buffer_count(1),
                )
                .map_err(vkr("vkAllocateCommandBuffers"))?[0];
            let queries = d
                .create_query_pool(
                    &vk::QueryPoolCreateInfo::default()
                        .query_type(vk::QueryType::TIMESTAMP)
                        .query_count(2),
                    None,
                )
                .map_err(vkr("vkCreateQueryPool"))?;
            let fence = d
                .create_fence(&vk::FenceCreateInfo::default(), None)
                .map_err(vkr("vkCreateFence"))?;
            Ok(Context {
                params,
                data,
                descriptor_pool,
                set,
                command_pool,
                cmd,
                queries,
                fence,
            })
        }
    }

    /// Records and submits one job of `iterations` loop steps in `ctx`, bracketed by
    /// timestamps. At most one job per context is in flight (the executor waits for it).
    pub fn submit(&self, ctx: &Context, iterations: u32, seed: u32) -> Result<(), DeviceError> {
        let d = &self.device;
        // SAFETY: the params buffer is mapped, host-coherent and at least 16 bytes, and the
        // device is not reading it (the context's previous job has completed); the command
        // buffer is not pending for the same reason; all handles belong to `d`. Host writes
        // before vkQueueSubmit are visible to the device.
        unsafe {
            let p = ctx.params.mapped.cast::<u32>();
            p.write_volatile(iterations);
            p.add(1).write_volatile(seed);
            d.reset_command_buffer(ctx.cmd, vk::CommandBufferResetFlags::empty())
                .map_err(vkr("vkResetCommandBuffer"))?;
            d.begin_command_buffer(
                ctx.cmd,
                &vk::CommandBufferBeginInfo::default()
                    .flags(vk::CommandBufferUsageFlags::ONE_TIME_SUBMIT),
            )
            .map_err(vkr("vkBeginCommandBuffer"))?;
            d.cmd_reset_query_pool(ctx.cmd, ctx.queries, 0, 2);
            d.cmd_write_timestamp(ctx.cmd, vk::PipelineStageFlags::TOP_OF_PIPE, ctx.queries, 0);
            d.cmd_bind_pipeline(ctx.cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            d.cmd_bind_descriptor_sets(
                ctx.cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[ctx.set],
                &[],
            );
            d.cmd_dispatch(ctx.cmd, WORKGROUPS, 1, 1);
            d.cmd_write_timestamp(
                ctx.cmd,
                vk::PipelineStageFlags::BOTTOM_OF_PIPE,
                ctx.queries,
                1,
            );
            d.end_command_buffer(ctx.cmd)
                .map_err(vkr("vkEndCommandBuffer"))?;
            let cmds = [ctx.cmd];
            let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
            d.queue_submit(self.queue, &submit, ctx.fence)
                .map_err(vkr("vkQueueSubmit"))?;
        }
        Ok(())
    }

    /// Waits up to `timeout` for the context's job; once done, its device time from the
    /// timestamps.
    pub fn poll(&self, ctx: &Context, timeout: Nanos) -> Result<Option<Nanos>, DeviceError> {
        let d = &self.device;
        // SAFETY: the fence and query pool belong to `d`; the query results are read only
        // after the fence has signalled, so both timestamps are available.
        unsafe {
            match d.wait_for_fences(&[ctx.fence], true, timeout) {
                Ok(()) => {}
                Err(vk::Result::TIMEOUT) => return Ok(None),
                Err(e) => return Err(vkr("vkWaitForFences")(e)),
            }
            d.reset_fences(&[ctx.fence]).map_err(vkr("vkResetFences"))?;
            let mut ts = [0u64; 2];
            d.get_query_pool_results(
                ctx.queries,
                0,
                &mut ts,
                vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
            )
            .map_err(vkr("vkGetQueryPoolResults"))?;
            let ticks = ts[1].wrapping_sub(ts[0]) & self.timestamp_mask;
            Ok(Some((ticks as f64 * self.timestamp_period) as Nanos))
        }
    }

    /// Waits for everything in flight, then frees the context.
    pub fn destroy_context(&self, ctx: Context) {
        let d = &self.device;
        // SAFETY: after vkDeviceWaitIdle nothing of the context is in use; each handle is
        // destroyed once, here.
        unsafe {
            let _ = d.device_wait_idle();
            d.destroy_fence(ctx.fence, None);
            d.destroy_query_pool(ctx.queries, None);
            d.destroy_command_pool(ctx.command_pool, None);
            d.destroy_descriptor_pool(ctx.descriptor_pool, None);
            for b in [ctx.params, ctx.data] {
                d.unmap_memory(b.memory);
                d.destroy_buffer(b.buffer, None);
                d.free_memory(b.memory, None);
            }
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: contexts are destroyed by the executor before the `Gpu`; after waiting for
        // the device nothing is in use, and each handle is destroyed once, children first.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_pipeline(self.pipeline, None);
            self.device.destroy_shader_module(self.module, None);
            self.device.destroy_pipeline_layout(self.layout, None);
            self.device
                .destroy_descriptor_set_layout(self.set_layout, None);
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}
