//! One conformance suite for every backend, written against the `gpu_interface` traits only.
//!
//! Each check is instantiated for software, vulkan (lavapipe here; skipped with a clear message
//! when no Vulkan device initialises) and rutabaga. Expected pixels are computed here, by a
//! reference blend independent of the backends, and `backends_agree_pixel_for_pixel` compares
//! every backend's composed frames with the software backend's, byte for byte.

use std::time::{Duration, Instant};

use gpu_interface::display::MAX_SCANOUTS;
use gpu_interface::{
    BlobDesc, BlobMem, CursorImage, FenceTimeline, Frame, GpuBackend, GpuError, GpuResult,
    PixelFormat, Rect, Resource2dDesc, Resource3dDesc, RowSink, Transfer3d,
};
use virtio_gpu::backend::software::stream::{self, Command};
use virtio_gpu::backend::{create_backend, BackendKind};

/// Creates `kind`, or says why it is skipped (only Vulkan may be absent on a host).
fn open(kind: BackendKind) -> Option<Box<dyn GpuBackend>> {
    match create_backend(kind) {
        Ok(b) => Some(b),
        Err(e) if kind == BackendKind::Vulkan => {
            println!("skipped: no Vulkan device: {e}");
            None
        }
        Err(e) => panic!("{kind:?} backend failed to start: {e}"),
    }
}

/// A deterministic pattern pixel for resource coordinates (x, y), distinct per seed.
fn pattern(x: u32, y: u32, seed: u8) -> [u8; 4] {
    [
        (x as u8).wrapping_mul(3).wrapping_add(seed),
        (y as u8).wrapping_mul(5).wrapping_add(seed),
        ((x ^ y) as u8).wrapping_add(seed.wrapping_mul(7)),
        (x.wrapping_add(y) as u8).wrapping_mul(11),
    ]
}

/// Writes `rect` of resource `id` with `pixel(x, y)` in `format`.
fn fill(
    b: &mut dyn GpuBackend,
    id: u32,
    rect: Rect,
    format: PixelFormat,
    pixel: impl Fn(u32, u32) -> [u8; 4],
) -> GpuResult<()> {
    let mut source = |row: u32, dst: &mut [u8]| -> GpuResult<()> {
        assert_eq!(dst.len(), rect.width as usize * 4, "row length");
        for (i, px) in dst.chunks_exact_mut(4).enumerate() {
            format.from_rgba(pixel(rect.x + i as u32, rect.y + row), px);
        }
        Ok(())
    };
    b.write_rect(id, rect, &mut source)
}

struct Rows(Vec<Vec<u8>>);

impl RowSink for Rows {
    fn take_row(&mut self, row: u32, src: &[u8]) -> GpuResult<()> {
        assert_eq!(row as usize, self.0.len(), "rows arrive in order");
        self.0.push(src.to_vec());
        Ok(())
    }
}

fn read(b: &mut dyn GpuBackend, id: u32, rect: Rect) -> GpuResult<Vec<Vec<u8>>> {
    let mut rows = Rows(Vec::new());
    b.read_rect(id, rect, &mut rows)?;
    Ok(rows.0)
}

fn desc(width: u32, height: u32, format: PixelFormat) -> Resource2dDesc {
    Resource2dDesc {
        width,
        height,
        format,
    }
}

/// The reference blend: straight alpha, rounded, result opaque.
fn blend(c: [u8; 4], p: [u8; 4]) -> [u8; 4] {
    let a = u32::from(c[3]);
    let mix = |c: u8, p: u8| ((u32::from(c) * a + u32::from(p) * (255 - a) + 127) / 255) as u8;
    [mix(c[0], p[0]), mix(c[1], p[1]), mix(c[2], p[2]), 255]
}

/// The pattern as a format without alpha reads it back.
fn opaque(px: [u8; 4]) -> [u8; 4] {
    [px[0], px[1], px[2], 255]
}

/// A cursor pixel: transparent, opaque and half-transparent regions.
fn cursor_pixel(x: u32, y: u32) -> [u8; 4] {
    let alpha = match (x / 16, y / 16) {
        (0, _) => 0,
        (1, _) => 255,
        _ => 128,
    };
    [200, (x * 4) as u8, (y * 4) as u8, alpha]
}

