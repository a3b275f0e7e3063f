//! Transfers, timeline semaphores, timestamps, events, two submitting threads, images.

use ash::vk;

use super::{vkr, Check, Compute, Gpu, HostBuffer};

pub fn transfers(gpu: &Gpu) -> Check {
    let n = 4096;
    let (a, b) = (HostBuffer::new(gpu, n)?, HostBuffer::new(gpu, n)?);
    for (i, w) in a.words().iter_mut().enumerate() {
        *w = i as u32;
    }
    b.words().fill(0);
    let update: Vec<u8> = (0..16u32).flat_map(|x| (x + 1000).to_le_bytes()).collect();
    let d = &gpu.device;
    gpu.one_shot(|cmd| {
        // SAFETY: live buffers large enough for every region below.
        unsafe {
            d.cmd_copy_buffer(
                cmd,
                a.buffer,
                b.buffer,
                &[vk::BufferCopy::default()
                    .src_offset(0)
                    .dst_offset(0)
                    .size(2048 * 4)],
            );
            d.cmd_fill_buffer(cmd, b.buffer, 2048 * 4, 1024 * 4, 0xabcd_ef01);
            let barrier = [vk::MemoryBarrier::default()
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_WRITE)];
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TRANSFER,
                vk::PipelineStageFlags::TRANSFER,
                vk::DependencyFlags::empty(),
                &barrier,
                &[],
                &[],
            );
            d.cmd_update_buffer(cmd, b.buffer, 4000 * 4, &update);
        }
    })?;
    let w = b.words();
    let ok = (0..2048).all(|i| w[i] == i as u32)
        && (2048..3072).all(|i| w[i] == 0xabcd_ef01)
        && (3072..4000).all(|i| w[i] == 0)
        && (4000..4016).all(|i| w[i] == (i as u32 - 4000) + 1000);
    if !ok {
        return Err("copy, fill or update wrote the wrong words".into());
    }
    Ok("copy 8 KiB, fill 4 KiB, update 64 B".into())
}

pub fn timeline_semaphores(gpu: &Gpu) -> Check {
    let d = &gpu.device;
    let mut type_info = vk::SemaphoreTypeCreateInfo::default()
        .semaphore_type(vk::SemaphoreType::TIMELINE)
        .initial_value(5);
    let info = vk::SemaphoreCreateInfo::default().push_next(&mut type_info);
    // SAFETY: a fresh semaphore, destroyed at the end after all waits return.
    unsafe {
        let sem = vkr(d.create_semaphore(&info, None), "timeline semaphore")?;
        let start = vkr(d.get_semaphore_counter_value(sem), "counter")?;
        vkr(
            d.signal_semaphore(&vk::SemaphoreSignalInfo::default().semaphore(sem).value(9)),
            "host signal",
        )?;
        let after_host = vkr(d.get_semaphore_counter_value(sem), "counter")?;
        // The GPU signals 12 after an empty batch.
        let values = [12u64];
        let sems = [sem];
        let mut tl = vk::TimelineSemaphoreSubmitInfo::default().signal_semaphore_values(&values);
        let submit = [vk::SubmitInfo::default()
            .signal_semaphores(&sems)
            .push_next(&mut tl)];
        let r = {
            let q = gpu.queue.lock().unwrap();
            d.queue_submit(*q, &submit, vk::Fence::null())
        };
        vkr(r, "submit signalling the semaphore")?;
        let waited = d.wait_semaphores(
            &vk::SemaphoreWaitInfo::default()
                .semaphores(&sems)
                .values(&values),
            60_000_000_000,
        );
        let end = d.get_semaphore_counter_value(sem);
        d.destroy_semaphore(sem, None);
        vkr(waited, "wait for 12")?;
        let end = vkr(end, "counter")?;
        if (start, after_host, end) != (5, 9, 12) {
            return Err(format!(
                "counter went {start} -> {after_host} -> {end}, expected 5 -> 9 -> 12"
            ));
        }
    }
    Ok("initial 5, host signal 9, GPU signal 12, host wait".into())
}

