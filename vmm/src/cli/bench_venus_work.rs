//! The workloads of `vgpu bench venus`, each run in a process of its own on whatever Vulkan
//! driver its environment selects (lavapipe natively, or Mesa's venus driver talking to our
//! renderer): each prints `RESULT <number>`.

// Each unsafe block is one step of Vulkan calls on objects this module made, under the one
// argument its SAFETY comment states.
#![allow(clippy::multiple_unsafe_ops_per_block)]

use std::time::Instant;

use ash::vk;

type R<T> = Result<T, String>;

fn vkr<T>(r: Result<T, vk::Result>, what: &str) -> R<T> {
    r.map_err(|e| format!("{what}: {e}"))
}

struct Gpu {
    _entry: ash::Entry,
    instance: ash::Instance,
    device: ash::Device,
    queue: vk::Queue,
    family: u32,
    mem: vk::PhysicalDeviceMemoryProperties,
}

impl Gpu {
    fn new() -> R<Self> {
        // SAFETY: loads the system loader; every object below is created from valid infos and
        // destroyed in Drop.
        unsafe {
            let entry = ash::Entry::load().map_err(|e| e.to_string())?;
            let app = vk::ApplicationInfo::default().api_version(vk::API_VERSION_1_2);
            let instance = vkr(
                entry.create_instance(
                    &vk::InstanceCreateInfo::default().application_info(&app),
                    None,
                ),
                "instance",
            )?;
            let pd = *vkr(instance.enumerate_physical_devices(), "devices")?
                .first()
                .ok_or("no device")?;
            let family = instance
                .get_physical_device_queue_family_properties(pd)
                .iter()
                .position(|f| f.queue_flags.contains(vk::QueueFlags::COMPUTE))
                .ok_or("no compute queue")? as u32;
            let prio = [1.0];
            let q = [vk::DeviceQueueCreateInfo::default()
                .queue_family_index(family)
                .queue_priorities(&prio)];
            let device = vkr(
                instance.create_device(
                    pd,
                    &vk::DeviceCreateInfo::default().queue_create_infos(&q),
                    None,
                ),
                "device",
            )?;
            let queue = device.get_device_queue(family, 0);
            let mem = instance.get_physical_device_memory_properties(pd);
            Ok(Gpu {
                _entry: entry,
                instance,
                device,
                queue,
                family,
                mem,
            })
        }
    }

    fn command_buffer(&self) -> R<(vk::CommandPool, vk::CommandBuffer, vk::Fence)> {
        let d = &self.device;
        // SAFETY: fresh objects from valid infos; the caller destroys them.
        unsafe {
            let pool = vkr(
                d.create_command_pool(
                    &vk::CommandPoolCreateInfo::default().queue_family_index(self.family),
                    None,
                ),
                "pool",
            )?;
            let cmd = vkr(
                d.allocate_command_buffers(
                    &vk::CommandBufferAllocateInfo::default()
                        .command_pool(pool)
                        .command_buffer_count(1),
                ),
                "cmd",
            )?[0];
            let fence = vkr(
                d.create_fence(&vk::FenceCreateInfo::default(), None),
                "fence",
            )?;
            Ok((pool, cmd, fence))
        }
    }

    fn submit_wait(&self, cmd: vk::CommandBuffer, fence: vk::Fence) -> R<()> {
        let d = &self.device;
        let cmds = [cmd];
        let submit = [vk::SubmitInfo::default().command_buffers(&cmds)];
        // SAFETY: a recorded command buffer not in flight, and an unsignalled fence.
        unsafe {
            vkr(d.queue_submit(self.queue, &submit, fence), "submit")?;
            vkr(d.wait_for_fences(&[fence], true, u64::MAX), "wait")?;
            vkr(d.reset_fences(&[fence]), "reset")
        }
    }
}

impl Drop for Gpu {
    fn drop(&mut self) {
        // SAFETY: every child object was destroyed by its workload.
        unsafe {
            let _ = self.device.device_wait_idle();
            self.device.destroy_device(None);
            self.instance.destroy_instance(None);
        }
    }
}

