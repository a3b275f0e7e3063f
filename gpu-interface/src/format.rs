//! Pixel formats, named by DRM fourcc codes so that every path speaks the kernel's vocabulary.

pub use drm_fourcc::DrmFourcc;

use crate::error::{GpuError, GpuResult};

/// A pixel format the stack can store, compose and export.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PixelFormat(pub DrmFourcc);

impl PixelFormat {
    pub const XRGB8888: PixelFormat = PixelFormat(DrmFourcc::Xrgb8888);
    pub const ARGB8888: PixelFormat = PixelFormat(DrmFourcc::Argb8888);
    pub const XBGR8888: PixelFormat = PixelFormat(DrmFourcc::Xbgr8888);
    pub const ABGR8888: PixelFormat = PixelFormat(DrmFourcc::Abgr8888);
    pub const BGRX8888: PixelFormat = PixelFormat(DrmFourcc::Bgrx8888);
    pub const BGRA8888: PixelFormat = PixelFormat(DrmFourcc::Bgra8888);
    pub const RGBX8888: PixelFormat = PixelFormat(DrmFourcc::Rgbx8888);
    pub const RGBA8888: PixelFormat = PixelFormat(DrmFourcc::Rgba8888);

    /// Every format the stack supports; all are 32 bits per pixel.
    pub const SUPPORTED: [PixelFormat; 8] = [
        Self::XRGB8888,
        Self::ARGB8888,
        Self::XBGR8888,
        Self::ABGR8888,
        Self::BGRX8888,
        Self::BGRA8888,
        Self::RGBX8888,
        Self::RGBA8888,
    ];

    /// The format for a fourcc code, if the stack supports it.
    pub fn from_fourcc(code: u32) -> GpuResult<Self> {
        let fourcc = DrmFourcc::try_from(code).map_err(|_| GpuError::UnsupportedFormat(code))?;
        let format = PixelFormat(fourcc);
        if Self::SUPPORTED.contains(&format) {
            Ok(format)
        } else {
            Err(GpuError::UnsupportedFormat(code))
        }
    }

    pub fn fourcc(&self) -> u32 {
        self.0 as u32
    }

    pub fn bytes_per_pixel(&self) -> u32 {
        4
    }

    pub fn has_alpha(&self) -> bool {
        matches!(
            self.0,
            DrmFourcc::Argb8888 | DrmFourcc::Abgr8888 | DrmFourcc::Bgra8888 | DrmFourcc::Rgba8888
        )
    }

    /// Byte positions of (R, G, B, A-or-X) within one little-endian pixel.
    ///
    /// DRM fourccs name components from the most significant bit: XRGB8888 is the 32-bit value
    /// 0xXXRRGGBB, so in memory the bytes are B, G, R, X.
    pub fn channel_offsets(&self) -> [usize; 4] {
        match self.0 {
            DrmFourcc::Xrgb8888 | DrmFourcc::Argb8888 => [2, 1, 0, 3],
            DrmFourcc::Xbgr8888 | DrmFourcc::Abgr8888 => [0, 1, 2, 3],
            DrmFourcc::Bgrx8888 | DrmFourcc::Bgra8888 => [1, 2, 3, 0],
            DrmFourcc::Rgbx8888 | DrmFourcc::Rgba8888 => [3, 2, 1, 0],
            _ => [2, 1, 0, 3],
        }
    }

    /// Converts one pixel to (r, g, b, a); formats without alpha give a = 255.
    pub fn to_rgba(&self, px: &[u8]) -> [u8; 4] {
        let [r, g, b, a] = self.channel_offsets();
        let alpha = if self.has_alpha() { px[a] } else { 255 };
        [px[r], px[g], px[b], alpha]
    }

    /// Writes (r, g, b, a) as one pixel of this format.
    pub fn from_rgba(&self, rgba: [u8; 4], px: &mut [u8]) {
        let [r, g, b, a] = self.channel_offsets();
        px[r] = rgba[0];
        px[g] = rgba[1];
        px[b] = rgba[2];
        px[a] = if self.has_alpha() { rgba[3] } else { 0xff };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xrgb_is_bgrx_in_memory() {
        let px = [0x10, 0x20, 0x30, 0x00];
        assert_eq!(PixelFormat::XRGB8888.to_rgba(&px), [0x30, 0x20, 0x10, 255]);
        let mut out = [0u8; 4];
        PixelFormat::RGBA8888.from_rgba([1, 2, 3, 4], &mut out);
        assert_eq!(out, [4, 3, 2, 1]);
    }

    #[test]
    fn unknown_fourcc_is_rejected() {
        assert!(PixelFormat::from_fourcc(0xdead_beef).is_err());
        // NV12 is a real fourcc, but not one the stack composes.
        assert!(PixelFormat::from_fourcc(DrmFourcc::Nv12 as u32).is_err());
        assert_eq!(
            PixelFormat::from_fourcc(DrmFourcc::Xrgb8888 as u32),
            Ok(PixelFormat::XRGB8888)
        );
    }
}