fn write_and_read_back(b: &mut dyn GpuBackend) {
    for (n, format) in PixelFormat::SUPPORTED.into_iter().enumerate() {
        let id = 10 + n as u32;
        b.create_resource_2d(id, desc(37, 23, format)).unwrap();
        // A fresh resource reads back as zeros (no stale host memory reaches the guest).
        let rows = read(b, id, Rect::full(37, 23)).unwrap();
        assert!(
            rows.iter().all(|r| r.iter().all(|&v| v == 0)),
            "{format:?} not zeroed"
        );
        fill(b, id, Rect::full(37, 23), format, |x, y| {
            pattern(x, y, n as u8)
        })
        .unwrap();
        let rect = Rect::new(5, 3, 17, 11);
        let rows = read(b, id, rect).unwrap();
        assert_eq!(rows.len(), 11);
        for (y, row) in rows.iter().enumerate() {
            assert_eq!(row.len(), 17 * 4);
            for (x, px) in row.chunks_exact(4).enumerate() {
                let want = pattern(5 + x as u32, 3 + y as u32, n as u8);
                let want = if format.has_alpha() {
                    want
                } else {
                    opaque(want)
                };
                assert_eq!(format.to_rgba(px), want, "{format:?} at ({x}, {y})");
            }
        }
        // A partial write leaves the rest alone.
        fill(b, id, Rect::new(30, 20, 7, 3), format, |_, _| [1, 2, 3, 4]).unwrap();
        let rows = read(b, id, Rect::new(29, 20, 8, 1)).unwrap();
        let first = pattern(29, 20, n as u8);
        let first = if format.has_alpha() {
            first
        } else {
            opaque(first)
        };
        assert_eq!(format.to_rgba(&rows[0][0..4]), first);
        let new = if format.has_alpha() {
            [1, 2, 3, 4]
        } else {
            [1, 2, 3, 255]
        };
        assert_eq!(format.to_rgba(&rows[0][4..8]), new);
        // An empty rectangle is a no-op, not an error.
        read(b, id, Rect::new(37, 23, 0, 0)).unwrap();
    }
}

fn scanout_composes_cursor(b: &mut dyn GpuBackend) {
    let f = PixelFormat::XRGB8888;
    b.create_resource_2d(1, desc(64, 48, f)).unwrap();
    fill(b, 1, Rect::full(64, 48), f, |x, y| pattern(x, y, 1)).unwrap();
    let cf = PixelFormat::ARGB8888;
    b.create_resource_2d(2, desc(64, 64, cf)).unwrap();
    fill(b, 2, Rect::full(64, 64), cf, cursor_pixel).unwrap();
    let shown = Rect::new(8, 4, 40, 30);
    b.set_scanout(0, Some(1), shown).unwrap();
    let frame = b.read_scanout(0).unwrap();
    assert_eq!((frame.width, frame.height, frame.format), (40, 30, f));
    assert_eq!(frame.pixel_rgba(0, 0), Some(opaque(pattern(8, 4, 1))));
    assert_eq!(frame.pixel_rgba(39, 29), Some(opaque(pattern(47, 33, 1))));

    let cursor = CursorImage {
        resource: 2,
        hot_x: 3,
        hot_y: 2,
    };
    b.set_cursor(0, Some(cursor)).unwrap();
    b.move_cursor(0, 10, 12).unwrap();
    let frame = b.read_scanout(0).unwrap();
    // Cursor pixel (cx, cy) lands at frame (10 - 3 + cx, 12 - 2 + cy).
    let at = |frame: &Frame, cx: u32, cy: u32| frame.pixel_rgba(7 + cx, 10 + cy).unwrap();
    let primary = |cx: u32, cy: u32| opaque(pattern(8 + 7 + cx, 4 + 10 + cy, 1));
    for (cx, cy) in [(0, 0), (5, 9), (15, 19)] {
        assert_eq!(
            at(&frame, cx, cy),
            primary(cx, cy),
            "transparent cursor at ({cx}, {cy})"
        );
    }
    for (cx, cy) in [(16, 0), (20, 7), (31, 19)] {
        assert_eq!(
            at(&frame, cx, cy),
            opaque(cursor_pixel(cx, cy)),
            "opaque at ({cx}, {cy})"
        );
    }
    for (cx, cy) in [(32, 0), (32, 19), (32, 3)] {
        let want = blend(cursor_pixel(cx, cy), primary(cx, cy));
        assert_eq!(at(&frame, cx, cy), want, "blended at ({cx}, {cy})");
    }
    // Left of and above the cursor: untouched.
    assert_eq!(frame.pixel_rgba(6, 10), Some(opaque(pattern(14, 14, 1))));
    assert_eq!(frame.pixel_rgba(20, 9), Some(opaque(pattern(28, 13, 1))));
    // Clipped at the right edge (cursor column 32 is frame column 39).
    assert_eq!(
        at(&frame, 32, 3),
        blend(cursor_pixel(32, 3), primary(32, 3))
    );

    // Moving the cursor away restores the primary plane; hiding it too.
    b.move_cursor(0, 1000, 1000).unwrap();
    let frame = b.read_scanout(0).unwrap();
    assert_eq!(at(&frame, 20, 7), primary(20, 7));
    b.move_cursor(0, 10, 12).unwrap();
    b.set_cursor(0, None).unwrap();
    assert_eq!(at(&b.read_scanout(0).unwrap(), 20, 7), primary(20, 7));
}