/// Submissions of one small dispatch (one workgroup of 64 additions), each waited on by a
/// fence: round trips per second.
fn roundtrip(gpu: &Gpu) -> R<f64> {
    let (buffer, memory, _) = host_buffer(gpu, 64 * 4, vk::BufferUsageFlags::STORAGE_BUFFER)?;
    let job = ComputeJob::new(gpu, SMALL, buffer)?;
    let (pool, cmd, fence) = gpu.command_buffer()?;
    job.record(gpu, cmd, 1)?;
    let n = 2000;
    gpu.submit_wait(cmd, fence)?;
    let t = Instant::now();
    for _ in 0..n {
        gpu.submit_wait(cmd, fence)?;
    }
    let rate = n as f64 / t.elapsed().as_secs_f64();
    // SAFETY: nothing in flight.
    unsafe { teardown(gpu, (pool, fence), job, (buffer, memory)) };
    Ok(rate)
}

const SMALL: &str = r#"
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    data[id.x] = data[id.x] + 1.0;
}
"#;

const BUSY: &str = r#"
@group(0) @binding(0) var<storage, read_write> data: array<f32>;
@compute @workgroup_size(64)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    var x = data[id.x];
    for (var i = 0u; i < 4096u; i = i + 1u) {
        x = x * 0.999 + 0.5;
    }
    data[id.x] = x;
}
"#;

fn spirv(wgsl: &str) -> R<Vec<u32>> {
    let module = naga::front::wgsl::parse_str(wgsl).map_err(|e| e.emit_to_string(wgsl))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| format!("{e:?}"))?;
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: "main".into(),
    };
    naga::back::spv::write_vec(&module, &info, &Default::default(), Some(&pipeline))
        .map_err(|e| e.to_string())
}

fn host_buffer(
    gpu: &Gpu,
    size: u64,
    usage: vk::BufferUsageFlags,
) -> R<(vk::Buffer, vk::DeviceMemory, *mut u8)> {
    let d = &gpu.device;
    // SAFETY: fresh objects from valid infos; the caller destroys them.
    unsafe {
        let buffer = vkr(
            d.create_buffer(
                &vk::BufferCreateInfo::default().size(size).usage(usage),
                None,
            ),
            "buffer",
        )?;
        let req = d.get_buffer_memory_requirements(buffer);
        let want = vk::MemoryPropertyFlags::HOST_VISIBLE | vk::MemoryPropertyFlags::HOST_COHERENT;
        let ty = (0..gpu.mem.memory_type_count)
            .find(|&i| {
                req.memory_type_bits & (1 << i) != 0
                    && gpu.mem.memory_types[i as usize]
                        .property_flags
                        .contains(want)
            })
            .ok_or("no host-visible memory")?;
        let memory = vkr(
            d.allocate_memory(
                &vk::MemoryAllocateInfo::default()
                    .allocation_size(req.size)
                    .memory_type_index(ty),
                None,
            ),
            "memory",
        )?;
        vkr(d.bind_buffer_memory(buffer, memory, 0), "bind")?;
        let ptr = vkr(
            d.map_memory(memory, 0, size, vk::MemoryMapFlags::empty()),
            "map",
        )?
        .cast::<u8>();
        Ok((buffer, memory, ptr))
    }
}

/// A compute pipeline over one storage buffer, with its descriptor set.
struct ComputeJob {
    module: vk::ShaderModule,
    set_layout: vk::DescriptorSetLayout,
    layout: vk::PipelineLayout,
    pipeline: vk::Pipeline,
    pool: vk::DescriptorPool,
    set: vk::DescriptorSet,
}

