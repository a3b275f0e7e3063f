//! `vk-conformance`: the project's Vulkan conformance checks, run with ash on whatever driver the
//! environment selects (native lavapipe, or Mesa's venus driver talking to our renderer), so the
//! same checks run on both and any difference shows. Prints one `CHECK <name> PASS|FAIL <detail>`
//! line per check, then `N passed, M failed`.

// A Vulkan API test program: nearly every statement is an ash call, so unsafe blocks group the
// calls of one step under one SAFETY comment.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use std::sync::Mutex;

use ash::vk;

#[path = "vk_conformance/checks.rs"]
mod checks;
#[path = "vk_conformance/dynamic.rs"]
mod dynamic;
#[path = "vk_conformance/render.rs"]
mod render;

type Check = Result<String, String>;
type CheckFn = fn(&Gpu) -> Check;

struct Gpu {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    queue: Mutex<vk::Queue>,
    family: u32,
    mem_props: vk::PhysicalDeviceMemoryProperties,
    name: String,
    /// VK_KHR_push_descriptor, where the device has it.
    push: Option<ash::khr::push_descriptor::Device>,
    /// VK_KHR_dynamic_rendering with dynamicRendering, where the device has it.
    dynamic_rendering: Option<ash::khr::dynamic_rendering::Device>,
    /// VK_EXT_multi_draw with multiDraw, where the device has it.
    multi_draw: Option<ash::ext::multi_draw::Device>,
    /// VK_EXT_calibrated_timestamps, where the device has it: (instance, device) functions.
    calibrated: Option<(
        ash::ext::calibrated_timestamps::Instance,
        ash::ext::calibrated_timestamps::Device,
        vk::PhysicalDevice,
    )>,
}

fn vkr<T>(r: Result<T, vk::Result>, what: &str) -> Result<T, String> {
    r.map_err(|e| format!("{what}: {e}"))
}

impl Gpu {
    fn new() -> Result<Self, String> {
        // SAFETY: loads the system Vulkan loader, used only through ash.
        let entry = unsafe { ash::Entry::load() }.map_err(|e| e.to_string())?;
        let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_2);
        let info = vk::InstanceCreateInfo::default().application_info(&app);
        // SAFETY: a valid create info.
        let instance = vkr(
            unsafe { entry.create_instance(&info, None) },
            "vkCreateInstance",
        )?;
        // SAFETY: a live instance.
        let pd = *vkr(
            unsafe { instance.enumerate_physical_devices() },
            "enumerate",
        )?
        .first()
        .ok_or("no device")?;
        // SAFETY: `pd` is a live physical device.
        let props = unsafe { instance.get_physical_device_properties(pd) };
        let name = props
            .device_name_as_c_str()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        // SAFETY: as above.
        let families = unsafe { instance.get_physical_device_queue_family_properties(pd) };
        let family = families
            .iter()
            .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
            .ok_or("no compute queue")? as u32;
        let prio = [1.0];
        let qinfo = [vk::DeviceQueueCreateInfo::default()
            .queue_family_index(family)
            .queue_priorities(&prio)];
        let mut v12 = vk::PhysicalDeviceVulkan12Features::default().timeline_semaphore(true);
        // SAFETY: a live physical device.
        let exts =
            unsafe { instance.enumerate_device_extension_properties(pd) }.unwrap_or_default();
        let has =
            |name: &std::ffi::CStr| exts.iter().any(|e| e.extension_name_as_c_str() == Ok(name));
        let has_push = has(ash::khr::push_descriptor::NAME);
        let has_multi_draw = has(ash::ext::multi_draw::NAME);
        let has_calibrated = has(ash::ext::calibrated_timestamps::NAME);
        let has_dynamic = has(ash::khr::dynamic_rendering::NAME);
        let names: Vec<*const i8> = [
            (has_dynamic, ash::khr::dynamic_rendering::NAME),
            (has_push, ash::khr::push_descriptor::NAME),
            (has_multi_draw, ash::ext::multi_draw::NAME),
            (has_calibrated, ash::ext::calibrated_timestamps::NAME),
        ]
        .iter()
        .filter(|(on, _)| *on)
        .map(|(_, n)| n.as_ptr())
        .collect();
        let mut multi_draw = vk::PhysicalDeviceMultiDrawFeaturesEXT::default().multi_draw(true);
        let mut dinfo = vk::DeviceCreateInfo::default()
            .queue_create_infos(&qinfo)
            .enabled_extension_names(&names)
            .push_next(&mut v12);
        if has_multi_draw {
            dinfo = dinfo.push_next(&mut multi_draw);
        }
        let mut dynamic =
            vk::PhysicalDeviceDynamicRenderingFeatures::default().dynamic_rendering(true);
        if has_dynamic {
            dinfo = dinfo.push_next(&mut dynamic);
        }
        // SAFETY: valid create info for a live physical device.
        let device = vkr(
            unsafe { instance.create_device(pd, &dinfo, None) },
            "vkCreateDevice",
        )?;
        // SAFETY: the queue family exists and has one queue.
        let queue = unsafe { device.get_device_queue(family, 0) };
        // SAFETY: a live physical device.
        let mem_props = unsafe { instance.get_physical_device_memory_properties(pd) };
        let push = has_push.then(|| ash::khr::push_descriptor::Device::new(&instance, &device));
        let multi_draw =
            has_multi_draw.then(|| ash::ext::multi_draw::Device::new(&instance, &device));
        let calibrated = has_calibrated.then(|| {
            (
                ash::ext::calibrated_timestamps::Instance::new(&entry, &instance),
                ash::ext::calibrated_timestamps::Device::new(&instance, &device),
                pd,
            )
        });
        let dynamic_rendering =
            has_dynamic.then(|| ash::khr::dynamic_rendering::Device::new(&instance, &device));
        Ok(Gpu {
            push,
            dynamic_rendering,
            multi_draw,
            calibrated,
            _entry: entry,
            instance,
            device,
            queue: Mutex::new(queue),
            family,
            mem_props,
            name,
        })
    }

    fn host_visible_type(&self, bits: u32) -> Result<u32, String> {
        let want = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        (0..self.mem_props.memory_type_count)
            .find(|&i| {
                bits & (1 << i) != 0
                    && self.mem_props.memory_types[i as usize]
                        .property_flags
                        .contains(want)
            })
            .ok_or_else(|| "no host-visible coherent memory".into())
    }
}

