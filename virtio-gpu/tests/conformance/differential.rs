//! Differential check: a long pseudo-random sequence of display calls, most of them hostile
//! (unknown ids, rectangles past the edges, scanouts past the last one, zero sizes), is applied to
//! every backend at once; each call must give the same outcome everywhere (same error variant,
//! same rows read back, same composed frames) and nothing may panic. The same is done with
//! contexts, 3D resources, blobs and VG command streams on the backends that offer the capset.

use gpu_interface::{
    BlobDesc, BlobMem, CursorImage, Frame, GpuBackend, GpuError, GpuResult, PixelFormat, Rect,
    Resource3dDesc, Transfer3d,
};
use virtio_gpu::backend::software::stream::{self, Command};
use virtio_gpu::backend::BackendKind;

use super::{desc, fill, open, pattern, read, Rows};

/// xorshift64*: deterministic, so a failure names a reproducible step.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: u32) -> u32 {
        (self.next() % u64::from(n)) as u32
    }

    /// A coordinate or length, mostly small, sometimes at or past the edges, rarely huge.
    fn extent(&mut self) -> u32 {
        match self.below(12) {
            0 => u32::MAX - self.below(3),
            1 => 0,
            2 => 60 + self.below(10),
            _ => self.below(20),
        }
    }

    /// A resource edge: usually 16..64, sometimes zero.
    fn size(&mut self) -> u32 {
        if self.below(10) == 0 {
            0
        } else {
            16 + self.below(48)
        }
    }

    /// An id: mostly one of a few live ones, sometimes 0 or one never created.
    fn id(&mut self) -> u32 {
        if self.below(8) == 0 {
            self.below(8)
        } else {
            1 + self.below(3)
        }
    }

    /// A rectangle that usually fits a 16x16 corner, sometimes anything.
    fn small_rect(&mut self) -> Rect {
        if self.below(8) == 0 {
            return self.rect();
        }
        let mut r = || self.below(16);
        Rect::new(r(), r(), 1 + r(), 1 + r())
    }

    fn rect(&mut self) -> Rect {
        Rect::new(self.extent(), self.extent(), self.extent(), self.extent())
    }
}

/// What one call produced, comparable across backends.
#[derive(Debug, PartialEq)]
enum Outcome {
    Done,
    Rows(Vec<Vec<u8>>),
    Frame(Frame),
    Failed(String),
}

/// Error variants must agree; messages may differ between backends, and so may the kind of
/// memory that ran out.
fn outcome<T>(r: GpuResult<T>, ok: impl FnOnce(T) -> Outcome) -> Outcome {
    match r {
        Ok(v) => ok(v),
        Err(GpuError::InvalidParameter(_)) => Outcome::Failed("InvalidParameter".into()),
        Err(GpuError::Unsupported(_)) => Outcome::Failed("Unsupported".into()),
        Err(GpuError::OutOfHostMemory | GpuError::OutOfDeviceMemory) => {
            Outcome::Failed("OutOfMemory".into())
        }
        Err(e) => Outcome::Failed(format!("{e:?}")),
    }
}

fn step(b: &mut dyn GpuBackend, rng: &mut Rng) -> Outcome {
    let id = rng.below(6);
    // Mostly the first few scanouts, sometimes the last valid ones and the first invalid ones.
    let scanout = if rng.below(8) == 0 {
        14 + rng.below(4)
    } else {
        rng.below(3)
    };
    match rng.below(11) {
        0 | 1 => {
            let format = PixelFormat::SUPPORTED[rng.below(8) as usize];
            let (w, h) = (rng.size(), rng.size());
            outcome(b.create_resource_2d(id, desc(w, h, format)), |_| {
                Outcome::Done
            })
        }
        2 => outcome(b.destroy_resource(id), |_| Outcome::Done),
        3 => {
            let (rect, seed) = (rng.rect(), rng.below(256) as u8);
            // The pattern is written in XRGB byte order whatever the format: bytes are bytes.
            let r = fill(b, id, rect, PixelFormat::ABGR8888, |x, y| {
                pattern(x, y, seed)
            });
            outcome(r, |_| Outcome::Done)
        }
        4 => outcome(read(b, id, rng.rect()), Outcome::Rows),
        5 => {
            let shown = (rng.below(4) != 0).then_some(id);
            outcome(b.set_scanout(scanout, shown, rng.rect()), |_| Outcome::Done)
        }
        6 => outcome(b.flush(id, rng.rect()), |_| Outcome::Done),
        7 => {
            let image = (rng.below(4) != 0).then(|| CursorImage {
                resource: id,
                hot_x: rng.extent(),
                hot_y: rng.extent(),
            });
            outcome(b.set_cursor(scanout, image), |_| Outcome::Done)
        }
        8 => outcome(b.move_cursor(scanout, rng.extent(), rng.extent()), |_| {
            Outcome::Done
        }),
        _ => outcome(b.read_scanout(scanout), Outcome::Frame),
    }
}

#[test]
fn hostile_call_sequences_give_the_same_outcome_everywhere() {
    let mut backends = vec![(BackendKind::Software, open(BackendKind::Software).unwrap())];
    for kind in [BackendKind::Vulkan, BackendKind::Rutabaga] {
        if let Some(b) = open(kind) {
            backends.push((kind, b));
        }
    }
    for seed in [1u64, 0x9e37_79b9_7f4a_7c15, 42] {
        let mut rngs: Vec<Rng> = backends.iter().map(|_| Rng(seed)).collect();
        for i in 0..1500 {
            let mut outcomes = Vec::new();
            for ((kind, b), rng) in backends.iter_mut().zip(&mut rngs) {
                outcomes.push((*kind, step(b.as_mut(), rng)));
            }
            let (_, reference) = &outcomes[0];
            for (kind, got) in &outcomes[1..] {
                assert_eq!(
                    got, reference,
                    "{kind:?} differs at seed {seed:#x} step {i}"
                );
            }
        }
    }
}