pub fn timestamps(gpu: &Gpu) -> Check {
    let d = &gpu.device;
    let info = vk::QueryPoolCreateInfo::default()
        .query_type(vk::QueryType::TIMESTAMP)
        .query_count(2);
    // SAFETY: a fresh pool, destroyed after its results are read.
    unsafe {
        let pool = vkr(d.create_query_pool(&info, None), "query pool")?;
        let r = gpu.one_shot(|cmd| {
            d.cmd_reset_query_pool(cmd, pool, 0, 2);
            d.cmd_write_timestamp(cmd, vk::PipelineStageFlags::TOP_OF_PIPE, pool, 0);
            d.cmd_write_timestamp(cmd, vk::PipelineStageFlags::BOTTOM_OF_PIPE, pool, 1);
        });
        let mut t = [0u64; 2];
        let got = r.and_then(|()| {
            vkr(
                d.get_query_pool_results(
                    pool,
                    0,
                    &mut t,
                    vk::QueryResultFlags::TYPE_64 | vk::QueryResultFlags::WAIT,
                ),
                "results",
            )
        });
        d.destroy_query_pool(pool, None);
        got?;
        if t[0] == 0 || t[1] < t[0] {
            return Err(format!("timestamps {t:?} are not increasing"));
        }
        Ok(format!("two timestamps {} ticks apart", t[1] - t[0]))
    }
}

pub fn events(gpu: &Gpu) -> Check {
    let d = &gpu.device;
    // SAFETY: a fresh event, destroyed at the end.
    unsafe {
        let ev = vkr(
            d.create_event(&vk::EventCreateInfo::default(), None),
            "event",
        )?;
        let s0 = d.get_event_status(ev);
        let set = d.set_event(ev).and_then(|()| d.get_event_status(ev));
        let reset = d.reset_event(ev).and_then(|()| d.get_event_status(ev));
        let gpu_set = gpu
            .one_shot(|cmd| d.cmd_set_event(cmd, ev, vk::PipelineStageFlags::ALL_COMMANDS))
            .map(|()| d.get_event_status(ev));
        d.destroy_event(ev, None);
        match (s0, set, reset, gpu_set) {
            (Ok(false), Ok(true), Ok(false), Ok(Ok(true))) => {
                Ok("reset, host set, host reset, GPU set".into())
            }
            other => Err(format!("event states {other:?}")),
        }
    }
}

