//! Fenced commands: responses wait for their fence; timelines complete in order.

mod common;

use std::time::{Duration, Instant};

use common::*;
use virtio_gpu::backend::software::stream::Command;
use virtio_gpu::protocol::*;
use virtio_gpu::QueueKind;
use zerocopy::{FromBytes, IntoBytes};

const OK: u32 = VIRTIO_GPU_RESP_OK_NODATA;

/// Posts a fenced SUBMIT_3D with a delay; returns the chain head.
fn post_fenced(g: &mut Guest, ctx: u32, fence: u64, ring: Option<u8>, delay_us: u32) -> Posted {
    let h = fenced(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, ctx), fence, ring);
    g.post(
        QueueKind::Control,
        &submit(h, &[Command::DelayUs(delay_us)]),
        RESP_LEN,
    )
}

#[test]
fn fenced_responses_wait_for_their_fence_and_complete_in_order_per_ring() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    let slow = post_fenced(&mut g, 1, 1, Some(0), 30_000);
    let slow2 = post_fenced(&mut g, 1, 2, Some(0), 0);
    let fast = post_fenced(&mut g, 1, 3, Some(1), 0);
    g.process(QueueKind::Control);
    let used: Vec<u32> = g.used(QueueKind::Control).iter().map(|u| u.0).collect();
    assert_eq!(
        used,
        vec![u32::from(fast.head)],
        "ring 1 had no delay; ring 0 waits"
    );
    // The response of a waiting command is not written yet.
    assert_eq!(g.read(slow.resp, 4), vec![0xee; 4]);
    assert!(g.dev.fences_pending());
    let start = Instant::now();
    let mut done = Vec::new();
    while done.len() < 2 && start.elapsed() < Duration::from_secs(5) {
        g.process_fences();
        done.extend(g.used(QueueKind::Control).iter().map(|u| u.0));
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        done,
        vec![u32::from(slow.head), u32::from(slow2.head)],
        "in fence order"
    );
    assert!(start.elapsed() >= Duration::from_millis(20));
    let resp = g.read(slow.resp, 24);
    let (h, _) = CtrlHeader::read_from_prefix(&resp).unwrap();
    assert_eq!(h.type_.get(), OK);
    assert_eq!(h.fence_id.get(), 1);
    assert_eq!(
        h.flags.get(),
        VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX
    );
    assert!(!g.dev.fences_pending());
}

#[test]
fn global_fences_wait_for_every_ring_and_errors_still_complete_in_order() {
    let mut g = Guest::new();
    setup_ctx(&mut g, 1);
    let slow = post_fenced(&mut g, 1, 1, Some(3), 20_000);
    // A failing fenced command (unknown context) on the global timeline, then a plain one.
    let bad = g.post(
        QueueKind::Control,
        &submit(fenced(ctx_hdr(VIRTIO_GPU_CMD_SUBMIT_3D, 9), 2, None), &[]),
        RESP_LEN,
    );
    let global = g.post(
        QueueKind::Control,
        fenced(hdr(VIRTIO_GPU_CMD_GET_DISPLAY_INFO), 3, None).as_bytes(),
        RESP_LEN,
    );
    g.process(QueueKind::Control);
    assert!(
        g.used(QueueKind::Control).is_empty(),
        "global fences wait for ring 3's delay"
    );
    let start = Instant::now();
    let mut done = Vec::new();
    while done.len() < 3 && start.elapsed() < Duration::from_secs(5) {
        g.process_fences();
        done.extend(g.used(QueueKind::Control).iter().map(|u| u.0));
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut sorted = done.clone();
    sorted.sort();
    let mut want = vec![
        u32::from(slow.head),
        u32::from(bad.head),
        u32::from(global.head),
    ];
    want.sort();
    assert_eq!(sorted, want);
    let pos = |h: u16| done.iter().position(|&d| d == u32::from(h)).unwrap();
    assert!(pos(bad.head) < pos(global.head), "global timeline in order");
    assert_eq!(
        resp_type(&g.read(bad.resp, 24)),
        VIRTIO_GPU_RESP_ERR_INVALID_CONTEXT_ID
    );
    assert_eq!(
        resp_type(&g.read(global.resp, 24)),
        VIRTIO_GPU_RESP_OK_DISPLAY_INFO
    );
}