fn flush_updates_only_the_damage(b: &mut dyn GpuBackend) {
    let f = PixelFormat::BGRX8888;
    b.create_resource_2d(1, desc(32, 32, f)).unwrap();
    fill(b, 1, Rect::full(32, 32), f, |_, _| [10, 20, 30, 255]).unwrap();
    b.set_scanout(0, Some(1), Rect::new(4, 4, 24, 24)).unwrap();
    b.set_scanout(1, Some(1), Rect::full(32, 32)).unwrap();
    fill(b, 1, Rect::full(32, 32), f, |_, _| [90, 80, 70, 255]).unwrap();
    // Not flushed yet: the scanouts still show the old contents.
    assert_eq!(
        b.read_scanout(0).unwrap().pixel_rgba(5, 5),
        Some([10, 20, 30, 255])
    );
    b.flush(1, Rect::new(0, 0, 10, 8)).unwrap();
    let s0 = b.read_scanout(0).unwrap();
    // Resource (0..10, 0..8) is scanout-0 (0..6, 0..4).
    assert_eq!(s0.pixel_rgba(5, 3), Some([90, 80, 70, 255]));
    assert_eq!(s0.pixel_rgba(6, 3), Some([10, 20, 30, 255]));
    assert_eq!(s0.pixel_rgba(5, 4), Some([10, 20, 30, 255]));
    let s1 = b.read_scanout(1).unwrap();
    assert_eq!(s1.pixel_rgba(9, 7), Some([90, 80, 70, 255]));
    assert_eq!(s1.pixel_rgba(10, 7), Some([10, 20, 30, 255]));
    // Damage outside a scanout's rectangle leaves it alone.
    b.flush(1, Rect::new(28, 28, 4, 4)).unwrap();
    assert_eq!(
        b.read_scanout(0).unwrap().pixel_rgba(23, 23),
        Some([10, 20, 30, 255])
    );
    assert_eq!(
        b.read_scanout(1).unwrap().pixel_rgba(31, 31),
        Some([90, 80, 70, 255])
    );
}

fn disable_and_destroy_clear_scanouts(b: &mut dyn GpuBackend) {
    let f = PixelFormat::XRGB8888;
    b.create_resource_2d(1, desc(16, 16, f)).unwrap();
    b.create_resource_2d(2, desc(8, 8, PixelFormat::ARGB8888))
        .unwrap();
    fill(b, 2, Rect::full(8, 8), PixelFormat::ARGB8888, |_, _| {
        [255, 0, 0, 255]
    })
    .unwrap();
    b.set_scanout(0, Some(1), Rect::full(16, 16)).unwrap();
    b.set_scanout(1, Some(1), Rect::full(16, 16)).unwrap();
    b.set_cursor(
        1,
        Some(CursorImage {
            resource: 2,
            hot_x: 0,
            hot_y: 0,
        }),
    )
    .unwrap();
    assert_eq!(
        b.read_scanout(1).unwrap().pixel_rgba(7, 7),
        Some([255, 0, 0, 255])
    );
    // A cursor smaller than 64x64 is transparent beyond its edges.
    assert_eq!(
        b.read_scanout(1).unwrap().pixel_rgba(8, 8),
        Some([0, 0, 0, 255])
    );
    b.set_scanout(0, None, Rect::default()).unwrap();
    assert!(matches!(
        b.read_scanout(0),
        Err(GpuError::InvalidParameter(_))
    ));
    // Destroying the cursor resource hides the cursor.
    b.destroy_resource(2).unwrap();
    assert_eq!(
        b.read_scanout(1).unwrap().pixel_rgba(0, 0),
        Some([0, 0, 0, 255])
    );
    // Destroying the shown resource disables the scanout.
    b.destroy_resource(1).unwrap();
    assert!(matches!(
        b.read_scanout(1),
        Err(GpuError::InvalidParameter(_))
    ));
    assert_eq!(b.destroy_resource(1), Err(GpuError::InvalidResourceId(1)));
    // The id can be used again.
    b.create_resource_2d(1, desc(4, 4, f)).unwrap();
}