/// Two threads, each with its own buffer and pipeline, submitting to the one queue at once.
pub fn two_threads(gpu: &Gpu) -> Check {
    let results: Vec<Check> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2u32)
            .map(|t| {
                s.spawn(move || -> Check {
                    let buf = HostBuffer::new(gpu, 1024)?;
                    buf.words().fill(t);
                    let c = Compute::new(gpu, &buf)?;
                    for _ in 0..10 {
                        c.run(16, t)?;
                    }
                    // x -> 2x + i + t, ten times from x = t.
                    let expect = |i: u32| {
                        (0..10).fold(t, |x, _| x.wrapping_mul(2).wrapping_add(i).wrapping_add(t))
                    };
                    let bad = buf
                        .words()
                        .iter()
                        .enumerate()
                        .filter(|&(i, &w)| w != expect(i as u32))
                        .count();
                    if bad == 0 {
                        Ok(String::new())
                    } else {
                        Err(format!("thread {t}: {bad} words wrong"))
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap_or_else(|_| Err("thread panicked".into())))
            .collect()
    });
    for r in results {
        r?;
    }
    Ok("2 threads x 10 submissions, results checked".into())
}

pub fn image_copies_and_clears(gpu: &Gpu) -> Check {
    let d = &gpu.device;
    let (w, h) = (64u32, 32u32);
    let src = HostBuffer::new(gpu, (w * h) as usize)?;
    let dst = HostBuffer::new(gpu, (w * h) as usize)?;
    for (i, p) in src.words().iter_mut().enumerate() {
        *p = 0xff00_0000 | i as u32;
    }
    dst.words().fill(0);
    // SAFETY: a fresh image and memory, destroyed after the GPU is done.
    unsafe {
        let (image, mem) = gpu.color_image(
            w,
            h,
            vk::ImageUsageFlags::TRANSFER_SRC | vk::ImageUsageFlags::TRANSFER_DST,
        )?;
        let range = vk::ImageSubresourceRange::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .level_count(1)
            .layer_count(1);
        let layers = vk::ImageSubresourceLayers::default()
            .aspect_mask(vk::ImageAspectFlags::COLOR)
            .layer_count(1);
        let region = [vk::BufferImageCopy::default()
            .image_subresource(layers)
            .image_extent(vk::Extent3D {
                width: w,
                height: h,
                depth: 1,
            })];
        let to = |old, new| {
            vk::ImageMemoryBarrier::default()
                .old_layout(old)
                .new_layout(new)
                .src_access_mask(vk::AccessFlags::TRANSFER_WRITE)
                .dst_access_mask(vk::AccessFlags::TRANSFER_READ | vk::AccessFlags::TRANSFER_WRITE)
                .image(image)
                .subresource_range(range)
        };
        let r = gpu.one_shot(|cmd| {
            let stage = vk::PipelineStageFlags::TRANSFER;
            d.cmd_pipeline_barrier(
                cmd,
                vk::PipelineStageFlags::TOP_OF_PIPE,
                stage,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[to(
                    vk::ImageLayout::UNDEFINED,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                )],
            );
            d.cmd_copy_buffer_to_image(
                cmd,
                src.buffer,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &region,
            );
            // Then a clear of the whole image, read back into `src`.
            d.cmd_pipeline_barrier(
                cmd,
                stage,
                stage,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[to(
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                )],
            );
            d.cmd_copy_image_to_buffer(
                cmd,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                dst.buffer,
                &region,
            );
            d.cmd_pipeline_barrier(
                cmd,
                stage,
                stage,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[to(
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                )],
            );
            d.cmd_clear_color_image(
                cmd,
                image,
                vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                &vk::ClearColorValue {
                    float32: [1.0, 0.0, 0.0, 1.0],
                },
                &[range],
            );
            d.cmd_pipeline_barrier(
                cmd,
                stage,
                stage,
                vk::DependencyFlags::empty(),
                &[],
                &[],
                &[to(
                    vk::ImageLayout::TRANSFER_DST_OPTIMAL,
                    vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                )],
            );
            d.cmd_copy_image_to_buffer(
                cmd,
                image,
                vk::ImageLayout::TRANSFER_SRC_OPTIMAL,
                src.buffer,
                &region,
            );
        });
        d.destroy_image(image, None);
        d.free_memory(mem, None);
        r?;
    }
    let round_trip = dst
        .words()
        .iter()
        .enumerate()
        .all(|(i, &p)| p == 0xff00_0000 | i as u32);
    let cleared = src.words().iter().all(|&p| p == 0xff00_00ff);
    match (round_trip, cleared) {
        (true, true) => Ok(format!(
            "{w}x{h} buffer -> image -> buffer, then a red clear"
        )),
        _ => Err(format!(
            "round trip ok: {round_trip}, clear ok: {cleared} (first pixel {:#x})",
            src.words()[0]
        )),
    }
}

/// A compute dispatch whose storage buffer is bound with vkCmdPushDescriptorSetKHR.
pub fn push_descriptors(gpu: &Gpu) -> Check {
    let push = gpu
        .push
        .as_ref()
        .ok_or("VK_KHR_push_descriptor is not offered")?;
    let d = &gpu.device;
    let buf = HostBuffer::new(gpu, 1024)?;
    buf.words().fill(5);
    let code = super::spirv(super::DOUBLE_PLUS_INDEX)?;
    // SAFETY: fresh objects from valid create infos, used by one waited-for submission, then
    // destroyed.
    unsafe {
        let binding = [vk::DescriptorSetLayoutBinding::default()
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .descriptor_count(1)
            .stage_flags(vk::ShaderStageFlags::COMPUTE)];
        let set_layout = vkr(
            d.create_descriptor_set_layout(
                &vk::DescriptorSetLayoutCreateInfo::default()
                    .flags(vk::DescriptorSetLayoutCreateFlags::PUSH_DESCRIPTOR_KHR)
                    .bindings(&binding),
                None,
            ),
            "push set layout",
        )?;
        let layouts = [set_layout];
        let ranges = [vk::PushConstantRange::default()
            .stage_flags(vk::ShaderStageFlags::COMPUTE)
            .size(4)];
        let layout = vkr(
            d.create_pipeline_layout(
                &vk::PipelineLayoutCreateInfo::default()
                    .set_layouts(&layouts)
                    .push_constant_ranges(&ranges),
                None,
            ),
            "layout",
        )?;
        let pipeline = gpu.compute_pipeline(&code, layout, vk::PipelineCache::null())?;
        let info = [vk::DescriptorBufferInfo::default()
            .buffer(buf.buffer)
            .range(vk::WHOLE_SIZE)];
        let write = [vk::WriteDescriptorSet::default()
            .descriptor_type(vk::DescriptorType::STORAGE_BUFFER)
            .buffer_info(&info)];
        let r = gpu.one_shot(|cmd| {
            d.cmd_bind_pipeline(cmd, vk::PipelineBindPoint::COMPUTE, pipeline);
            push.cmd_push_descriptor_set(cmd, vk::PipelineBindPoint::COMPUTE, layout, 0, &write);
            d.cmd_push_constants(
                cmd,
                layout,
                vk::ShaderStageFlags::COMPUTE,
                0,
                &1u32.to_le_bytes(),
            );
            d.cmd_dispatch(cmd, 16, 1, 1);
        });
        d.destroy_pipeline(pipeline, None);
        d.destroy_pipeline_layout(layout, None);
        d.destroy_descriptor_set_layout(set_layout, None);
        r?;
    }
    let bad = buf
        .words()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != 10 + i as u32 + 1)
        .count();
    if bad != 0 {
        return Err(format!("{bad} words wrong"));
    }
    Ok("1024 words through a pushed storage buffer".into())
}

