//! Display checks: transfers, scanouts, cursor composition, flushes, errors.

use gpu_interface::display::MAX_SCANOUTS;
use gpu_interface::{
    CursorImage, FenceTimeline, Frame, GpuBackend, GpuError, GpuResult, PixelFormat, Rect,
};

use super::{blend, desc, fill, opaque, pattern, read};

/// A cursor pixel: transparent, opaque and half-transparent regions.
pub fn cursor_pixel(x: u32, y: u32) -> [u8; 4] {
    let alpha = match (x / 16, y / 16) {
        (0, _) => 0,
        (1, _) => 255,
        _ => 128,
    };
    [200, (x * 4) as u8, (y * 4) as u8, alpha]
}

pub fn write_and_read_back(b: &mut dyn GpuBackend) {
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

pub fn scanout_composes_cursor(b: &mut dyn GpuBackend) {
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

pub fn flush_updates_only_the_damage(b: &mut dyn GpuBackend) {
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

pub fn disable_and_destroy_clear_scanouts(b: &mut dyn GpuBackend) {
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

pub fn invalid_input_is_rejected(b: &mut dyn GpuBackend) {
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

pub fn sixteen_scanouts(b: &mut dyn GpuBackend) {
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