fn invalid_input_is_rejected(b: &mut dyn GpuBackend) {
    let f = PixelFormat::XRGB8888;
    let bad_id = Err(GpuError::InvalidResourceId(99));
    let mut nothing = |_: u32, _: &mut [u8]| -> GpuResult<()> { Ok(()) };
    assert_eq!(b.write_rect(99, Rect::full(1, 1), &mut nothing), bad_id);
    assert_eq!(read(b, 99, Rect::full(1, 1)).map(drop), bad_id);
    assert_eq!(b.flush(99, Rect::full(1, 1)), bad_id);
    assert_eq!(b.set_scanout(0, Some(99), Rect::full(1, 1)), bad_id);
    let cursor = CursorImage {
        resource: 99,
        hot_x: 0,
        hot_y: 0,
    };
    assert_eq!(b.set_cursor(0, Some(cursor)), bad_id);
    assert_eq!(b.destroy_resource(99), bad_id);

    // Creation: id 0, duplicates, zero sizes, sizes that overflow or exceed memory.
    assert_eq!(
        b.create_resource_2d(0, desc(4, 4, f)),
        Err(GpuError::InvalidResourceId(0))
    );
    b.create_resource_2d(1, desc(20, 10, f)).unwrap();
    assert_eq!(
        b.create_resource_2d(1, desc(4, 4, f)),
        Err(GpuError::InvalidResourceId(1))
    );
    assert!(matches!(
        b.create_resource_2d(2, desc(0, 4, f)),
        Err(GpuError::InvalidParameter(_))
    ));
    assert!(matches!(
        b.create_resource_2d(2, desc(u32::MAX, 4, f)),
        Err(GpuError::InvalidParameter(_))
    ));
    let huge = b.create_resource_2d(2, desc(65536, 65536, f));
    assert!(
        matches!(
            huge,
            Err(GpuError::OutOfHostMemory | GpuError::OutOfDeviceMemory)
        ),
        "{huge:?}"
    );
    // Formats outside the supported set never become a PixelFormat.
    assert_eq!(
        PixelFormat::from_fourcc(0x3231_564e),
        Err(GpuError::UnsupportedFormat(0x3231_564e))
    );
    assert!(PixelFormat::from_fourcc(0).is_err());

    // Rectangles outside the resource, including ones whose edges overflow.
    for rect in [
        Rect::new(0, 0, 21, 10),
        Rect::new(19, 9, 2, 2),
        Rect::new(u32::MAX, 0, 2, 1),
    ] {
        let err = |r: GpuResult<()>| matches!(r, Err(GpuError::InvalidParameter(_)));
        assert!(err(b.write_rect(1, rect, &mut nothing)), "write {rect:?}");
        assert!(err(read(b, 1, rect).map(drop)), "read {rect:?}");
        assert!(err(b.flush(1, rect)), "flush {rect:?}");
        assert!(err(b.set_scanout(0, Some(1), rect)), "set_scanout {rect:?}");
    }
    assert!(matches!(
        b.set_scanout(0, Some(1), Rect::default()),
        Err(GpuError::InvalidParameter(_))
    ));

    // Scanout ids past the last one.
    for s in [MAX_SCANOUTS as u32, 17, u32::MAX] {
        assert_eq!(
            b.set_scanout(s, Some(1), Rect::full(4, 4)),
            Err(GpuError::InvalidScanoutId(s))
        );
        assert_eq!(
            b.set_scanout(s, None, Rect::default()),
            Err(GpuError::InvalidScanoutId(s))
        );
        assert_eq!(b.set_cursor(s, None), Err(GpuError::InvalidScanoutId(s)));
        assert_eq!(b.move_cursor(s, 0, 0), Err(GpuError::InvalidScanoutId(s)));
        assert_eq!(
            b.read_scanout(s).map(drop),
            Err(GpuError::InvalidScanoutId(s))
        );
    }
    // A row source that fails aborts the transfer with its error.
    let mut failing =
        |_: u32, _: &mut [u8]| -> GpuResult<()> { Err(GpuError::InvalidParameter("guest memory")) };
    assert_eq!(
        b.write_rect(1, Rect::full(4, 4), &mut failing),
        Err(GpuError::InvalidParameter("guest memory"))
    );
    // Unknown contexts.
    assert_eq!(b.destroy_context(7), Err(GpuError::InvalidContextId(7)));
    assert_eq!(b.attach_resource(7, 1), Err(GpuError::InvalidContextId(7)));
    let ring = FenceTimeline::Ring {
        ctx_id: 7,
        ring_idx: 0,
    };
    assert_eq!(b.create_fence(ring, 1), Err(GpuError::InvalidContextId(7)));
    assert_eq!(b.submit(7, 0, &[]), Err(GpuError::InvalidContextId(7)));
}

