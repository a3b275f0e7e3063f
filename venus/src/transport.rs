//! The MESA transport commands: reply streams, nested command streams, rings and seqnos.

use std::sync::Arc;

use crate::{
    context::{Context, RenderError, StreamCx},
    protocol::generated::*,
    ring::Ring,
};

fn on_context_stream(cx: &StreamCx, what: &str) -> Result<(), RenderError> {
    match cx.ring {
        None => Ok(()),
        Some(_) => Err(RenderError::Invalid(format!(
            "{what} must come on the context stream, not a ring"
        ))),
    }
}

fn ring(ctx: &Context, id: u64) -> Result<Arc<Ring>, RenderError> {
    let r = ctx.rings.lock().unwrap().get(&id).cloned();
    r.ok_or_else(|| RenderError::Invalid(format!("ring {id:#x} does not exist")))
}

pub fn set_reply_command_stream(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkSetReplyCommandStreamMESA_args,
) -> Result<(), RenderError> {
    let desc = *a.pStream.ok_or(RenderError::Fatal)?;
    let mem = ctx.resource(desc.resourceId)?;
    cx.set_reply(mem, desc.offset, desc.size)
}

pub fn seek_reply_command_stream(
    _: &Context,
    cx: &mut StreamCx,
    a: &mut vkSeekReplyCommandStreamMESA_args,
) -> Result<(), RenderError> {
    cx.seek_reply(a.position)
}

pub fn execute_command_streams(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkExecuteCommandStreamsMESA_args,
) -> Result<(), RenderError> {
    if a.streamCount == 0 || cx.nested {
        return Err(RenderError::Invalid(
            "vkExecuteCommandStreamsMESA: no stream, or nested".into(),
        ));
    }
    let streams = a.pStreams;
    let positions = a.pReplyPositions;
    cx.nested = true;
    let result = (|| {
        for (i, s) in streams.iter().enumerate() {
            if let Some(&p) = positions.get(i) {
                cx.seek_reply(p)?;
            }
            if s.size == 0 {
                continue;
            }
            // A private copy: the driver may rewrite the shared memory while we decode.
            let mem = ctx.resource(s.resourceId)?;
            let mut bytes = vec![0u8; s.size];
            mem.read(s.offset, &mut bytes)?;
            ctx.execute(cx, &bytes)?;
        }
        Ok(())
    })();
    cx.nested = false;
    result
}

pub fn create_ring(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkCreateRingMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkCreateRingMESA")?;
    let info = *a.pCreateInfo.ok_or(RenderError::Fatal)?;
    let mem = ctx.resource(info.resourceId)?;
    let mut monitor_period = None;
    let mut p = info.pNext;
    while !p.is_null() {
        // SAFETY: the chain was built by the decoder in this command's arena; every node starts
        // with sType/pNext and has the type its sType names.
        let base = unsafe { &*(p as *const BaseStructure) };
        if base.sType == stype::VkRingMonitorInfoMESA {
            // SAFETY: as above, this node is a VkRingMonitorInfoMESA.
            let m = unsafe { &*(p as *const VkRingMonitorInfoMESA) };
            if m.maxReportingPeriodMicroseconds == 0 {
                return Err(RenderError::Invalid("ring monitor period 0".into()));
            }
            monitor_period = Some(m.maxReportingPeriodMicroseconds);
        }
        p = base.pNext;
    }
    let ring = Arc::new(Ring::new(a.ring, mem, &info, monitor_period.is_some())?);
    {
        let mut rings = ctx.rings.lock().unwrap();
        if rings.contains_key(&a.ring) {
            return Err(RenderError::Invalid(format!("ring {:#x} exists", a.ring)));
        }
        rings.insert(a.ring, ring.clone());
    }
    if let Some(period) = monitor_period {
        ctx.monitor.watch(ctx.weak(), period);
    }
    ring.start(ctx.weak());
    Ok(())
}

pub fn destroy_ring(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkDestroyRingMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkDestroyRingMESA")?;
    let r = ctx.rings.lock().unwrap().remove(&a.ring);
    r.ok_or_else(|| RenderError::Invalid(format!("ring {:#x} does not exist", a.ring)))?
        .stop();
    Ok(())
}

pub fn notify_ring(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkNotifyRingMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkNotifyRingMESA")?;
    ring(ctx, a.ring)?.notify();
    Ok(())
}

pub fn write_ring_extra(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkWriteRingExtraMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkWriteRingExtraMESA")?;
    ring(ctx, a.ring)?.write_extra(a.offset, a.value)
}

pub fn submit_virtqueue_seqno(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkSubmitVirtqueueSeqnoMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkSubmitVirtqueueSeqnoMESA")?;
    ring(ctx, a.ring)?.submit_virtqueue_seqno(a.seqno);
    Ok(())
}

pub fn wait_virtqueue_seqno(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkWaitVirtqueueSeqnoMESA_args,
) -> Result<(), RenderError> {
    let id = cx.ring.ok_or_else(|| {
        RenderError::Invalid("vkWaitVirtqueueSeqnoMESA must come on a ring".into())
    })?;
    if ring(ctx, id)?.wait_virtqueue_seqno(a.seqno) {
        Ok(())
    } else {
        Err(RenderError::Invalid(
            "ring stopped while waiting for a virtqueue seqno".into(),
        ))
    }
}

pub fn wait_ring_seqno(
    ctx: &Context,
    cx: &mut StreamCx,
    a: &mut vkWaitRingSeqnoMESA_args,
) -> Result<(), RenderError> {
    on_context_stream(cx, "vkWaitRingSeqnoMESA")?;
    if ring(ctx, a.ring)?.wait_ring_seqno(a.seqno as u32) {
        Ok(())
    } else {
        Err(RenderError::Invalid(
            "ring stopped before reaching the awaited seqno".into(),
        ))
    }
}
