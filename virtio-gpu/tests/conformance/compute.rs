//! Compute checks: fences, host blobs, and the VG capset's command stream where offered.

use std::time::{Duration, Instant};

use gpu_interface::{BlobDesc, BlobMem, FenceTimeline, GpuBackend, GpuError, PixelFormat, Rect};

use super::{desc, fill, pattern};

/// Polls until `n` fences have signalled (or a few seconds pass).
pub fn poll_all(b: &mut dyn GpuBackend, n: usize) -> Vec<(FenceTimeline, u64)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = Vec::new();
    while done.len() < n && Instant::now() < deadline {
        done.extend(b.poll_fences());
        std::thread::sleep(Duration::from_millis(1));
    }
    done
}

pub fn fences_signal_in_order(b: &mut dyn GpuBackend) {
    b.create_context(1, 0, "conformance").unwrap();
    b.create_context(2, 0, "second").unwrap();
    assert_eq!(
        b.create_context(1, 0, "dup"),
        Err(GpuError::InvalidContextId(1))
    );
    let r10 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 0,
    };
    let r11 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 1,
    };
    let r20 = FenceTimeline::Ring {
        ctx_id: 2,
        ring_idx: 0,
    };
    let order = [
        (FenceTimeline::Global, 1),
        (r10, 2),
        (r11, 3),
        (FenceTimeline::Global, 4),
        (r10, 5),
        (r20, 6),
        (r10, 7),
        (FenceTimeline::Global, 8),
    ];
    // Work between fences: transfers must not reorder or lose them.
    b.create_resource_2d(1, desc(64, 64, PixelFormat::XRGB8888))
        .unwrap();
    for (i, (timeline, id)) in order.into_iter().enumerate() {
        fill(b, 1, Rect::full(64, 64), PixelFormat::XRGB8888, |x, y| {
            pattern(x, y, i as u8)
        })
        .unwrap();
        b.create_fence(timeline, id).unwrap();
    }
    let done = poll_all(b, order.len());
    assert_eq!(done.len(), order.len(), "all fences signal: {done:?}");
    for timeline in [FenceTimeline::Global, r10, r11, r20] {
        let want: Vec<u64> = order
            .iter()
            .filter(|f| f.0 == timeline)
            .map(|f| f.1)
            .collect();
        let got: Vec<u64> = done
            .iter()
            .filter(|f| f.0 == timeline)
            .map(|f| f.1)
            .collect();
        assert_eq!(got, want, "{timeline:?} signals in creation order");
    }
    assert!(b.poll_fences().is_empty(), "a fence signals once");
    // Context lifecycle.
    b.attach_resource(1, 1).unwrap();
    b.detach_resource(1, 1).unwrap();
    assert_eq!(b.detach_resource(1, 1), Err(GpuError::InvalidResourceId(1)));
    b.destroy_context(2).unwrap();
    assert_eq!(b.create_fence(r20, 9), Err(GpuError::InvalidContextId(2)));
}

/// Maps a blob's fd the way a transport would, and returns the mapping.
pub fn mmap_blob(b: &mut dyn GpuBackend, id: u32) -> (*mut u8, usize) {
    use std::os::fd::AsRawFd;
    let m = b.map_blob(id).unwrap();
    let len = usize::try_from(m.size).unwrap();
    // SAFETY: a fresh shared mapping of the backend's fd at its offset; the fd stays open for
    // the call only, and the mapping is unmapped by the caller.
    let ptr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED,
            m.fd.as_raw_fd(),
            m.offset as libc::off_t,
        )
    };
    assert_ne!(ptr, libc::MAP_FAILED, "mmap of the blob fd");
    (ptr.cast(), len)
}

pub fn host_blobs_share_memory(b: &mut dyn GpuBackend) {
    b.create_context(1, 0, "blobs").unwrap();
    let blob = |mem, size| BlobDesc {
        mem,
        size,
        blob_id: 1,
        mappable: true,
        shareable: false,
        cross_device: false,
    };
    // Guest blobs never reach a backend.
    assert!(matches!(
        b.create_blob(1, 5, blob(BlobMem::Guest, 4096)),
        Err(GpuError::Unsupported(_))
    ));
    match b.create_blob(1, 5, blob(BlobMem::Host3d, 1 << 16)) {
        Err(GpuError::Unsupported(why)) => {
            println!("skipped: {} offers no host blobs: {why}", b.name());
            return;
        }
        r => r.unwrap(),
    }
    assert_eq!(
        b.create_blob(9, 6, blob(BlobMem::Host3d, 4096)),
        Err(GpuError::InvalidContextId(9))
    );
    assert_eq!(b.unmap_blob(5).map_err(|_| ()), Err(()), "not mapped yet");
    let (first, len) = mmap_blob(b, 5);
    assert_eq!(len, 1 << 16);
    let (second, _) = mmap_blob(b, 5);
    for (offset, value) in [(100, 0x5a), (len - 1, 0xa5)] {
        // SAFETY: `offset < len`, inside the first mapping, which lives until munmap below;
        // volatile, because the write is observed through another mapping.
        unsafe { first.wrapping_add(offset).write_volatile(value) };
        // SAFETY: as above, for the second mapping.
        let seen = unsafe { second.wrapping_add(offset).read_volatile() };
        assert_eq!(seen, value, "both fds share the memory at {offset}");
    }
    for ptr in [first, second] {
        // SAFETY: each is a live `len`-byte mapping made by mmap_blob, unmapped once.
        assert_eq!(unsafe { libc::munmap(ptr.cast(), len) }, 0);
    }
    b.unmap_blob(5).unwrap();
    assert_ne!(b.resource_uuid(5).unwrap(), [0; 16]);
    // A blob is not an image.
    assert!(matches!(
        b.set_scanout(0, Some(5), Rect::full(1, 1)),
        Err(GpuError::InvalidParameter(_))
    ));
    b.destroy_resource(5).unwrap();
    assert_eq!(b.map_blob(5).map(drop), Err(GpuError::InvalidResourceId(5)));
}