impl Gpu {
    /// A command pool of the queue's family with one command buffer, begun; the caller destroys
    /// the pool.
    fn begun_command_buffer(&self) -> Result<(vk::CommandPool, vk::CommandBuffer), String> {
        let d = &self.device;
        // SAFETY: fresh objects from valid infos.
        unsafe {
            let pool = vkr(
                d.create_command_pool(
                    &vk::CommandPoolCreateInfo::default().queue_family_index(self.family),
                    None,
                ),
                "command pool",
            )?;
            let cmd = vkr(
                d.allocate_command_buffers(
                    &vk::CommandBufferAllocateInfo::default()
                        .command_pool(pool)
                        .command_buffer_count(1),
                ),
                "command buffer",
            )?[0];
            vkr(
                d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default()),
                "begin",
            )?;
            Ok((pool, cmd))
        }
    }

    /// A compute pipeline of SPIR-V `code` (entry `main`) with `layout`, made through `cache`;
    /// its shader module is freed once the pipeline holds it.
    fn compute_pipeline(
        &self,
        code: &[u32],
        layout: vk::PipelineLayout,
        cache: vk::PipelineCache,
    ) -> Result<vk::Pipeline, String> {
        let d = &self.device;
        // SAFETY: valid create infos; the module is destroyed after the pipeline is made.
        unsafe {
            let module = vkr(
                d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(code), None),
                "shader module",
            )?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main");
            let info = [vk::ComputePipelineCreateInfo::default()
                .stage(stage)
                .layout(layout)];
            let pipeline = d.create_compute_pipelines(cache, &info, None);
            d.destroy_shader_module(module, None);
            pipeline
                .map(|p| p[0])
                .map_err(|(_, e)| format!("compute pipeline: {e}"))
        }
    }

    /// A descriptor pool for one set of one descriptor of each type.
    fn descriptor_pool(&self, types: &[vk::DescriptorType]) -> Result<vk::DescriptorPool, String> {
        let sizes: Vec<_> = types
            .iter()
            .map(|&t| vk::DescriptorPoolSize::default().ty(t).descriptor_count(1))
            .collect();
        let info = vk::DescriptorPoolCreateInfo::default()
            .max_sets(1)
            .pool_sizes(&sizes);
        // SAFETY: a valid create info.
        vkr(
            unsafe { self.device.create_descriptor_pool(&info, None) },
            "descriptor pool",
        )
    }

    /// Records with `record` into a fresh command buffer, submits it and waits for it.
    fn one_shot(&self, record: impl FnOnce(vk::CommandBuffer)) -> Result<(), String> {
        let d = &self.device;
        let (pool, cmd) = self.begun_command_buffer()?;
        // SAFETY: fresh objects, destroyed after the fence says the GPU is done.
        unsafe {
            record(cmd);
            vkr(d.end_command_buffer(cmd), "end")?;
            let fence = vkr(
                d.create_fence(&vk::FenceCreateInfo::default(), None),
                "fence",
            )?;
            let cmds = [cmd];
            let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
            let r = {
                let q = self.queue.lock().unwrap();
                d.queue_submit(*q, &submit, fence)
            };
            let r = r.and_then(|()| d.wait_for_fences(&[fence], true, 60_000_000_000));
            d.destroy_fence(fence, None);
            d.destroy_command_pool(pool, None);
            vkr(r, "submit and wait")
        }
    }
}

