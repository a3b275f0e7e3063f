//! Dynamic rendering, a blit and a sampler: the triangle drawn with vkCmdBeginRendering (no
//! render pass), blitted to half size with linear filtering, then read by a compute shader
//! through a sampler.

use ash::vk;

use super::render::TrianglePipeline;
use super::{spirv_stage, vkr, Check, Gpu, HostBuffer};

const SAMPLE: &str = r#"
@group(0) @binding(0) var tex: texture_2d<f32>;
@group(0) @binding(1) var smp: sampler;
@group(0) @binding(2) var<storage, read_write> out: array<vec4<f32>, 2>;
@compute @workgroup_size(1)
fn main() {
    out[0] = textureSampleLevel(tex, smp, vec2<f32>(0.5, 0.6), 0.0);
    out[1] = textureSampleLevel(tex, smp, vec2<f32>(0.02, 0.02), 0.0);
}
"#;

fn view(gpu: &Gpu, image: vk::Image) -> Result<vk::ImageView, String> {
    let info = vk::ImageViewCreateInfo::default()
        .image(image)
        .view_type(vk::ImageViewType::TYPE_2D)
        .format(vk::Format::R8G8B8A8_UNORM)
        .subresource_range(color_range());
    // SAFETY: a live image and a valid create info.
    vkr(unsafe { gpu.device.create_image_view(&info, None) }, "view")
}

fn color_range() -> vk::ImageSubresourceRange {
    vk::ImageSubresourceRange::default()
        .aspect_mask(vk::ImageAspectFlags::COLOR)
        .level_count(1)
        .layer_count(1)
}

/// One layout transition, with the accesses it orders.
fn transition(
    gpu: &Gpu,
    cmd: vk::CommandBuffer,
    image: vk::Image,
    (old, src): (vk::ImageLayout, vk::AccessFlags),
    (new, dst): (vk::ImageLayout, vk::AccessFlags),
) {
    let b = [vk::ImageMemoryBarrier::default()
        .image(image)
        .old_layout(old)
        .new_layout(new)
        .src_access_mask(src)
        .dst_access_mask(dst)
        .subresource_range(color_range())];
    // SAFETY: a command buffer being recorded and a live image.
    unsafe {
        gpu.device.cmd_pipeline_barrier(
            cmd,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::PipelineStageFlags::ALL_COMMANDS,
            vk::DependencyFlags::empty(),
            &[],
            &[],
            &b,
        )
    };
}

