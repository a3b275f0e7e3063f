//! The private VG capset, on backends that offer it: its command stream against a CPU model,
//! layered 3D transfers, ring delays and blob fills.

use std::time::{Duration, Instant};

use gpu_interface::{
    BlobDesc, BlobMem, FenceTimeline, GpuBackend, GpuError, GpuResult, PixelFormat, Rect,
    Resource3dDesc, Transfer3d,
};
use virtio_gpu::backend::software::stream::{self, Command};

use super::compute::mmap_blob;
use super::{desc, read, Rows};

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

pub fn encode(cmds: &[Command]) -> Vec<u8> {
    let mut out = Vec::new();
    for c in cmds {
        stream::encode(c, &mut out);
    }
    out
}

pub fn read_box(b: &mut dyn GpuBackend, id: u32, t: Transfer3d) -> Vec<u8> {
    let mut rows = Rows(Vec::new());
    b.transfer_from_host_3d(1, id, t, &mut rows).unwrap();
    rows.0.concat()
}

pub fn whole(width: u32, height: u32, depth: u32) -> Transfer3d {
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

pub fn resource_3d(target: u32, width: u32, height: u32, array_size: u32) -> Resource3dDesc {
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

pub fn vg_capset_runs_commands(b: &mut dyn GpuBackend) {
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

pub fn vg_delays_and_blob_fills(b: &mut dyn GpuBackend) {
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
    // Unaligned starts and ends, and a fill inside one 4-byte word.
    b.submit(
        1,
        0,
        &encode(&[fill(10, 100), fill(1001, 2), fill(2048, 4)]),
    )
    .unwrap();
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
    assert!(bytes[110..1001].iter().all(|&v| v == 0));
    assert_eq!(bytes[1000..1004], [0, 0x77, 0x77, 0]);
    assert_eq!(bytes[2047..2053], [0, 0x77, 0x77, 0x77, 0x77, 0]);
    assert!(bytes[2052..].iter().all(|&v| v == 0));
}