/// VK_EXT_calibrated_timestamps: the device's time domains include the device's own and a host
/// clock, and two calibrated readings of both move forward.
pub fn calibrated_timestamps(gpu: &Gpu) -> Check {
    let (inst, dev, pd) = gpu
        .calibrated
        .as_ref()
        .ok_or("VK_EXT_calibrated_timestamps missing")?;
    // SAFETY: a live physical device of this instance.
    let domains = vkr(
        unsafe { inst.get_physical_device_calibrateable_time_domains(*pd) },
        "time domains",
    )?;
    let host = [
        vk::TimeDomainKHR::CLOCK_MONOTONIC,
        vk::TimeDomainKHR::CLOCK_MONOTONIC_RAW,
    ]
    .into_iter()
    .find(|d| domains.contains(d))
    .ok_or(format!("no host clock among {domains:?}"))?;
    if !domains.contains(&vk::TimeDomainKHR::DEVICE) {
        return Err(format!("no device time domain among {domains:?}"));
    }
    let infos = [
        vk::CalibratedTimestampInfoKHR::default().time_domain(vk::TimeDomainKHR::DEVICE),
        vk::CalibratedTimestampInfoKHR::default().time_domain(host),
    ];
    let read = || {
        // SAFETY: the extension is enabled on this device.
        let r = unsafe { dev.get_calibrated_timestamps(&infos) };
        vkr(r, "timestamps")
    };
    let (first, _) = read()?;
    std::thread::sleep(std::time::Duration::from_millis(2));
    let (second, deviation) = read()?;
    if second[0] <= first[0] || second[1] <= first[1] {
        return Err(format!("timestamps {first:?} then {second:?}"));
    }
    Ok(format!(
        "{} domains; device and host clocks advance (max deviation {deviation})",
        domains.len()
    ))
}

/// A pipeline made through a pipeline cache whose data round-trips (get, create from it,
/// merge), run in a submission that waits for a binary semaphore another submission signals.
pub fn pipeline_cache_binary_semaphore(gpu: &Gpu) -> Check {
    let d = &gpu.device;
    let words = 256usize;
    let buf = HostBuffer::new(gpu, words)?;
    buf.words().fill(1);
    // SAFETY: fresh objects from valid infos, destroyed below once the GPU is done with them.
    unsafe {
        let cache = vkr(
            d.create_pipeline_cache(&vk::PipelineCacheCreateInfo::default(), None),
            "pipeline cache",
        )?;
        let job = super::Compute::with_cache(gpu, &buf, cache)?;
        let data = vkr(d.get_pipeline_cache_data(cache), "cache data")?;
        let copy = vkr(
            d.create_pipeline_cache(
                &vk::PipelineCacheCreateInfo::default().initial_data(&data),
                None,
            ),
            "cache from data",
        )?;
        let merged = d.merge_pipeline_caches(cache, &[copy]);
        let semaphore = vkr(
            d.create_semaphore(&vk::SemaphoreCreateInfo::default(), None),
            "semaphore",
        )?;
        let (pool, signaller) = gpu.begun_command_buffer()?;
        vkr(d.end_command_buffer(signaller), "end")?;
        let cmds = [signaller];
        let signals = [semaphore];
        let submit = [vk::SubmitInfo::default()
            .command_buffers(&cmds)
            .signal_semaphores(&signals)];
        let submitted = {
            let q = gpu.queue.lock().unwrap();
            d.queue_submit(*q, &submit, vk::Fence::null())
        };
        let ran = submitted
            .map_err(|e| format!("signalling submit: {e}"))
            .and_then(|()| job.run_after((words / 64) as u32, 5, Some(semaphore)));
        let _ = d.device_wait_idle();
        drop(job);
        d.destroy_command_pool(pool, None);
        d.destroy_semaphore(semaphore, None);
        d.destroy_pipeline_cache(copy, None);
        d.destroy_pipeline_cache(cache, None);
        ran?;
        vkr(merged, "merge caches")?;
        if data.len() < 16 {
            return Err(format!("{} bytes of pipeline cache data", data.len()));
        }
    }
    // x -> 2x + i + 5 from 1.
    let bad = buf
        .words()
        .iter()
        .enumerate()
        .filter(|&(i, &w)| w != 7 + i as u32)
        .count();
    if bad != 0 {
        return Err(format!(
            "{bad} words wrong after the semaphore-ordered dispatch"
        ));
    }
    Ok("cache data round-trips and merges; the dispatch waited on a binary semaphore".into())
}
