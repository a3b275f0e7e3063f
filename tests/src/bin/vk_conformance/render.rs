//! Offscreen graphics: a render pass, a graphics pipeline (WGSL vertex and fragment shaders) and
//! a draw into an image read back by the host.

use ash::vk;

use super::{spirv_stage, vkr, Check, Gpu, HostBuffer};

const TRIANGLE: &str = r#"
@vertex
fn vs(@builtin(vertex_index) i: u32) -> @builtin(position) vec4<f32> {
    var p = array<vec2<f32>, 3>(vec2<f32>(-0.8, -0.8), vec2<f32>(0.8, -0.8), vec2<f32>(0.0, 0.8));
    return vec4<f32>(p[i], 0.0, 1.0);
}
@fragment
fn fs() -> @location(0) vec4<f32> {
    return vec4<f32>(0.0, 1.0, 0.0, 1.0);
}
"#;

pub fn offscreen_triangle(gpu: &Gpu) -> Check {
    draw_triangle(gpu, false)
}

/// The same triangle through vkCmdDrawMultiEXT: a degenerate draw, then the triangle, with a stride
/// of 16 bytes (twice the element), which the venus driver packs on the wire.
pub fn multi_draw(gpu: &Gpu) -> Check {
    if gpu.multi_draw.is_none() {
        return Err("VK_EXT_multi_draw missing".into());
    }
    draw_triangle(gpu, true)
}

fn draw_triangle(gpu: &Gpu, multi: bool) -> Check {
    let d = &gpu.device;
    let (w, h) = (64u32, 64u32);
    let format = vk::Format::R8G8B8A8_UNORM;
    let out = HostBuffer::new(gpu, (w * h) as usize)?;
    // SAFETY: every object is fresh, used by one submission that is waited for,
    // then destroyed; create infos and their arrays outlive the calls.
    unsafe {
        let (image, mem) = gpu.color_image(
            w,
            h,
            vk::ImageUsageFlags::COLOR_ATTACHMENT | vk::ImageUsageFlags::TRANSFER_SRC,
        )?;
        let range = vk::ImageSubresourceRange::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .level_count(1)
            .layer_count(1);
        let view = vkr(
            d.create_image_view(
                &vk::ImageViewCreateInfo::default()
                    .image(image)
                    .view_type(vk::ImageViewType::TYPE_2D)
                    .format(format)
                    .subresource_range(range),
                None,
            ),
            "view",
        )?;
        let attachment = [vk::AttachmentDescription::default()
            .format(format)
            .samples(vk::SampleCountFlags::TYPE_1)
            .load_op(vk::AttachmentLoadOp::CLEAR)
            .store_op(vk::AttachmentStoreOp::STORE)
            .initial_layout(vk::ImageLayout::UNDEFINED)
            .final_layout(vk::ImageLayout::TRANSFER_SRC_OPTIMAL)];
        let color_ref = [vk::AttachmentReference::default()
            .attachment(0)
            .layout(vk::ImageLayout::COLOR_ATTACHMENT_OPTIMAL)];
        let subpass = [vk::SubpassDescription::default()
            .pipeline_bind_point(vk::PipelineBindPoint::GRAPHICS)
            .color_attachments(&color_ref)];
        let rp = vkr(
            d.create_render_pass(
                &vk::RenderPassCreateInfo::default()
                    .attachments(&attachment)
                    .subpasses(&subpass),
                None,
            ),
            "render pass",
        )?;
        let views = [view];
        let fb = vkr(
            d.create_framebuffer(
                &vk::FramebufferCreateInfo::default()
                    .render_pass(rp)
                    .attachments(&views)
                    .width(w)
                    .height(h)
                    .layers(1),
                None,
            ),
            "framebuffer",
        )?;
        let tp = TrianglePipeline::new(gpu, w, h, Some(rp))?;
        let pipeline = tp.pipeline;
        let scissor = [tp.area];
        let clear = [vk::ClearValue {
            color: vk::ClearColorValue {
                float32: [0.0, 0.0, 1.0, 1.0],
            },
        }];
        let region = [vk::BufferImageCopy::default()
            .image_subresource(
                vk::ImageSubresourceLayers::default()
                    .aspect_mask(vk::ImageAspectFlags::COLOR)
                    .layer_count(1),
            )
            .image_extent(vk::Extent3D {
                width: w,
                height: h,
                depth: 1,
            })];
        let r = gpu.one_shot(|cmd| {
            let begin = vk::RenderPassBeginInfo::default()
                .render_pass(rp)
                .framebuffer(fb)
                .render_area(scissor[0])
                .clear_values(&clear);
            d.cmd_begin_render_pass(cmd, &begin, vk::SubpassContents::INLINE);
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::GRAPHICS, pipeline);
            match gpu.multi_draw.as_ref().filter(|_| multi) {
                Some(md) => {
                    // Two VkMultiDrawInfoEXT {firstVertex, vertexCount}, each padded to 16 bytes:
                    // vertices 3..5 (clamped to the last one by the shader: nothing drawn), then
                    // the triangle. (lavapipe 22.3 draws nothing at all after a 0-vertex draw.)
                    let draws: [[u32; 4]; 2] = [[3, 3, 0xdead, 0xdead], [0, 3, 0xdead, 0xdead]];
                    (md.fp().cmd_draw_multi_ext)(cmd, 2, draws.as_ptr().cast(), 1, 0, 16);
                }
                None => d.cmd_draw(cmd, 3, 1, 0, 0),
            }
            d.cmd_end_render_pass(cmd);
            d.cmd_copy_image_to_buffer(
                cmd,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                out.buffer,
                &region,
            );
        });
        tp.destroy(gpu);
        d.destroy_framebuffer(fb, None);
        d.destroy_render_pass(rp, None);
        d.destroy_image_view(view, None);
        d.destroy_image(image, None);
        d.free_memory(mem, None);
        r?;
    }
    let px = |x: u32, y: u32| out.words()[(y * w + x) as usize];
    let (center, corner) = (px(w / 2, h / 2), px(1, 1));
    let green = out.words().iter().filter(|&&p| p == 0xff00_ff00).count();
    if center != 0xff00_ff00 || corner != 0xffff_0000 {
        return Err(format!(
            "center {center:#010x} (want green), corner {corner:#010x} (want blue)"
        ));
    }
    Ok(format!(
        "{green} of {} pixels green inside a blue clear",
        w * h
    ))
}

