//! Differential check: a long pseudo-random sequence of display calls, most of them hostile
//! (unknown ids, rectangles past the edges, scanouts past the last one, zero sizes), is applied to
//! every backend at once; each call must give the same outcome everywhere (same error variant,
//! same rows read back, same composed frames) and nothing may panic.

use gpu_interface::{CursorImage, Frame, GpuBackend, GpuError, GpuResult, PixelFormat, Rect};
use virtio_gpu::backend::BackendKind;

use super::{desc, fill, open, pattern, read};

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