pub fn dynamic_rendering_blit_sample(gpu: &Gpu) -> Check {
    let dr = gpu
        .dynamic_rendering
        .as_ref()
        .ok_or("VK_KHR_dynamic_rendering missing")?;
    let d = &gpu.device;
    let (w, h) = (64u32, 64u32);
    let out = HostBuffer::new(gpu, 8)?;
    let code = spirv_stage(SAMPLE, naga::ShaderStage::Compute, "main")?;
    use vk::ImageUsageFlags as U;
    let (big, big_mem) = gpu.color_image(w, h, U::COLOR_ATTACHMENT | U::TRANSFER_SRC)?;
    let (small, small_mem) = gpu.color_image(w / 2, h / 2, U::TRANSFER_DST | U::SAMPLED)?;
    let (big_view, small_view) = (view(gpu, big)?, view(gpu, small)?);
    let tp = TrianglePipeline::new(gpu, w, h, None)?;
    // SAFETY: every object is fresh, used by one submission that is waited for, then destroyed;
    // create infos and their arrays outlive the calls.
    unsafe {
        let sampler = vkr(
            d.create_sampler(
                &vk::SamplerCreateInfo::default()
                    .mag_filter(vk::Filter::LINEAR)
                    .min_filter(vk::Filter::LINEAR)
                    .address_mode_u(vk::SamplerAddressMode::CLAMP_TO_EDGE)
                    .address_mode_v(vk::SamplerAddressMode::CLAMP_TO_EDGE),
                None,
            ),
            "sampler",
        )?;
        let types = [
            vk::DescriptorType::SAMPLED_IMAGE,
            vk::DescriptorType::SAMPLER,
            vk::DescriptorType::STORAGE_BUFFER,
        ];
        let bindings: Vec<_> = types
            .iter()
            .enumerate()
            .map(|(i, &t)| {
                vk::DescriptorSetLayoutBinding::default()
                    .binding(i as u32)
                    .descriptor_type(t)
                    .descriptor_count(1)
                    .stage_flags(vk::ShaderStageFlags::COMPUTE)
            })
            .collect();
        let set_layout = vkr(
            d.create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default().bindings(&bindings),
                None,
            ),
            "set layout",
        )?;
        let pool = gpu.descriptor_pool(&types)?;
        let layouts = [set_layout];
        let set = vkr(
            d.allocate_descriptor_sets(
                &vk::DescriptorSetAllocateInfo::default()
                    .descriptor_pool(pool)
                    .set_layouts(&layouts),
            ),
            "set",
        )?[0];
        let image_info = [vk::DescriptorImageInfo::default()
            .image_view(small_view)
            .image_layout(vk::ImageLayout::SHADER_READ_ONLY_OPTIMAL)];
        let sampler_info = [vk::DescriptorImageInfo::default().sampler(sampler)];
        let buffer_info = [vk::DescriptorBufferInfo::default()
            .buffer(out.buffer)
            .range(vk::WHOLE_SIZE)];
        let write = |binding: u32| {
            vk::WriteDescriptorSet::default()
                .dst_set(set)
                .dst_binding(binding)
                .descriptor_type(types[binding as usize])
        };
        d.update_descriptor_sets(
            &[
                write(0).image_info(&image_info),
                write(1).image_info(&sampler_info),
                write(2).buffer_info(&buffer_info),
            ],
            &[],
        );
        let layout = vkr(
            d.create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default().set_layouts(&layouts),
                None,
            ),
            "layout",
        )?;
        let compute = gpu.compute_pipeline(&code, layout, vk::PipelineCache::null())?;
        let r = gpu.one_shot(|cmd| {
            use vk::{AccessFlags as A, ImageLayout as L};
            transition(
                gpu,
                cmd,
                big,
                (L::UNDEFINED, A::empty()),
                (L::COLOR_ATTACHMENT_OPTIMAL, A::COLOR_ATTACHMENT_WRITE),
            );
            let color = [vk::RenderingAttachmentInfo::default()
                .image_view(big_view)
                .image_layout(L::COLOR_ATTACHMENT_OPTIMAL)
                .load_op(vk::AttachmentLoadOp::CLEAR)
                .store_op(vk::AttachmentStoreOp::STORE)
                .clear_value(vk::ClearValue {
                    color: vk::ClearColorValue {
                        float32: [0.0, 0.0, 1.0, 1.0],
                    },
                })];
            let info = vk::RenderingInfo::default()
                .render_area(tp.area)
                .layer_count(1)
                .color_attachments(&color);
            dr.cmd_begin_rendering(cmd, &info);
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, tp.pipeline);
            d.cmd_draw(cmd, 3, 1, 0, 0);
            dr.cmd_end_rendering(cmd);
            transition(
                gpu,
                cmd,
                big,
                (L::COLOR_ATTACHMENT_OPTIMAL, A::COLOR_ATTACHMENT_WRITE),
                (L::TRANSFER_SRC_OPTIMAL, A::TRANSFER_READ),
            );
            transition(
                gpu,
                cmd,
                small,
                (L::UNDEFINED, A::empty()),
                (L::TRANSFER_DST_OPTIMAL, A::TRANSFER_WRITE),
            );
            let layers = vk::ImageSubresourceLayers::default()
                .aspect_mask(vk::ImageAspectFlags::COLOR)
                .layer_count(1);
            let corner = |x: u32, y: u32| vk::Offset3D {
                x: x as i32,
                y: y as i32,
                z: 1,
            };
            let blit = [vk::ImageBlit::default()
                .src_subresource(layers)
                .src_offsets([vk::Offset3D::default(), corner(w, h)])
                .dst_subresource(layers)
                .dst_offsets([vk::Offset3D::default(), corner(w / 2, h / 2)])];
            d.cmd_blit_image(
                cmd,
                big,
                L::TRANSFER_SRC_OPTIMAL,
                small,
                L::TRANSFER_DST_OPTIMAL,
                &blit,
                vk::Filter::LINEAR,
            );
            transition(
                gpu,
                cmd,
                small,
                (L::TRANSFER_DST_OPTIMAL, A::TRANSFER_WRITE),
                (L::SHADER_READ_ONLY_OPTIMAL, A::SHADER_READ),
            );
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, compute);
            d.cmd_bind_descriptor_sets(cmd, vk::PipelineBindPoint::COMPUTE, layout, 0, &[set], &[]);
            d.cmd_dispatch(cmd, 1, 1, 1);
        });
        d.destroy_pipeline(compute, None);
        d.destroy_pipeline_layout(layout, None);
        d.destroy_descriptor_pool(pool, None);
        d.destroy_descriptor_set_layout(set_layout, None);
        d.destroy_sampler(sampler, None);
        tp.destroy(gpu);
        for v in [big_view, small_view] {
            d.destroy_image_view(v, None);
        }
        for (i, m) in [(big, big_mem), (small, small_mem)] {
            d.destroy_image(i, None);
            d.free_memory(m, None);
        }
        r?;
    }
    let px: Vec<f32> = out.words().iter().map(|&w| f32::from_bits(w)).collect();
    let near =
        |got: &[f32], want: [f32; 4]| got.iter().zip(want).all(|(g, w)| (g - w).abs() < 0.02);
    if !near(&px[..4], [0.0, 1.0, 0.0, 1.0]) || !near(&px[4..8], [0.0, 0.0, 1.0, 1.0]) {
        return Err(format!(
            "sampled inside {:?} (want green), at the corner {:?} (want blue)",
            &px[..4],
            &px[4..8]
        ));
    }
    Ok("rendered without a render pass, blitted to half size, sampled green and blue".into())
}
