//! Unit tests of the software backend through the gpu-interface traits.

use std::time::{Duration, Instant};

use gpu_interface::{
    BlobDesc, BlobMem, ComputeBackend, CursorImage, DisplayBackend, FenceTimeline, GpuError,
    PixelFormat, Rect, Resource2dDesc, Resource3dDesc, Transfer3d,
};

use super::stream::{self, Command};
use super::SoftwareBackend;

fn fill_solid(backend: &mut SoftwareBackend, id: u32, w: u32, h: u32, f: PixelFormat, c: [u8; 4]) {
    let mut src = |_row: u32, dst: &mut [u8]| {
        for px in dst.chunks_exact_mut(4) {
            f.from_rgba(c, px);
        }
        Ok(())
    };
    backend.write_rect(id, Rect::full(w, h), &mut src).unwrap();
}

fn desc(width: u32, height: u32, format: PixelFormat) -> Resource2dDesc {
    Resource2dDesc {
        width,
        height,
        format,
    }
}

#[test]
fn scanout_shows_flushed_pixels_with_cursor() {
    let mut b = SoftwareBackend::new();
    b.create_resource_2d(1, desc(128, 96, PixelFormat::XRGB8888))
        .unwrap();
    fill_solid(&mut b, 1, 128, 96, PixelFormat::XRGB8888, [0, 255, 0, 255]);
    b.set_scanout(0, Some(1), Rect::full(128, 96)).unwrap();
    let f = b.read_scanout(0).unwrap();
    assert_eq!((f.width, f.height), (128, 96));
    assert_eq!(f.pixel_rgba(5, 5), Some([0, 255, 0, 255]));

    // New pixels appear only after a flush of the damaged rectangle.
    fill_solid(&mut b, 1, 128, 96, PixelFormat::XRGB8888, [255, 0, 0, 255]);
    assert_eq!(
        b.read_scanout(0).unwrap().pixel_rgba(5, 5),
        Some([0, 255, 0, 255])
    );
    b.flush(1, Rect::new(0, 0, 10, 10)).unwrap();
    let f = b.read_scanout(0).unwrap();
    assert_eq!(f.pixel_rgba(5, 5), Some([255, 0, 0, 255]));
    assert_eq!(f.pixel_rgba(50, 50), Some([0, 255, 0, 255]));

    b.create_resource_2d(2, desc(64, 64, PixelFormat::ARGB8888))
        .unwrap();
    fill_solid(&mut b, 2, 64, 64, PixelFormat::ARGB8888, [0, 0, 255, 255]);
    b.set_cursor(
        0,
        Some(CursorImage {
            resource: 2,
            hot_x: 0,
            hot_y: 0,
        }),
    )
    .unwrap();
    b.move_cursor(0, 100, 80).unwrap();
    let f = b.read_scanout(0).unwrap();
    assert_eq!(f.pixel_rgba(110, 90), Some([0, 0, 255, 255]));
    assert_eq!(f.pixel_rgba(99, 90), Some([0, 255, 0, 255]));

    // Destroying the shown resource disables the scanout; the cursor resource hides the cursor.
    b.destroy_resource(1).unwrap();
    assert!(b.read_scanout(0).is_err());
    assert_eq!(b.destroy_resource(1), Err(GpuError::InvalidResourceId(1)));
}

#[test]
fn hostile_parameters_are_errors() {
    let mut b = SoftwareBackend::new();
    b.create_resource_2d(1, desc(16, 16, PixelFormat::XRGB8888))
        .unwrap();
    assert!(b
        .create_resource_2d(1, desc(16, 16, PixelFormat::XRGB8888))
        .is_err());
    assert!(b
        .create_resource_2d(0, desc(16, 16, PixelFormat::XRGB8888))
        .is_err());
    assert_eq!(
        b.create_resource_2d(2, desc(1 << 20, 1 << 20, PixelFormat::XRGB8888)),
        Err(GpuError::OutOfHostMemory)
    );
    let mut src = |_: u32, _: &mut [u8]| Ok(());
    assert!(b
        .write_rect(1, Rect::new(u32::MAX, 0, 2, 1), &mut src)
        .is_err());
    assert!(b.write_rect(1, Rect::new(8, 8, 9, 1), &mut src).is_err());
    assert!(b.set_scanout(16, Some(1), Rect::full(16, 16)).is_err());
    assert!(b.set_scanout(0, Some(1), Rect::new(1, 1, 16, 16)).is_err());
    assert!(b.set_scanout(0, Some(9), Rect::full(16, 16)).is_err());
    assert!(b.flush(1, Rect::new(0, 0, 17, 1)).is_err());
    assert!(b.move_cursor(99, 0, 0).is_err());
    assert!(b.read_scanout(1).is_err());
}