impl Gpu {
    /// A w x h RGBA8 2D image with its own memory, bound; the caller destroys both.
    fn color_image(
        &self,
        w: u32,
        h: u32,
        usage: vk::ImageUsageFlags,
    ) -> Result<(vk::Image, vk::DeviceMemory), String> {
        let d = &self.device;
        let info = vk::ImageCreateInfo::default()
            .image_type(vk::ImageType::TYPE_2D)
            .format(vk::Format::R8G8B8A8_UNORM)
            .extent(vk::Extent3D {
                width: w,
                height: h,
                depth: 1,
            })
            .mip_levels(1)
            .array_layers(1)
            .samples(vk::SampleCountFlags::TYPE_1)
            .usage(usage);
        // SAFETY: a valid create info; the memory is of a type the image accepts and big enough.
        unsafe {
            let image = vkr(d.create_image(&info, None), "image")?;
            let req = d.get_image_memory_requirements(image);
            let ty = (0..self.mem_props.memory_type_count)
                .find(|&i| req.memory_type_bits & (1 << i) != 0)
                .ok_or("no memory type")?;
            let alloc = vk::MemoryAllocateInfo::default()
                .allocation_size(req.size)
                .memory_type_index(ty);
            let mem = vkr(d.allocate_memory(&alloc, None), "image memory")?;
            vkr(d.bind_image_memory(image, mem, 0), "bind image")?;
            Ok((image, mem))
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: all child objects were destroyed by the checks.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

/// A host-visible storage buffer, mapped.
struct HostBuffer<'a> {
    gpu: &'a Gpu,
    buffer: vk::Buffer,
    memory: vk::DeviceMemory,
    ptr: *mut u32,
    len: usize,
}

impl<'a> HostBuffer<'a> {
    fn new(gpu: &'a Gpu, words: usize) -> Result<Self, String> {
        let d = &gpu.device;
        let size = (words * 4) as u64;
        let info = vk::BufferCreateInfo::default().size(size).usage(
            vk::BufferUsageFlags::STORAGE_BUFFER
                | vk::BufferUsageFlags::TRANSFER_SRC
                | vk::BufferUsageFlags::TRANSFER_DST,
        );
        // SAFETY: valid create info.
        let buffer = vkr(unsafe { d.create_buffer(&info, None) }, "vkCreateBuffer")?;
        // SAFETY: a live buffer.
        let req = unsafe { d.get_buffer_memory_requirements(buffer) };
        let alloc = vk::MemoryAllocateInfo::default()
            .allocation_size(req.size)
            .memory_type_index(gpu.host_visible_type(req.memory_type_bits)?);
        // SAFETY: valid allocate info.
        let memory = vkr(
            unsafe { d.allocate_memory(&alloc, None) },
            "vkAllocateMemory",
        )?;
        // SAFETY: fresh buffer and memory of sufficient size.
        let bound = unsafe { d.bind_buffer_memory(buffer, memory, 0) };
        vkr(bound, "vkBindBufferMemory")?;
        // SAFETY: host-visible memory, mapped once.
        let ptr = vkr(
            unsafe { d.map_memory(memory, 0, size, vk::MemoryMapFlags::empty()) },
            "vkMapMemory",
        )? as *mut u32;
        Ok(HostBuffer {
            gpu,
            buffer,
            memory,
            ptr,
            len: words,
        })
    }

    // The mapping is device memory, not a Rust borrow of `self`.
    #[allow(clippy::mut_from_ref)]
    fn words(&self) -> &mut [u32] {
        // SAFETY: the mapping holds `len` u32s and lives as long as self; checks use it from one
        // thread at a time, between GPU submissions they wait for.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }
}

impl Drop for HostBuffer<'_> {
    fn drop(&mut self) {
        // SAFETY: the GPU is done with them (checks wait for their submissions).
        unsafe {
            self.gpu.device.unmap_memory(self.memory);
            self.gpu.device.destroy_buffer(self.buffer, None);
            self.gpu.device.free_memory(self.memory, None);
        }
    }
}

pub(crate) fn spirv(wgsl: &str) -> Result<Vec<u32>, String> {
    spirv_stage(wgsl, naga::ShaderStage::Compute, "main")
}

fn spirv_stage(wgsl: &str, stage: naga::ShaderStage, entry: &str) -> Result<Vec<u32>, String> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| e.emit_to_string(wgsl))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::IMMEDIATES,
    )
    .validate(&module)
    .map_err(|e| format!("{e:?}"))?;
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: stage,
        entry_point: entry.into(),
    };
    let options = naga::back::spv::Options {
        lang_version: (1, 0),
        ..Default::default()
    };
    naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline)).map_err(|e| e.to_string())
}