/// The green triangle's graphics pipeline for a w x h RGBA8 target: for `render_pass`, or for
/// dynamic rendering (VkPipelineRenderingCreateInfo) without one.
pub struct TrianglePipeline {
    pub pipeline: vk::Pipeline,
    layout: vk::PipelineLayout,
    modules: [vk::ShaderModule; 2],
    pub area: vk::Rect2D,
}

impl TrianglePipeline {
    pub fn new(
        gpu: &Gpu,
        w: u32,
        h: u32,
        render_pass: Option<vk::RenderPass>,
    ) -> Result<Self, String> {
        let d = &gpu.device;
        let vs = spirv_stage(TRIANGLE, naga::ShaderStage::Vertex, "vs")?;
        let fs = spirv_stage(TRIANGLE, naga::ShaderStage::Fragment, "fs")?;
        // SAFETY: valid create infos whose arrays outlive the calls; `destroy` frees the objects.
        unsafe {
            let vsm = vkr(
                d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&vs), None),
                "vs",
            )?;
            let fsm = vkr(
                d.create_shader_module(&vk::ShaderModuleCreateInfo::default().code(&fs), None),
                "fs",
            )?;
            let layout = vkr(
                d.create_pipeline_layout(&vk::PipelineLayoutCreateInfo::default(), None),
                "layout",
            )?;
            let stages = [
                vk::PipelineShaderStageCreateInfo::default()
                    .stage(vk::ShaderStageFlags::VERTEX)
                    .module(vsm)
                    .name(c"vs"),
                vk::PipelineShaderStageCreateInfo::default()
                    .stage(vk::ShaderStageFlags::FRAGMENT)
                    .module(fsm)
                    .name(c"fs"),
            ];
            let vi = vk::PipelineVertexInputStateCreateInfo::default();
            let ia = vk::PipelineInputAssemblyStateCreateInfo::default()
                .topology(vk::PrimitiveTopology::TRIANGLE_LIST);
            let viewport = [vk::Viewport {
                x: 0.0,
                y: 0.0,
                width: w as f32,
                height: h as f32,
                min_depth: 0.0,
                max_depth: 1.0,
            }];
            let scissor = [vk::Rect2D {
                offset: vk::Offset2D::default(),
                extent: vk::Extent2D {
                    width: w,
                    height: h,
                },
            }];
            let vp = vk::PipelineViewportStateCreateInfo::default()
                .viewports(&viewport)
                .scissors(&scissor);
            let rs = vk::PipelineRasterizationStateCreateInfo::default()
                .line_width(1.0)
                .cull_mode(vk::CullModeFlags::NONE);
            let ms = vk::PipelineMultisampleStateCreateInfo::default()
                .rasterization_samples(vk::SampleCountFlags::TYPE_1);
            let blend = [vk::PipelineColorBlendAttachmentState::default()
                .color_write_mask(vk::ColorComponentFlags::RGBA)];
            let cb = vk::PipelineColorBlendStateCreateInfo::default().attachments(&blend);
            let formats = [vk::Format::R8G8B8A8_UNORM];
            let mut rendering =
                vk::PipelineRenderingCreateInfo::default().color_attachment_formats(&formats);
            let mut info = vk::GraphicsPipelineCreateInfo::default()
                .stages(&stages)
                .vertex_input_state(&vi)
                .input_assembly_state(&ia)
                .viewport_state(&vp)
                .rasterization_state(&rs)
                .multisample_state(&ms)
                .color_blend_state(&cb)
                .layout(layout);
            info = match render_pass {
                Some(rp) => info.render_pass(rp),
                None => info.push_next(&mut rendering),
            };
            let pipeline = d
                .create_graphics_pipelines(vk::PipelineCache::null(), &[info], None)
                .map_err(|(_, e)| format!("graphics pipeline: {e}"))?[0];
            Ok(TrianglePipeline {
                pipeline,
                layout,
                modules: [vsm, fsm],
                area: scissor[0],
            })
        }
    }

    /// SAFETY: the pipeline is not in use.
    pub unsafe fn destroy(self, gpu: &Gpu) {
        let d = &gpu.device;
        // SAFETY: per this function's contract; each object destroyed once.
        unsafe {
            d.destroy_pipeline(self.pipeline, None);
            d.destroy_pipeline_layout(self.layout, None);
            for m in self.modules {
                d.destroy_shader_module(m, None);
            }
        }
    }
}