#[test]
fn context_stream_fills_copies_and_transfers() {
    let mut b = SoftwareBackend::new();
    assert_eq!(b.capsets()[0].id, stream::CAPSET_ID);
    assert_eq!(&b.capset(stream::CAPSET_ID, 1).unwrap()[..4], b"VGSW");
    assert!(b.create_context(1, 3, "virgl?").is_err());
    b.create_context(1, stream::CAPSET_ID, "test").unwrap();
    let d3 = Resource3dDesc {
        target: 2,
        format: 1,
        bind: 0,
        width: 8,
        height: 8,
        depth: 1,
        array_size: 1,
        last_level: 0,
        nr_samples: 0,
        flags: 0,
    };
    b.create_resource_3d(1, 10, d3).unwrap();
    b.create_resource_3d(1, 11, d3).unwrap();
    let mut cmds = Vec::new();
    let fill = Command::Fill {
        resource: 10,
        rect: Rect::new(0, 0, 4, 4),
        value: 0x1122_3344,
    };
    stream::encode(&fill, &mut cmds);
    let copy = Command::Copy {
        src: 10,
        dst: 11,
        src_rect: Rect::new(2, 2, 2, 2),
        dst_x: 6,
        dst_y: 6,
    };
    stream::encode(&copy, &mut cmds);
    b.submit(1, 0, &cmds).unwrap();

    let t = Transfer3d {
        x: 6,
        y: 6,
        z: 0,
        width: 2,
        height: 2,
        depth: 1,
        level: 0,
        stride: 0,
        layer_stride: 0,
        offset: 0,
    };
    let mut rows = Vec::new();
    let mut sink = RowsSink(&mut rows);
    b.transfer_from_host_3d(1, 11, t, &mut sink).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(&rows[0][..4], &0x1122_3344u32.to_le_bytes());

    // Not attached: rejected.
    b.create_resource_3d(0, 12, d3).unwrap();
    let mut bad = Vec::new();
    stream::encode(
        &Command::Fill {
            resource: 12,
            rect: Rect::full(1, 1),
            value: 0,
        },
        &mut bad,
    );
    assert_eq!(b.submit(1, 0, &bad), Err(GpuError::InvalidResourceId(12)));
    b.attach_resource(1, 12).unwrap();
    b.submit(1, 0, &bad).unwrap();
    assert!(b
        .transfer_to_host_3d(
            1,
            11,
            Transfer3d { level: 1, ..t },
            &mut |_, _: &mut [u8]| Ok(())
        )
        .is_err());
}

struct RowsSink<'a>(&'a mut Vec<Vec<u8>>);

impl gpu_interface::RowSink for RowsSink<'_> {
    fn take_row(&mut self, _row: u32, src: &[u8]) -> gpu_interface::GpuResult<()> {
        self.0.push(src.to_vec());
        Ok(())
    }
}

#[test]
fn fences_signal_in_order_after_delays() {
    let mut b = SoftwareBackend::new();
    b.create_context(1, 0, "").unwrap();
    let ring0 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 0,
    };
    let ring1 = FenceTimeline::Ring {
        ctx_id: 1,
        ring_idx: 1,
    };
    let mut delay = Vec::new();
    stream::encode(&Command::DelayUs(20_000), &mut delay);
    b.submit(1, 0, &delay).unwrap();
    b.create_fence(ring0, 1).unwrap();
    b.create_fence(ring0, 2).unwrap();
    b.create_fence(ring1, 3).unwrap();
    let start = Instant::now();
    // Ring 1 did no work: its fence signals at once, ring 0's wait for the delay.
    assert_eq!(b.poll_fences(), vec![(ring1, 3)]);
    let mut got = Vec::new();
    while got.len() < 2 && start.elapsed() < Duration::from_secs(5) {
        got.extend(b.poll_fences());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got, vec![(ring0, 1), (ring0, 2)]);
    assert!(start.elapsed() >= Duration::from_millis(15));
    assert!(!b.fences_pending());
}

#[test]
fn host_blob_is_a_real_memfd() {
    use std::os::unix::fs::FileExt;
    let mut b = SoftwareBackend::new();
    b.create_context(1, 0, "").unwrap();
    let d = BlobDesc {
        mem: BlobMem::Host3d,
        size: 8192,
        blob_id: 1,
        mappable: true,
        shareable: false,
        cross_device: false,
    };
    b.create_blob(1, 5, d).unwrap();
    let mut cmds = Vec::new();
    stream::encode(
        &Command::FillBlob {
            resource: 5,
            offset: 4096,
            len: 16,
            value: 0xab,
        },
        &mut cmds,
    );
    b.submit(1, 0, &cmds).unwrap();
    let mapping = b.map_blob(5).unwrap();
    assert_eq!(mapping.size, 8192);
    let file = std::fs::File::from(mapping.fd);
    let mut buf = [0u8; 17];
    file.read_exact_at(&mut buf, 4096).unwrap();
    assert_eq!(&buf[..16], &[0xab; 16]);
    assert_eq!(buf[16], 0);
    b.unmap_blob(5).unwrap();
    assert!(b.unmap_blob(5).is_err());
    let mut oob = Vec::new();
    stream::encode(
        &Command::FillBlob {
            resource: 5,
            offset: 8190,
            len: 16,
            value: 1,
        },
        &mut oob,
    );
    assert!(b.submit(1, 0, &oob).is_err());
}

#[test]
fn image_storage_is_page_aligned() {
    // Guest pages are page aligned; storage at the same page offset copies without 4 KiB
    // aliasing (see resources::PageBuf).
    let mut b = SoftwareBackend::new();
    for (id, w) in [(1, 1), (2, 333), (3, 1920)] {
        b.create_resource_2d(id, desc(w, 7, PixelFormat::XRGB8888))
            .unwrap();
        let Some(super::resources::Storage::Image(img)) = b.resources.get(&id).map(|r| &r.storage)
        else {
            panic!("resource {id} is not an image");
        };
        assert_eq!(img.data.as_ptr() as usize % 4096, 0);
        assert_eq!(img.data.len(), (w * 7 * 4) as usize);
    }
}