pub(crate) const DOUBLE_PLUS_INDEX: &str = r#"
struct Params { add: u32 }
var<immediate> params: Params;
@group(0) @binding(0) var<storage, read_write> data: array<u32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    data[id.x] = data[id.x] * 2u + id.x + params.add;
}
"#;

/// A compute pipeline over one storage buffer with a 4-byte push constant.
struct Compute<'a> {
    gpu: &'a Gpu,
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
    cmd_pool: vk::CommandPool,
    cmd: vk::CommandBuffer,
    fence: vk::Fence,
}

impl<'a> Compute<'a> {
    fn new(gpu: &'a Gpu, buffer: &HostBuffer) -> Result<Self, String> {
        Self::with_cache(gpu, buffer, vk::PipelineCache::null())
    }

    /// As `new`, the pipeline made through `cache`.
    fn with_cache(
        gpu: &'a Gpu,
        buffer: &HostBuffer,
        cache: vk::PipelineCache,
    ) -> Result<Self, String> {
        let d = &gpu.device;
        let code = spirv(DOUBLE_PLUS_INDEX)?;
        let binding = [vk::DescriptorSetLayoutBinding::default()
            .binding(0)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)];
        // SAFETY: every create info below is valid and its arrays outlive the call.
        let set_layout = vkr(
            unsafe {
                d.create_descriptor_set_layout(
                    &vk::DescriptorSetLayoutCreateInfo::default().bindings(&binding),
                    None,
                )
            },
            "set layout",
        )?;
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .size(4)];
        let layouts = [set_layout];
        // SAFETY: see above.
        let layout = vkr(
            unsafe {
                d.create_pipeline_layout(
                    &vk::PipelineLayoutCreateInfo::default()
                        .set_layouts(&layouts)
                        .push_constant_ranges(&ranges),
                    None,
                )
            },
            "pipeline layout",
        )?;
        let pipeline = gpu.compute_pipeline(&code, layout, cache)?;
        let pool = gpu.descriptor_pool(&[vk::DescriptorType::STORAGE_BUFFER])?;
        // SAFETY: see above.
        let set = vkr(
            unsafe {
                d.allocate_descriptor_sets(
                    &vk::DescriptorSetAllocateInfo::default()
                        .descriptor_pool(pool)
                        .set_layouts(&layouts),
                )
            },
            "descriptor set",
        )?[0];
        let binfo = [vk::DescriptorBufferInfo::default()
            .buffer(buffer.buffer)
            .range(vk::WHOLE_SIZE)];
        let write = [vk::WriteDescriptorSet::default()
            .dst_set(set)
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&binfo)];
        // SAFETY: a live set and buffer.
        unsafe { d.update_descriptor_sets(&write, &[]) };
        // SAFETY: see above.
        let cmd_pool = vkr(
            unsafe {
                d.create_command_pool(
                    &vk::CommandPoolCreateInfo::default()
                        .queue_family_index(gpu.family)
                        .flags(vk::CommandPoolCreateFlags::RESET_COMMAND_BUFFER),
                    None,
                )
            },
            "command pool",
        )?;
        // SAFETY: see above.
        let cmd = vkr(
            unsafe {
                d.allocate_command_buffers(
                    &vk::CommandBufferAllocateInfo::default()
                        .command_pool(cmd_pool)
                        .command_buffer_count(1),
                )
            },
            "command buffer",
        )?[0];
        // SAFETY: see above.
        let fence = vkr(
            unsafe { d.create_fence(&vk::FenceCreateInfo::default(), None) },
            "fence",
        )?;
        Ok(Compute {
            gpu,
            set_layout,
            layout,
            pipeline,
            pool,
            set,
            cmd_pool,
            cmd,
            fence,
        })
    }

    /// Records and runs `groups` workgroups with push constant `add`, waiting for the result.
    fn run(&self, groups: u32, add: u32) -> Result<(), String> {
        self.run_after(groups, add, None)
    }

    /// As `run`, the submission first waiting for binary semaphore `wait`.
    fn run_after(&self, groups: u32, add: u32, wait: Option<vk::Semaphore>) -> Result<(), String> {
        let d = &self.gpu.device;
        // SAFETY: the command buffer is not in flight (each run waits for its
        // fence) and every handle recorded is live.
        unsafe {
            vkr(
                d.reset_command_buffer(self.cmd, vk::CommandBufferResetFlags::empty()),
                "reset",
            )?;
            vkr(
                d.begin_command_buffer(self.cmd, &vk::CommandBufferBeginInfo::default()),
                "begin",
            )?;
            d.cmd_bind_pipeline(self.cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            d.cmd_bind_descriptor_sets(
                self.cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[self.set],
                &[],
            );
            d.cmd_push_constants(
                self.cmd,
                self.layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                &add.to_le_bytes(),
            );
            d.cmd_dispatch(self.cmd, groups, 1, 1);
            let barrier = [vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::SHADER_WRITE)
                .dst_access_mask(vk::AccessFlags::HOST_READ)];
            d.cmd_pipeline_barrier(
                self.cmd,
                vk::PipelineStageFlags::COMPUTE_SHADER,
                vk::PipelineStageFlags::HOST,
                vk::DependencyFlags::empty(),
                &barrier,
                &[],
                &[],
            );
            vkr(d.end_command_buffer(self.cmd), "end")?;
            let cmds = [self.cmd];
            let waits: Vec<vk::Semaphore> = wait.into_iter().collect();
            let stages = [vk::PipelineStageFlags::COMPUTE_SHADER];
            let submit = [vk::SubmitInfo::default()
                .command_buffers(&cmds)
                .wait_semaphores(&waits)
                .wait_dst_stage_mask(&stages[..waits.len()])];
            vkr(d.reset_fences(&[self.fence]), "reset fence")?;
            {
                let q = self.gpu.queue.lock().unwrap();
                vkr(d.queue_submit(*q, &submit, self.fence), "vkQueueSubmit")?;
            }
            vkr(
                d.wait_for_fences(&[self.fence], true, 60_000_000_000),
                "vkWaitForFences",
            )?;
        }
        Ok(())
    }
}