/// A random, often invalid, VG command.
fn vg_command(rng: &mut Rng) -> Command {
    let id = rng.id();
    match rng.below(5) {
        0 => Command::Fill {
            resource: id,
            rect: rng.small_rect(),
            value: rng.next() as u32,
        },
        1 | 2 => Command::Copy {
            src: id,
            dst: rng.id(),
            src_rect: rng.small_rect(),
            dst_x: rng.below(24),
            dst_y: rng.below(24),
        },
        3 => Command::FillBlob {
            resource: id,
            offset: u64::from(rng.extent()) * 37,
            len: rng.extent().wrapping_mul(13),
            value: rng.next() as u8,
        },
        _ => Command::Nop,
    }
}

fn compute_step(b: &mut dyn GpuBackend, rng: &mut Rng) -> Outcome {
    // Mostly context 1, so that resources meet the context they are attached to.
    let ctx = if rng.below(6) == 0 { rng.below(4) } else { 1 };
    let id = rng.id();
    let done = |_| Outcome::Done;
    // 0 create_context, 1-2 attach, 11 detach, 3 create 2D, 4 and 12 create 3D, 5 blob,
    // 6 destroy, 7-9 and 13 submit, 10 and 14 3D read-back, 15 2D read-back, 16 2D write,
    // 17 show and flush, 18 the scanout's frame: the GPU's and the guest's writes to one
    // resource must reach each other and the screen in order.
    match rng.below(19) {
        0 => {
            let capset = [0, stream::CAPSET_ID, 7][rng.below(3) as usize];
            outcome(b.create_context(ctx, capset, "differential"), done)
        }
        1 | 2 => outcome(b.attach_resource(ctx, id), done),
        11 => outcome(b.detach_resource(ctx, id), done),
        3 => {
            let format = PixelFormat::SUPPORTED[rng.below(8) as usize];
            outcome(
                b.create_resource_2d(id, desc(rng.size(), rng.size(), format)),
                done,
            )
        }
        4 | 12 => {
            let target = [0, 2][rng.below(2) as usize];
            let height = if target == 0 { 1 } else { rng.size() };
            let d = Resource3dDesc {
                target,
                format: 0,
                bind: 0,
                width: rng.size(),
                height,
                depth: 1,
                array_size: 1 + rng.below(3),
                last_level: u32::from(rng.below(8) == 0),
                nr_samples: 0,
                flags: 0,
            };
            outcome(b.create_resource_3d(ctx, id, d), done)
        }
        5 => {
            let blob = BlobDesc {
                mem: BlobMem::Host3d,
                size: 1 + u64::from(rng.below(4096)),
                blob_id: 0,
                mappable: true,
                shareable: false,
                cross_device: false,
            };
            outcome(b.create_blob(ctx, id, blob), done)
        }
        6 => outcome(b.destroy_resource(id), done),
        7..=9 | 13 => {
            let mut bytes = Vec::new();
            for _ in 0..1 + rng.below(3) {
                stream::encode(&vg_command(rng), &mut bytes);
            }
            if rng.below(10) == 0 {
                bytes.push(1); // not whole words
            }
            outcome(b.submit(ctx, 0, &bytes), done)
        }
        10 | 14 => {
            let r = rng.small_rect();
            let t = Transfer3d {
                x: r.x,
                y: r.y,
                z: rng.below(3),
                width: r.width,
                height: r.height,
                depth: rng.below(3),
                level: u32::from(rng.below(10) == 0),
                stride: 0,
                layer_stride: 0,
                offset: 0,
            };
            let mut rows = Rows(Vec::new());
            outcome(b.transfer_from_host_3d(ctx, id, t, &mut rows), |_| {
                Outcome::Rows(rows.0)
            })
        }
        16 => {
            let (rect, seed) = (rng.small_rect(), rng.below(256) as u8);
            let r = fill(b, id, rect, PixelFormat::ABGR8888, |x, y| {
                pattern(x, y, seed)
            });
            outcome(r, done)
        }
        17 => {
            if rng.below(3) == 0 {
                let rect = rng.small_rect();
                outcome(b.set_scanout(0, Some(id), rect), done)
            } else {
                outcome(b.flush(id, rng.small_rect()), done)
            }
        }
        18 => outcome(b.read_scanout(0), Outcome::Frame),
        _ => outcome(read(b, id, rng.small_rect()), Outcome::Rows),
    }
}

#[test]
fn hostile_command_streams_run_the_same_on_every_vg_backend() {
    let mut backends = Vec::new();
    for kind in [BackendKind::Software, BackendKind::Vulkan] {
        if let Some(b) =
            open(kind).filter(|b| b.capsets().iter().any(|c| c.id == stream::CAPSET_ID))
        {
            backends.push((kind, b));
        }
    }
    if backends.len() < 2 {
        println!("skipped: fewer than two backends offer the VG capset here");
        return;
    }
    for seed in [3u64, 0x5151_5151, 99] {
        let mut rngs: Vec<Rng> = backends.iter().map(|_| Rng(seed)).collect();
        for i in 0..1500 {
            let mut outcomes = Vec::new();
            for ((kind, b), rng) in backends.iter_mut().zip(&mut rngs) {
                outcomes.push((*kind, compute_step(b.as_mut(), rng)));
            }
            let (_, reference) = &outcomes[0];
            for (kind, got) in &outcomes[1..] {
                assert_eq!(
                    got, reference,
                    "{kind:?} differs at seed {seed:#x} step {i}"
                );
            }
        }
    }
}