/// Polls until `n` fences have signalled (or a few seconds pass).
fn poll_all(b: &mut dyn GpuBackend, n: usize) -> Vec<(FenceTimeline, u64)> {
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut done = Vec::new();
    while done.len() < n && Instant::now() < deadline {
        done.extend(b.poll_fences());
        std::thread::sleep(Duration::from_millis(1));
    }
    done
}

fn fences_signal_in_order(b: &mut dyn GpuBackend) {
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

fn sixteen_scanouts(b: &mut dyn GpuBackend) {
    let f = PixelFormat::ABGR8888;
    b.create_resource_2d(1, desc(64, 64, f)).unwrap();
    fill(b, 1, Rect::full(64, 64), f, |x, y| pattern(x, y, 9)).unwrap();
    for s in 0..MAX_SCANOUTS as u32 {
        let rect = Rect::new(s * 2, s, 16 + s, 8 + s);
        b.set_scanout(s, Some(1), rect).unwrap();
    }
    for s in 0..MAX_SCANOUTS as u32 {
        let frame = b.read_scanout(s).unwrap();
        assert_eq!((frame.width, frame.height), (16 + s, 8 + s), "scanout {s}");
        assert_eq!(
            frame.pixel_rgba(0, 0),
            Some(pattern(s * 2, s, 9)),
            "scanout {s}"
        );
        assert_eq!(
            frame.pixel_rgba(15 + s, 7 + s),
            Some(pattern(s * 3 + 15, 2 * s + 7, 9))
        );
    }
    // A flush reaches every scanout showing the resource.
    fill(b, 1, Rect::full(64, 64), f, |_, _| [1, 2, 3, 4]).unwrap();
    b.flush(1, Rect::full(64, 64)).unwrap();
    for s in 0..MAX_SCANOUTS as u32 {
        assert_eq!(
            b.read_scanout(s).unwrap().pixel_rgba(3, 3),
            Some([1, 2, 3, 4])
        );
    }
}

/// Maps a blob's fd the way a transport would, and returns the mapping.
fn mmap_blob(b: &mut dyn GpuBackend, id: u32) -> (*mut u8, usize) {
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

fn host_blobs_share_memory(b: &mut dyn GpuBackend) {
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

/// What a context image should hold: `layers` x `height` rows of `width` pixels of `bpp` bytes.
struct Model {
    width: u32,
    height: u32,
    bpp: u32,
    data: Vec<u8>,
}

impl Model {
    fn new(width: u32, height: u32, layers: u32, bpp: u32) -> Self {
        let data = vec![0; (width * height * layers * bpp) as usize];
        Model {
            width,
            height,
            bpp,
            data,
        }
    }

    fn at(&self, layer: u32, x: u32, y: u32) -> usize {
        (((layer * self.height + y) * self.width + x) * self.bpp) as usize
    }

    fn fill(&mut self, r: Rect, value: u32) {
        let px = value.to_le_bytes();
        for y in r.y..r.y + r.height {
            for x in r.x..r.x + r.width {
                let at = self.at(0, x, y);
                self.data[at..at + self.bpp as usize].copy_from_slice(&px[..self.bpp as usize]);
            }
        }
    }

    /// Copies `r` of `src` to (dx, dy) of `self` (src may be a snapshot of self).
    fn copy_from(&mut self, src: &Model, r: Rect, dx: u32, dy: u32) {
        let n = (r.width * self.bpp) as usize;
        for i in 0..r.height {
            let (s, d) = (src.at(0, r.x, r.y + i), self.at(0, dx, dy + i));
            self.data[d..d + n].copy_from_slice(&src.data[s..s + n]);
        }
    }

    fn snapshot(&self) -> Model {
        Model {
            data: self.data.clone(),
            ..*self
        }
    }
}

fn encode(cmds: &[Command]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        stream::encode(c, &mut out);
    }
    out
}

fn read_box(b: &mut dyn GpuBackend, id: u32, t: Transfer3d) -> Vec<u8> {
    let mut rows = Rows(Vec::new());
    b.transfer_from_host_3d(1, id, t, &mut rows).unwrap();
    rows.0.concat()
}

fn whole(width: u32, height: u32, depth: u32) -> Transfer3d {
    Transfer3d {
        x: 0,
        y: 0,
        z: 0,
        width,
        height,
        depth,
        level: 0,
        stride: 0,
        layer_stride: 0,
        offset: 0,
    }
}

fn resource_3d(target: u32, width: u32, height: u32, array_size: u32) -> Resource3dDesc {
    Resource3dDesc {
        target,
        format: 0,
        bind: 0,
        width,
        height,
        depth: 1,
        array_size,
        last_level: 0,
        nr_samples: 0,
        flags: 0,
    }
}

fn vg_capset_runs_commands(b: &mut dyn GpuBackend) {
    if !b.capsets().iter().any(|c| c.id == stream::CAPSET_ID) {
        println!("skipped: {} does not offer the VG capset", b.name());
        return;
    }
    assert_eq!(
        b.capset(stream::CAPSET_ID, 1).unwrap(),
        stream::capset_blob()
    );
    assert!(b.capset(stream::CAPSET_ID, 2).is_err());
    assert!(b.capset(0x1234, 1).is_err());
    assert!(matches!(
        b.create_context(2, 0x1234, "other"),
        Err(GpuError::InvalidParameter(_))
    ));
    b.create_context(1, stream::CAPSET_ID, "vg").unwrap();
    let f = PixelFormat::XRGB8888;
    b.create_resource_2d(1, desc(32, 16, f)).unwrap();
    b.attach_resource(1, 1).unwrap();
    // 3D resources created in a context are attached to it.
    b.create_resource_3d(1, 2, resource_3d(2, 32, 16, 1))
        .unwrap();
    b.create_resource_3d(1, 3, resource_3d(0, 100, 1, 1))
        .unwrap();
    let (mut m1, mut m2, mut m3) = (
        Model::new(32, 16, 1, 4),
        Model::new(32, 16, 1, 4),
        Model::new(100, 1, 1, 1),
    );
    let cmds = [
        Command::Fill {
            resource: 1,
            rect: Rect::new(2, 3, 10, 5),
            value: 0x0011_2233,
        },
        Command::Fill {
            resource: 1,
            rect: Rect::new(20, 0, 12, 16),
            value: 0xdead_beef,
        },
        Command::Copy {
            src: 1,
            dst: 2,
            src_rect: Rect::new(0, 0, 24, 8),
            dst_x: 8,
            dst_y: 4,
        },
        Command::Fill {
            resource: 3,
            rect: Rect::new(3, 0, 50, 1),
            value: 0xab,
        },
        // Overlapping copy within one resource.
        Command::Copy {
            src: 1,
            dst: 1,
            src_rect: Rect::new(2, 3, 10, 5),
            dst_x: 5,
            dst_y: 6,
        },
        Command::Nop,
    ];
    b.submit(1, 0, &encode(&cmds)).unwrap();
    m1.fill(Rect::new(2, 3, 10, 5), 0x0011_2233);
    m1.fill(Rect::new(20, 0, 12, 16), 0xdead_beef);
    m2.copy_from(&m1, Rect::new(0, 0, 24, 8), 8, 4);
    m3.fill(Rect::new(3, 0, 50, 1), 0xab);
    let before = m1.snapshot();
    m1.copy_from(&before, Rect::new(2, 3, 10, 5), 5, 6);
    assert_eq!(
        read(b, 1, Rect::full(32, 16)).unwrap().concat(),
        m1.data,
        "2D resource"
    );
    assert_eq!(read_box(b, 2, whole(32, 16, 1)), m2.data, "3D texture");
    assert_eq!(read_box(b, 3, whole(100, 1, 1)), m3.data, "PIPE_BUFFER");

    // A malformed stream runs nothing; a stream stops at its first invalid command.
    let mut bytes = encode(&[Command::Fill {
        resource: 1,
        rect: Rect::full(32, 16),
        value: 7,
    }]);
    bytes.extend_from_slice(&[9, 0, 0, 0]);
    assert!(matches!(
        b.submit(1, 0, &bytes),
        Err(GpuError::InvalidParameter(_))
    ));
    assert_eq!(
        read(b, 1, Rect::full(32, 16)).unwrap().concat(),
        m1.data,
        "nothing ran"
    );
    let cmds = [
        Command::Fill {
            resource: 1,
            rect: Rect::new(0, 0, 4, 4),
            value: 0x0102_0304,
        },
        Command::Fill {
            resource: 99,
            rect: Rect::new(0, 0, 1, 1),
            value: 0,
        },
        Command::Fill {
            resource: 1,
            rect: Rect::new(4, 4, 4, 4),
            value: 0x0506_0708,
        },
    ];
    assert_eq!(
        b.submit(1, 0, &encode(&cmds)),
        Err(GpuError::InvalidResourceId(99))
    );
    m1.fill(Rect::new(0, 0, 4, 4), 0x0102_0304);
    assert_eq!(
        read(b, 1, Rect::full(32, 16)).unwrap().concat(),
        m1.data,
        "first ran only"
    );
    // Resources must be attached, boxes inside, pixel sizes equal.
    b.create_resource_2d(4, desc(8, 8, f)).unwrap();
    let fill4 = [Command::Fill {
        resource: 4,
        rect: Rect::full(1, 1),
        value: 0,
    }];
    assert_eq!(
        b.submit(1, 0, &encode(&fill4)),
        Err(GpuError::InvalidResourceId(4))
    );
    let outside = [Command::Fill {
        resource: 1,
        rect: Rect::new(30, 0, 4, 1),
        value: 0,
    }];
    assert!(matches!(
        b.submit(1, 0, &encode(&outside)),
        Err(GpuError::InvalidParameter(_))
    ));
    let mixed = [Command::Copy {
        src: 3,
        dst: 1,
        src_rect: Rect::full(4, 1),
        dst_x: 0,
        dst_y: 0,
    }];
    assert!(matches!(
        b.submit(1, 0, &encode(&mixed)),
        Err(GpuError::InvalidParameter(_))
    ));
    assert!(matches!(
        b.set_scanout(0, Some(2), Rect::full(4, 4)),
        Err(GpuError::InvalidParameter(_))
    ));

    // 3D transfers address layers; rows are numbered layer-major.
    b.create_resource_3d(1, 5, resource_3d(2, 8, 4, 3)).unwrap();
    let t = Transfer3d {
        x: 1,
        y: 1,
        z: 1,
        width: 5,
        height: 2,
        depth: 2,
        ..whole(0, 0, 0)
    };
    let mut m5 = Model::new(8, 4, 3, 4);
    let mut source = |row: u32, dst: &mut [u8]| -> GpuResult<()> {
        dst.iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = (row * 40 + i as u32) as u8);
        Ok(())
    };
    b.transfer_to_host_3d(1, 5, t, &mut source).unwrap();
    for row in 0..4u32 {
        let at = m5.at(1 + row / 2, 1, 1 + row % 2);
        for i in 0..20 {
            m5.data[at + i] = (row * 40 + i as u32) as u8;
        }
    }
    assert_eq!(read_box(b, 5, whole(8, 4, 3)), m5.data, "layered transfer");
    let beyond = Transfer3d {
        z: 2,
        depth: 2,
        ..t
    };
    assert!(
        b.transfer_to_host_3d(1, 5, beyond, &mut source).is_err(),
        "past the last layer"
    );
    let mip = Transfer3d { level: 1, ..t };
    assert!(
        b.transfer_from_host_3d(1, 5, mip, &mut Rows(Vec::new()))
            .is_err(),
        "mip level 1"
    );
}

fn vg_delays_and_blob_fills(b: &mut dyn GpuBackend) {
    if !b.capsets().iter().any(|c| c.id == stream::CAPSET_ID) {
        println!("skipped: {} does not offer the VG capset", b.name());
        return;
    }
    b.create_context(1, stream::CAPSET_ID, "vg").unwrap();
    let start = Instant::now();
    b.submit(1, 0, &encode(&[Command::DelayUs(20_000)]))
        .unwrap();
    let r0 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 0,
    };
    let r1 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 1,
    };
    b.create_fence(r0, 1).unwrap();
    b.create_fence(r1, 2).unwrap();
    b.create_fence(FenceTimeline::Global, 3).unwrap();
    let mut seen = Vec::new();
    while seen.len() < 3 && start.elapsed() < Duration::from_secs(5) {
        for (timeline, id) in b.poll_fences() {
            if id != 2 {
                // A delayed ring (and the global timeline, which waits for every ring) never
                // signals before its delay has passed.
                assert!(
                    start.elapsed() >= Duration::from_millis(20),
                    "{timeline:?} fence {id} early"
                );
            }
            seen.push(id);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    seen.sort();
    assert_eq!(seen, [1, 2, 3]);

    let blob = BlobDesc {
        mem: BlobMem::Host3d,
        size: 4096,
        blob_id: 0,
        mappable: true,
        shareable: false,
        cross_device: false,
    };
    b.create_blob(1, 6, blob).unwrap();
    let fill = |offset: u64, len: u32| Command::FillBlob {
        resource: 6,
        offset,
        len,
        value: 0x77,
    };
    b.submit(1, 0, &encode(&[fill(10, 100)])).unwrap();
    assert!(matches!(
        b.submit(1, 0, &encode(&[fill(4000, 100)])),
        Err(GpuError::InvalidParameter(_))
    ));
    let (ptr, len) = mmap_blob(b, 6);
    // SAFETY: a live `len`-byte mapping, read through a fresh shared slice and unmapped after.
    let bytes = unsafe { std::slice::from_raw_parts(ptr, len) }.to_vec();
    // SAFETY: unmapping the mapping made above, once.
    assert_eq!(unsafe { libc::munmap(ptr.cast(), len) }, 0);
    assert!(bytes[..10].iter().all(|&v| v == 0));
    assert!(bytes[10..110].iter().all(|&v| v == 0x77));
    assert!(bytes[110..].iter().all(|&v| v == 0));
}

macro_rules! suite {
    ($($check:ident),* $(,)?) => {
        mod software {
            $(#[test]
            fn $check() {
                let mut b = super::open(super::BackendKind::Software).unwrap();
                super::$check(b.as_mut());
            })*
        }
        mod vulkan {
            $(#[test]
            fn $check() {
                if let Some(mut b) = super::open(super::BackendKind::Vulkan) {
                    super::$check(b.as_mut());
                }
            })*
        }
        mod rutabaga {
            $(#[test]
            fn $check() {
                let mut b = super::open(super::BackendKind::Rutabaga).unwrap();
                super::$check(b.as_mut());
            })*
        }
    };
}

suite!(
    write_and_read_back,
    scanout_composes_cursor,
    flush_updates_only_the_damage,
    disable_and_destroy_clear_scanouts,
    invalid_input_is_rejected,
    fences_signal_in_order,
    sixteen_scanouts,
    host_blobs_share_memory,
    vg_capset_runs_commands,
    vg_delays_and_blob_fills,
);

/// Drives one backend through a scene in `format` and returns the frames it composes.
fn scene(b: &mut dyn GpuBackend, format: PixelFormat, cursor_format: PixelFormat) -> Vec<Frame> {
    b.create_resource_2d(1, desc(96, 70, format)).unwrap();
    b.create_resource_2d(2, desc(64, 64, cursor_format))
        .unwrap();
    b.create_resource_2d(3, desc(40, 20, cursor_format))
        .unwrap();
    fill(b, 1, Rect::full(96, 70), format, |x, y| pattern(x, y, 3)).unwrap();
    fill(b, 2, Rect::full(64, 64), cursor_format, |x, y| {
        [
            x as u8 * 4,
            y as u8 * 4,
            77,
            ((x * 37 + y * 11) % 256) as u8,
        ]
    })
    .unwrap();
    fill(b, 3, Rect::full(40, 20), cursor_format, |x, y| {
        pattern(x, y, 200)
    })
    .unwrap();
    let mut frames = Vec::new();
    b.set_scanout(0, Some(1), Rect::new(3, 5, 90, 60)).unwrap();
    b.set_cursor(
        0,
        Some(CursorImage {
            resource: 2,
            hot_x: 7,
            hot_y: 9,
        }),
    )
    .unwrap();
    for (x, y) in [(0, 0), (30, 20), (85, 55), (200, 3)] {
        b.move_cursor(0, x, y).unwrap();
        frames.push(b.read_scanout(0).unwrap());
    }
    fill(b, 1, Rect::new(10, 10, 30, 30), format, |x, y| {
        pattern(y, x, 4)
    })
    .unwrap();
    b.flush(1, Rect::new(20, 0, 40, 25)).unwrap();
    b.set_cursor(
        0,
        Some(CursorImage {
            resource: 3,
            hot_x: 100,
            hot_y: 1,
        }),
    )
    .unwrap();
    b.move_cursor(0, 70, 40).unwrap();
    frames.push(b.read_scanout(0).unwrap());
    frames
}

#[test]
fn backends_agree_pixel_for_pixel() {
    let others: Vec<BackendKind> = [BackendKind::Vulkan, BackendKind::Rutabaga]
        .into_iter()
        .filter(|&kind| open(kind).is_some())
        .collect();
    for format in PixelFormat::SUPPORTED {
        for cursor_format in [
            PixelFormat::ARGB8888,
            PixelFormat::RGBA8888,
            PixelFormat::XBGR8888,
        ] {
            let mut reference = open(BackendKind::Software).unwrap();
            let want = scene(reference.as_mut(), format, cursor_format);
            for kind in &others {
                let mut b = open(*kind).unwrap();
                let got = scene(b.as_mut(), format, cursor_format);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert_eq!(
                        (g.width, g.height, g.stride, g.format),
                        (w.width, w.height, w.stride, w.format)
                    );
                    let diff = g.data.iter().zip(&w.data).position(|(a, b)| a != b);
                    assert_eq!(
                        diff, None,
                        "{kind:?} {format:?}/{cursor_format:?} frame {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn default_backend_is_vulkan_where_it_initialises() {
    let kind = BackendKind::default_for_host();
    match create_backend(BackendKind::Vulkan) {
        Ok(_) => assert_eq!(kind, BackendKind::Vulkan),
        Err(e) => {
            println!("skipped: no Vulkan device: {e}");
            assert_eq!(kind, BackendKind::Software);
        }
    }
}
