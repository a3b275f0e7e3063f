//! The scanout composition shader, written in WGSL and translated to SPIR-V in-process by naga,
//! so no shader compiler is needed at build time.
//!
//! The primary plane is copied into the frame beforehand (a buffer copy); the shader runs only
//! over the visible part of the cursor and computes exactly what the CPU path
//! (`backend::compose`) computes: where the 64x64 cursor has non-zero alpha,
//! `(c * a + p * (255 - a) + 127) / 255` per colour channel, with the alpha/X byte set to 255.

use super::VulkanError;

/// Entry point name in [`COMPOSE_WGSL`].
pub const ENTRY: &str = "main";

/// Workgroup edge length (the shader runs 8x8 invocations per group).
pub const WORKGROUP: u32 = 8;

/// Layout of the `Params` storage buffer (binding 2), one little-endian u32 per field.
#[derive(Debug, Clone, Copy, Default)]
pub struct ComposeParams {
    pub width: u32,
    pub height: u32,
    /// Top-left of the cursor in frame pixels (may be negative).
    pub cursor_x: i32,
    pub cursor_y: i32,
    /// Visible cursor size (at most 64x64); 0 when there is no cursor.
    pub cursor_w: u32,
    pub cursor_h: u32,
    /// Bit shifts of R, G, B, A/X within a primary pixel, one per byte (r | g << 8 | ...).
    pub plane_shifts: u32,
    /// Bit shifts of R, G, B, A within a cursor pixel.
    pub cursor_shifts: u32,
    pub cursor_has_alpha: u32,
    /// The frame rectangle the dispatch covers (the visible part of the cursor).
    pub origin_x: u32,
    pub origin_y: u32,
    pub extent_w: u32,
    pub extent_h: u32,
}

impl ComposeParams {
    pub const BYTES: usize = 13 * 4;

    pub fn to_bytes(self) -> [u8; Self::BYTES] {
        let words = [
            self.width,
            self.height,
            self.cursor_x as u32,
            self.cursor_y as u32,
            self.cursor_w,
            self.cursor_h,
            self.plane_shifts,
            self.cursor_shifts,
            self.cursor_has_alpha,
            self.origin_x,
            self.origin_y,
            self.extent_w,
            self.extent_h,
        ];
        let mut out = [0u8; Self::BYTES];
        for (chunk, w) in out.chunks_exact_mut(4).zip(words) {
            chunk.copy_from_slice(&w.to_le_bytes());
        }
        out
    }
}

/// Packs byte positions of (R, G, B, A) into the shader's shift word.
pub fn pack_shifts(offsets: [usize; 4]) -> u32 {
    offsets
        .iter()
        .enumerate()
        .fold(0u32, |acc, (i, &o)| acc | (((o as u32) * 8) << (8 * i)))
}

pub const COMPOSE_WGSL: &str = r#"
struct Params {
    width: u32,
    height: u32,
    cursor_x: i32,
    cursor_y: i32,
    cursor_w: u32,
    cursor_h: u32,
    plane_shifts: u32,
    cursor_shifts: u32,
    cursor_has_alpha: u32,
    origin_x: u32,
    origin_y: u32,
    extent_w: u32,
    extent_h: u32,
}

@group(0) @binding(0) var<storage, read> cursor: array<u32>;
@group(0) @binding(1) var<storage, read_write> frame: array<u32>;
@group(0) @binding(2) var<storage, read> p: Params;

fn shift(packed: u32, i: u32) -> u32 {
    return (packed >> (8u * i)) & 31u;
}

fn chan(px: u32, s: u32) -> u32 {
    return (px >> s) & 255u;
}

fn mix_chan(c: u32, d: u32, a: u32) -> u32 {
    return (c * a + d * (255u - a) + 127u) / 255u;
}

@compute @workgroup_size(8, 8, 1)
fn main(@builtin(global_invocation_id) id: vec3<u32>) {
    if (id.x >= p.extent_w || id.y >= p.extent_h) {
        return;
    }
    let fx = p.origin_x + id.x;
    let fy = p.origin_y + id.y;
    if (fx >= p.width || fy >= p.height) {
        return;
    }
    let cx = i32(fx) - p.cursor_x;
    let cy = i32(fy) - p.cursor_y;
    if (cx < 0 || cy < 0 || u32(cx) >= p.cursor_w || u32(cy) >= p.cursor_h) {
        return;
    }
    let c = cursor[u32(cy) * 64u + u32(cx)];
    let cs = p.cursor_shifts;
    var a = 255u;
    if (p.cursor_has_alpha != 0u) {
        a = chan(c, shift(cs, 3u));
    }
    if (a == 0u) {
        return;
    }
    let i = fy * p.width + fx;
    let px = frame[i];
    let ps = p.plane_shifts;
    let r = mix_chan(chan(c, shift(cs, 0u)), chan(px, shift(ps, 0u)), a);
    let g = mix_chan(chan(c, shift(cs, 1u)), chan(px, shift(ps, 1u)), a);
    let b = mix_chan(chan(c, shift(cs, 2u)), chan(px, shift(ps, 2u)), a);
    frame[i] = (r << shift(ps, 0u)) | (g << shift(ps, 1u)) | (b << shift(ps, 2u))
        | (255u << shift(ps, 3u));
}
"#;

/// Translates [`COMPOSE_WGSL`] to SPIR-V words.
pub fn compose_spirv() -> Result<Vec<u32>, VulkanError> {
    let module = naga::front::wgsl::parse_str(COMPOSE_WGSL)
        .map_err(|e| VulkanError::Shader(e.emit_to_string(COMPOSE_WGSL)))?;
    let info = naga::valid::Validator::new(
        naga::valid::ValidationFlags::all(),
        naga::valid::Capabilities::empty(),
    )
    .validate(&module)
    .map_err(|e| VulkanError::Shader(format!("{e:?}")))?;
    let pipeline = naga::back::spv::PipelineOptions {
        shader_stage: naga::ShaderStage::Compute,
        entry_point: ENTRY.to_string(),
    };
    let options = naga::back::spv::Options {
        lang_version: (1, 0),
        flags: naga::back::spv::WriterFlags::empty(),
        ..Default::default()
    };
    naga::back::spv::write_vec(&module, &info, &options, Some(&pipeline))
        .map_err(|e| VulkanError::Shader(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wgsl_translates_to_spirv() {
        let words = compose_spirv().unwrap();
        assert_eq!(words[0], 0x0723_0203, "SPIR-V magic");
    }

    #[test]
    fn shifts_pack_per_byte() {
        // XRGB8888: R at byte 2, G 1, B 0, X 3.
        assert_eq!(pack_shifts([2, 1, 0, 3]), 16 | (8 << 8) | (24 << 24));
    }
}