impl ComputeJob {
    fn new(gpu: &Gpu, wgsl: &str, buffer: vk::Buffer) -> R<Self> {
        let d = &gpu.device;
        let code = spirv(wgsl)?;
        // SAFETY: objects made here from valid infos; `destroy` frees them.
        unsafe {
            let module = vkr(
                d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&code), None),
                "module",
            )?;
            let b = [vk::DescriptorSetLayoutBinding::default()
                .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)
                .stage_flags(vk::ShaderStageFlags::COMPUTE)];
            let set_layout = vkr(
                d.create_descriptor_set_layout(
                    &vk::DescriptorSetLayoutCreateInfo::default().bindings(&b),
                    None,
                ),
                "set layout",
            )?;
            let layouts = [set_layout];
            let layout = vkr(
                d.create_pipeline_layout(
                    &vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts),
                    None,
                ),
                "layout",
            )?;
            let stage = vk::PipelineShaderStageCreateInfo::default()
                .stage(vk::ShaderStageFlags::COMPUTE)
                .module(module)
                .name(c"main");
            let pipeline = d
                .create_compute_pipelines(
                    vk::PipelineCache::null(),
                    &[vk::ComputePipelineCreateInfo::default()
                        .stage(stage)
                        .layout(layout)],
                    None,
                )
                .map_err(|(_, e)| e.to_string())?[0];
            let sizes = [vk::DescriptorPoolSize::default()
                .ty(vk::DescriptorType::STORAGE_BUFFER)
                .descriptor_count(1)];
            let pool = vkr(
                d.create_descriptor_pool(
                    &vk::DescriptorPoolCreateInfo::default()
                        .max_sets(1)
                        .pool_sizes(&sizes),
                    None,
                ),
                "dpool",
            )?;
            let set = vkr(
                d.allocate_descriptor_sets(
                    &vk::DescriptorSetAllocateInfo::default()
                        .descriptor_pool(pool)
                        .set_layouts(&layouts),
                ),
                "set",
            )?[0];
            let bi = [vk::DescriptorBufferInfo::default()
                .buffer(buffer)
                .range(vk::WHOLE_SIZE)];
            d.update_descriptor_sets(
                &[vk::WriteDescriptorSet::default()
                    .dst_set(set)
                    .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
                    .buffer_info(&bi)],
                &[],
            );
            Ok(ComputeJob {
                module,
                set_layout,
                layout,
                pipeline,
                pool,
                set,
            })
        }
    }

    /// Records `groups` workgroups of the job into a fresh command buffer.
    fn record(&self, gpu: &Gpu, cmd: vk::CommandBuffer, groups: u32) -> R<()> {
        let d = &gpu.device;
        // SAFETY: a command buffer not in flight, objects of this job.
        unsafe {
            vkr(
                d.begin_command_buffer(cmd, &vk::CommandBufferBeginInfo::default()),
                "begin",
            )?;
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, self.pipeline);
            d.cmd_bind_descriptor_sets(
                cmd,
                vk::PipelineBindPoint::COMPUTE,
                self.layout,
                0,
                &[self.set],
                &[],
            );
            d.cmd_dispatch(cmd, groups, 1, 1);
            vkr(d.end_command_buffer(cmd), "end")
        }
    }

    /// SAFETY: the job is not in flight.
    unsafe fn destroy(self, gpu: &Gpu) {
        let d = &gpu.device;
        // SAFETY: per this function's contract.
        unsafe {
            d.destroy_descriptor_pool(self.pool, None);
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.layout, None);
            d.destroy_descriptor_set_layout(self.set_layout, None);
            d.destroy_shader_module(self.module, None);
        }
    }
}

/// Destroys what a compute workload made: its command pool and fence, its job, its buffer.
///
/// # Safety
/// Nothing of it is in flight.
unsafe fn teardown(
    gpu: &Gpu,
    (pool, fence): (vk::CommandPool, vk::Fence),
    job: ComputeJob,
    (buffer, memory): (vk::Buffer, vk::DeviceMemory),
) {
    // SAFETY: the caller's promise; each object is destroyed once.
    unsafe {
        gpu.device.destroy_fence(fence, None);
        gpu.device.destroy_command_pool(pool, None);
        job.destroy(gpu);
        gpu.device.destroy_buffer(buffer, None);
        gpu.device.free_memory(memory, None);
    }
}

