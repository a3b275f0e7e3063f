//! Cross-backend checks: every backend composes the same frames, byte for byte.

use gpu_interface::{CursorImage, Frame, GpuBackend, PixelFormat, Rect};
use virtio_gpu::backend::{create_backend, BackendKind};

use super::{desc, fill, open, pattern};

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

#[test]
fn vulkan_device_can_be_chosen_by_index_or_name() {
    use virtio_gpu::backend::vulkan::VulkanBackend;
    let default = match VulkanBackend::new() {
        Ok(b) => b.device_name().to_string(),
        Err(e) => {
            println!("skipped: no Vulkan device: {e}");
            return;
        }
    };
    let prefix: String = default.chars().take(4).collect();
    let by_name = VulkanBackend::with_device(Some(&prefix.to_uppercase())).unwrap();
    assert_eq!(
        by_name.device_name(),
        default,
        "case-insensitive name match"
    );
    let by_index = VulkanBackend::with_device(Some("0")).unwrap();
    assert!(!by_index.device_name().is_empty());
    let none = VulkanBackend::with_device(Some("no such gpu")).map(drop);
    assert!(
        none.is_err(),
        "an override matching nothing is an error, not a fallback"
    );
}