impl Drop for Compute<'_> {
    fn drop(&mut self) {
        let d = &self.gpu.device;
        // SAFETY: nothing is in flight (runs wait for their fence).
        unsafe {
            d.destroy_fence(self.fence, None);
            d.destroy_command_pool(self.cmd_pool, None);
            d.destroy_descriptor_pool(self.pool, None);
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
        }
    }
}

fn check_compute_dispatch(gpu: &Gpu) -> Check {
    let words = 64 * 1024;
    let buf = HostBuffer::new(gpu, words)?;
    for (i, w) in buf.words().iter_mut().enumerate() {
        *w = i as u32 * 3;
    }
    let c = Compute::new(gpu, &buf)?;
    c.run((words / 64) as u32, 7)?;
    let bad = buf
        .words()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != (i as u32 * 3) * 2 + i as u32 + 7)
        .count();
    if bad != 0 {
        return Err(format!("{bad} of {words} words wrong"));
    }
    Ok(format!(
        "{words} words doubled plus index plus push constant"
    ))
}

fn check_repeated_dispatches(gpu: &Gpu) -> Check {
    let buf = HostBuffer::new(gpu, 256)?;
    buf.words().fill(1);
    let c = Compute::new(gpu, &buf)?;
    for _ in 0..20 {
        c.run(4, 0)?;
    }
    // x -> 2x + i, twenty times: x20 = 2^20 * 1 + i * (2^20 - 1)
    let bad = buf
        .words()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != (1u32 << 20).wrapping_add((i as u32).wrapping_mul((1 << 20) - 1)))
        .count();
    if bad != 0 {
        return Err(format!("{bad} words wrong after 20 submissions"));
    }
    Ok("20 submissions, each waited on by fence".into())
}