/// A compute-bound dispatch (64 Ki invocations x 4096 dependent FMAs): milliseconds, median of 5.
fn compute(gpu: &Gpu) -> R<f64> {
    let n = 64 * 1024u64;
    let (buffer, memory, _) = host_buffer(gpu, n * 4, vk::BufferUsageFlags::STORAGE_BUFFER)?;
    let job = ComputeJob::new(gpu, BUSY, buffer)?;
    let (pool, cmd, fence) = gpu.command_buffer()?;
    job.record(gpu, cmd, (n / 64) as u32)?;
    gpu.submit_wait(cmd, fence)?;
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        gpu.submit_wait(cmd, fence)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    // SAFETY: nothing in flight.
    unsafe { teardown(gpu, (pool, fence), job, (buffer, memory)) };
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

fn env_f64(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A slice tenant: compute dispatches of `VGPU_TENANT_GROUPS` workgroups, or sized to about
/// `VGPU_TENANT_JOB_MS` (default 4; the size is printed as `GROUPS`), submitted and waited on one
/// at a time, `VGPU_TENANT_THINK_MS` (default 0) apart, for `VGPU_TENANT_SECONDS` (default 4):
/// jobs per second.
fn tenant(gpu: &Gpu) -> R<f64> {
    let job_ms = env_f64("VGPU_TENANT_JOB_MS", 4.0);
    let think = std::time::Duration::from_secs_f64(env_f64("VGPU_TENANT_THINK_MS", 0.0) / 1e3);
    let seconds = env_f64("VGPU_TENANT_SECONDS", 4.0);
    let n = 64 * 1024u64;
    let (buffer, memory, _) = host_buffer(gpu, n * 4, vk::BufferUsageFlags::STORAGE_BUFFER)?;
    let job = ComputeJob::new(gpu, BUSY, buffer)?;
    let given = std::env::var("VGPU_TENANT_GROUPS")
        .ok()
        .and_then(|g| g.parse().ok());
    let groups = match given.filter(|&g: &u32| g > 0) {
        Some(g) => g,
        None => {
            // Size the dispatch from one timed run of a quarter of the buffer.
            let probe = (n / 64 / 4) as u32;
            let (pool, cmd, fence) = gpu.command_buffer()?;
            job.record(gpu, cmd, probe)?;
            let t = Instant::now();
            gpu.submit_wait(cmd, fence)?;
            let per_group = t.elapsed().as_secs_f64() * 1e3 / f64::from(probe);
            // SAFETY: nothing in flight.
            unsafe {
                gpu.device.destroy_fence(fence, None);
                gpu.device.destroy_command_pool(pool, None);
            }
            (job_ms / per_group) as u32
        }
    }
    .clamp(1, (n / 64) as u32);
    println!("GROUPS {groups}");
    let (pool, cmd, fence) = gpu.command_buffer()?;
    job.record(gpu, cmd, groups)?;
    let start = Instant::now();
    let mut jobs = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        gpu.submit_wait(cmd, fence)?;
        jobs += 1;
        if !think.is_zero() {
            std::thread::sleep(think);
        }
    }
    let rate = jobs as f64 / start.elapsed().as_secs_f64();
    // SAFETY: nothing in flight.
    unsafe { teardown(gpu, (pool, fence), job, (buffer, memory)) };
    Ok(rate)
}

/// Allocates 16 MiB device-local blocks until the device refuses: prints the device-local
/// heap's size (`HEAP`) and the error, holds the blocks `VGPU_QUOTA_HOLD_SECONDS` (default 0);
/// the RESULT is the bytes it got.
fn quota(gpu: &Gpu) -> R<f64> {
    const BLOCK: u64 = 16 << 20;
    let props = &gpu.mem;
    let types = &props.memory_types[..props.memory_type_count as usize];
    let local = types
        .iter()
        .position(|t| {
            t.property_flags
                .contains(vk::MemoryPropertyFlags::DEVICE_LOCAL)
        })
        .ok_or("no device-local memory type")?;
    let heap = props.memory_heaps[types[local].heap_index as usize].size;
    println!("HEAP {heap}");
    let mut blocks = Vec::new();
    let refusal = loop {
        let info = vk::MemoryAllocateInfo::default()
            .allocation_size(BLOCK)
            .memory_type_index(local as u32);
        // SAFETY: a valid allocate info; every block is freed below.
        match unsafe { gpu.device.allocate_memory(&info, None) } {
            Ok(m) if (blocks.len() as u64) < heap / BLOCK + 1 => blocks.push(m),
            Ok(m) => {
                blocks.push(m);
                break "the heap's size".to_string();
            }
            Err(e) => break format!("{e:?}"),
        }
    };
    println!("REFUSED {refusal}");
    let got = blocks.len() as u64 * BLOCK;
    let hold = env_f64("VGPU_QUOTA_HOLD_SECONDS", 0.0);
    println!("HOLDING {got}");
    std::io::Write::flush(&mut std::io::stdout()).map_err(|e| e.to_string())?;
    std::thread::sleep(std::time::Duration::from_secs_f64(hold));
    for m in blocks {
        // SAFETY: unused memory of this device, freed once.
        unsafe { gpu.device.free_memory(m, None) };
    }
    Ok(got as f64)
}

const COPY_BYTES: usize = 64 << 20;

/// Best of 5 copies of 64 MiB, GB/s: into mapped memory (`write`), out of it (`read`), or
/// between two heap buffers (`memcpy`, the baseline).
fn copy_rate(gpu: Option<&Gpu>, write: bool) -> R<f64> {
    let mut heap = vec![1u8; COPY_BYTES];
    let mut other = vec![2u8; COPY_BYTES];
    let mapped = match gpu {
        Some(g) => Some(host_buffer(
            g,
            COPY_BYTES as u64,
            vk::BufferUsageFlags::TRANSFER_SRC,
        )?),
        None => None,
    };
    let target: *mut u8 = mapped.as_ref().map_or(other.as_mut_ptr(), |m| m.2);
    // SAFETY: `target` is COPY_BYTES of mapped memory (or `other`), disjoint from `heap`.
    let target = unsafe { std::slice::from_raw_parts_mut(target, COPY_BYTES) };
    target.fill(3);
    let mut best = f64::MAX;
    for _ in 0..5 {
        let t = Instant::now();
        if write {
            target.copy_from_slice(&heap);
        } else {
            heap.copy_from_slice(target);
        }
        best = best.min(t.elapsed().as_secs_f64());
    }
    std::hint::black_box(&heap);
    if let (Some(g), Some((buffer, memory, _))) = (gpu, mapped) {
        // SAFETY: the GPU never used them.
        unsafe {
            g.device.destroy_buffer(buffer, None);
            g.device.free_memory(memory, None);
        }
    }
    Ok(COPY_BYTES as f64 / best / 1e9)
}

/// Instance + device creation and teardown, what every application pays at start: ms, median
/// of 5.
fn init() -> R<f64> {
    let mut times = Vec::new();
    for _ in 0..5 {
        let t = Instant::now();
        drop(Gpu::new()?);
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    times.sort_by(f64::total_cmp);
    Ok(times[times.len() / 2])
}

/// Runs one workload and prints `RESULT <number>`.
pub fn run(name: &str) -> R<()> {
    let value = match name {
        "memcpy" => copy_rate(None, true)?,
        "init" => init()?,
        _ => {
            let gpu = Gpu::new()?;
            match name {
                "roundtrip" => roundtrip(&gpu)?,
                "compute" => compute(&gpu)?,
                "tenant" => tenant(&gpu)?,
                "quota" => quota(&gpu)?,
                "write" => copy_rate(Some(&gpu), true)?,
                "read" => copy_rate(Some(&gpu), false)?,
                other => return Err(format!("unknown workload {other}")),
            }
        }
    };
    println!("RESULT {value}");
    Ok(())
}
