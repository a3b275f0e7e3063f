//! One conformance suite for every backend, written against the `gpu_interface` traits only.
//!
//! Each check is instantiated for software, vulkan (lavapipe here; skipped with a clear message
//! when no Vulkan device initialises) and rutabaga. Expected pixels are computed here, by a
//! reference blend independent of the backends, and `backends_agree_pixel_for_pixel` compares
//! every backend's composed frames with the software backend's, byte for byte.
//!
//! Checks live in `conformance/`: `display.rs`, `compute.rs` (fences, blobs), `vg.rs` (the VG
//! capset, where offered), `agreement.rs` (cross-backend frames, the default backend) and
//! `differential.rs` (long hostile call sequences must give the same outcome on every backend).

use gpu_interface::{GpuBackend, GpuResult, PixelFormat, Rect, Resource2dDesc, RowSink};
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

#[path = "conformance/agreement.rs"]
mod agreement;
#[path = "conformance/compute.rs"]
mod compute;
#[path = "conformance/differential.rs"]
mod differential;
#[path = "conformance/display.rs"]
mod display;
#[path = "conformance/vg.rs"]
mod vg;

use compute::*;
use display::*;
use vg::*;

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