/// `--abandon`: makes objects of every kind a renderer must clean up (memory, a bound buffer,
/// a fence, a command pool with a recorded buffer, a descriptor pool with a set) and exits
/// without destroying any of them, or the device, as a crashing client would.
fn abandon(gpu: &Gpu) -> ! {
    let result = (|| -> Result<(), String> {
        let buf = HostBuffer::new(gpu, 1024)?;
        std::mem::forget(buf);
        let d = &gpu.device;
        // SAFETY: valid create infos on a live device; the objects are deliberately leaked.
        unsafe {
            vkr(
                d.create_fence(&vk::FenceCreateInfo::default(), None),
                "fence",
            )?;
            let (_, cmd) = gpu.begun_command_buffer()?;
            vkr(d.end_command_buffer(cmd), "end")?;
            gpu.descriptor_pool(&[vk::DescriptorType::STORAGE_BUFFER])?;
            // A synchronous call: everything above has reached the renderer before the exit.
            vkr(d.device_wait_idle(), "device wait idle")?;
        }
        Ok(())
    })();
    match result {
        Ok(()) => println!("ABANDONED"),
        Err(e) => println!("CHECK abandon FAIL {e}"),
    }
    std::process::exit(0)
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // --check NAME (repeatable) runs only those checks; --list names them all, touching no GPU.
    let wanted: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--check")
        .map(|w| w[1].as_str())
        .collect();
    if let Some(unknown) = wanted.iter().find(|w| !CHECKS.iter().any(|(n, _)| n == *w)) {
        eprintln!("vk-conformance: no check named {unknown}; --list names them");
        std::process::exit(2);
    }
    if args.iter().any(|a| a == "--list") {
        for (name, _) in CHECKS {
            println!("{name}");
        }
        return;
    }
    let gpu = match Gpu::new() {
        Ok(g) => g,
        Err(e) => {
            println!("CHECK device FAIL {e}");
            println!("0 passed, 1 failed");
            std::process::exit(1);
        }
    };
    println!("DEVICE {}", gpu.name);
    if args.iter().any(|a| a == "--abandon") {
        abandon(&gpu);
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, f) in CHECKS {
        if !wanted.is_empty() && !wanted.contains(name) {
            continue;
        }
        // Marks the case in flight, so that a runner can tell which one a crash belongs to.
        println!("CHECK-START {name}");
        let start = std::time::Instant::now();
        let outcome = f(&gpu);
        println!(
            "CHECK-TIME {name} {:.1} ms",
            start.elapsed().as_secs_f64() * 1e3
        );
        match outcome {
            Ok(detail) => {
                passed += 1;
                println!("CHECK {name} PASS {detail}");
            }
            Err(e) => {
                failed += 1;
                println!("CHECK {name} FAIL {e}");
            }
        }
    }
    println!("{passed} passed, {failed} failed");
    std::process::exit(if failed == 0 { 0 } else { 1 });
}

/// Every check, in the order they run.
const CHECKS: &[(&str, CheckFn)] = &[
    ("compute_dispatch", check_compute_dispatch),
    ("repeated_dispatches", check_repeated_dispatches),
    ("transfers", checks::transfers),
    ("timeline_semaphores", checks::timeline_semaphores),
    ("timestamps", checks::timestamps),
    ("events", checks::events),
    ("two_threads", checks::two_threads),
    ("image_copies_and_clears", checks::image_copies_and_clears),
    ("push_descriptors", checks::push_descriptors),
    ("offscreen_triangle", render::offscreen_triangle),
    ("multi_draw", render::multi_draw),
    (
        "dynamic_rendering_blit_sample",
        dynamic::dynamic_rendering_blit_sample,
    ),
    ("calibrated_timestamps", checks::calibrated_timestamps),
    (
        "pipeline_cache_binary_semaphore",
        checks::pipeline_cache_binary_semaphore,
    ),
];
