//! CPU composition shared by the backends that keep scanout images in host memory (software,
//! rutabaga): copying rectangles between images, converting cursor images and alpha-blending the
//! 64x64 cursor plane over a primary plane.
//!
//! Every function here checks its rectangles against the buffers it is given and reports
//! [`GpuError::InvalidParameter`] instead of indexing out of bounds.

use gpu_interface::{Frame, GpuError, GpuResult, PixelFormat, Rect};

/// Width and height of the virtio-gpu cursor plane.
pub const CURSOR_SIZE: u32 = 64;

/// Bytes of one 64x64 ARGB8888 cursor image.
pub const CURSOR_BYTES: usize = (CURSOR_SIZE * CURSOR_SIZE * 4) as usize;

/// A borrowed image: `stride`-spaced rows of 32-bit pixels.
#[derive(Debug, Clone, Copy)]
pub struct ImageRef<'a> {
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub format: PixelFormat,
    pub data: &'a [u8],
}

/// Byte range of `rect`'s row `row` within an image of `stride`, or `None` on overflow.
fn row_range(stride: u32, rect: &Rect, row: u32) -> Option<std::ops::Range<usize>> {
    let y = u64::from(rect.y.checked_add(row)?);
    let start = y * u64::from(stride) + u64::from(rect.x) * 4;
    let len = u64::from(rect.width) * 4;
    let start = usize::try_from(start).ok()?;
    let end = start.checked_add(usize::try_from(len).ok()?)?;
    Some(start..end)
}

/// Checks that `rect` lies inside a `width` x `height` image whose `data` holds `stride`-spaced rows.
pub fn check_rect(rect: &Rect, width: u32, height: u32, stride: u32, len: usize) -> GpuResult<()> {
    if !rect.fits_in(width, height) {
        return Err(GpuError::InvalidParameter("rectangle outside the image"));
    }
    if rect.is_empty() {
        return Ok(());
    }
    let last = row_range(stride, rect, rect.height - 1)
        .ok_or(GpuError::InvalidParameter("rectangle overflows"))?;
    if last.end > len {
        return Err(GpuError::InvalidParameter(
            "image data shorter than its rows",
        ));
    }
    Ok(())
}

/// Copies `src_rect` of `src` to (`dst_x`, `dst_y`) of `dst` (same format; a plain row copy).
#[allow(clippy::too_many_arguments)]
pub fn copy_rect(
    src: &[u8],
    src_stride: u32,
    src_size: (u32, u32),
    src_rect: Rect,
    dst: &mut [u8],
    dst_stride: u32,
    dst_size: (u32, u32),
    dst_x: u32,
    dst_y: u32,
) -> GpuResult<()> {
    let dst_rect = Rect::new(dst_x, dst_y, src_rect.width, src_rect.height);
    check_rect(&src_rect, src_size.0, src_size.1, src_stride, src.len())?;
    check_rect(&dst_rect, dst_size.0, dst_size.1, dst_stride, dst.len())?;
    for row in 0..src_rect.height {
        let s = row_range(src_stride, &src_rect, row)
            .ok_or(GpuError::InvalidParameter("rectangle overflows"))?;
        let d = row_range(dst_stride, &dst_rect, row)
            .ok_or(GpuError::InvalidParameter("rectangle overflows"))?;
        match (src.get(s), dst.get_mut(d)) {
            (Some(s), Some(d)) => d.copy_from_slice(s),
            _ => return Err(GpuError::InvalidParameter("rectangle outside the image")),
        }
    }
    Ok(())
}

/// Copies the rows of `rect` that differ from `src` into `dst` (both `stride`-spaced images of
/// 32-bit pixels) and returns the box of pixels that changed (`None`: none did, or `rect` does not
/// lie inside both buffers).
pub fn copy_changed(src: &[u8], dst: &mut [u8], stride: u32, rect: Rect) -> Option<Rect> {
    let (mut left, mut right, mut top, mut bottom) = (usize::MAX, 0usize, u32::MAX, 0u32);
    for row in 0..rect.height {
        let range = row_range(stride, &rect, row)?;
        let (from, to) = (src.get(range.clone())?, dst.get_mut(range)?);
        if from == to {
            continue;
        }
        let first = from.iter().zip(to.iter()).position(|(a, b)| a != b)?;
        let last = from.iter().zip(to.iter()).rposition(|(a, b)| a != b)?;
        left = left.min(first / 4);
        right = right.max(last / 4 + 1);
        top = top.min(rect.y + row);
        bottom = bottom.max(rect.y + row + 1);
        to.copy_from_slice(from);
    }
    (top != u32::MAX).then(|| {
        Rect::new(
            rect.x + left as u32,
            top,
            (right - left) as u32,
            bottom - top,
        )
    })
}

/// Converts the top-left 64x64 of `image` to a 64x64 ARGB8888 cursor; pixels outside the image
/// are transparent, formats without alpha are opaque.
pub fn cursor_to_argb(image: &ImageRef<'_>) -> GpuResult<Vec<u8>> {
    let mut out = vec![0u8; CURSOR_BYTES];
    let w = image.width.min(CURSOR_SIZE);
    let h = image.height.min(CURSOR_SIZE);
    check_rect(
        &Rect::full(w, h),
        image.width,
        image.height,
        image.stride,
        image.data.len(),
    )?;
    for y in 0..h {
        for x in 0..w {
            let s = (y as usize) * image.stride as usize + (x as usize) * 4;
            let d = ((y * CURSOR_SIZE + x) * 4) as usize;
            let (Some(px), Some(dst)) = (image.data.get(s..s + 4), out.get_mut(d..d + 4)) else {
                return Err(GpuError::InvalidParameter("cursor image too small"));
            };
            PixelFormat::ARGB8888.from_rgba(image.format.to_rgba(px), dst);
        }
    }
    Ok(out)
}

/// Blends `src` over `dst` (both (r, g, b, a)) with straight alpha.
fn blend(src: [u8; 4], dst: [u8; 4]) -> [u8; 4] {
    let a = u32::from(src[3]);
    let mix = |s: u8, d: u8| ((u32::from(s) * a + u32::from(d) * (255 - a) + 127) / 255) as u8;
    [
        mix(src[0], dst[0]),
        mix(src[1], dst[1]),
        mix(src[2], dst[2]),
        255,
    ]
}

/// Alpha-blends a 64x64 ARGB8888 `cursor` onto `frame` with its top-left corner at (`x`, `y`)
/// (already minus the hotspot; may be negative or beyond the frame: the cursor is clipped).
pub fn blend_cursor(frame: &mut Frame, cursor: &[u8], x: i64, y: i64) -> GpuResult<()> {
    if cursor.len() < CURSOR_BYTES {
        return Err(GpuError::InvalidParameter(
            "cursor image shorter than 64x64",
        ));
    }
    let (fw, fh) = (i64::from(frame.width), i64::from(frame.height));
    let stride = frame.stride as usize;
    let format = frame.format;
    for cy in 0..i64::from(CURSOR_SIZE) {
        let fy = y + cy;
        if fy < 0 || fy >= fh {
            continue;
        }
        for cx in 0..i64::from(CURSOR_SIZE) {
            let fx = x + cx;
            if fx < 0 || fx >= fw {
                continue;
            }
            let c = ((cy * i64::from(CURSOR_SIZE) + cx) * 4) as usize;
            let f = fy as usize * stride + fx as usize * 4;
            let (Some(cpx), Some(fpx)) = (cursor.get(c..c + 4), frame.data.get_mut(f..f + 4))
            else {
                return Err(GpuError::InvalidParameter(
                    "frame data shorter than its rows",
                ));
            };
            let src = PixelFormat::ARGB8888.to_rgba(cpx);
            if src[3] == 0 {
                continue;
            }
            let out = blend(src, format.to_rgba(fpx));
            format.from_rgba(out, fpx);
        }
    }
    Ok(())
}

/// A cursor plane to compose: 64x64 ARGB8888 pixels, position and hotspot.
#[derive(Debug, Clone, Copy)]
pub struct CursorPlane<'a> {
    pub argb: &'a [u8],
    pub x: u32,
    pub y: u32,
    pub hot_x: u32,
    pub hot_y: u32,
}

/// The composed scanout: a copy of `primary` with `cursor` blended on top.
pub fn compose(primary: &ImageRef<'_>, cursor: Option<CursorPlane<'_>>) -> GpuResult<Frame> {
    let stride = primary
        .width
        .checked_mul(4)
        .ok_or(GpuError::InvalidParameter("scanout too wide"))?;
    let len = usize::try_from(u64::from(stride) * u64::from(primary.height))
        .map_err(|_| GpuError::OutOfHostMemory)?;
    let mut frame = Frame {
        width: primary.width,
        height: primary.height,
        stride,
        format: primary.format,
        data: vec![0u8; len],
    };
    let size = (primary.width, primary.height);
    copy_rect(
        primary.data,
        primary.stride,
        size,
        Rect::full(size.0, size.1),
        &mut frame.data,
        stride,
        size,
        0,
        0,
    )?;
    if let Some(c) = cursor {
        let x = i64::from(c.x) - i64::from(c.hot_x.min(CURSOR_SIZE));
        let y = i64::from(c.y) - i64::from(c.hot_y.min(CURSOR_SIZE));
        blend_cursor(&mut frame, c.argb, x, y)?;
    }
    Ok(frame)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn solid(w: u32, h: u32, format: PixelFormat, rgba: [u8; 4]) -> Vec<u8> {
        let mut v = vec![0u8; (w * h * 4) as usize];
        for px in v.chunks_exact_mut(4) {
            format.from_rgba(rgba, px);
        }
        v
    }

    #[test]
    fn copy_rect_rejects_out_of_bounds_and_overflow() {
        let src = vec![1u8; 16 * 4];
        let mut dst = vec![0u8; 16 * 4];
        let r = copy_rect(
            &src,
            16,
            (4, 4),
            Rect::new(2, 2, 4, 4),
            &mut dst,
            16,
            (4, 4),
            0,
            0,
        );
        assert!(r.is_err());
        let r = copy_rect(
            &src,
            16,
            (4, 4),
            Rect::new(u32::MAX, 0, 2, 1),
            &mut dst,
            16,
            (4, 4),
            0,
            0,
        );
        assert!(r.is_err());
        // Stride claims more rows than data holds.
        let r = copy_rect(
            &src,
            64,
            (4, 4),
            Rect::full(4, 4),
            &mut dst,
            16,
            (4, 4),
            0,
            0,
        );
        assert!(r.is_err());
        copy_rect(
            &src,
            16,
            (4, 4),
            Rect::new(1, 1, 2, 2),
            &mut dst,
            16,
            (4, 4),
            2,
            2,
        )
        .unwrap();
        assert_eq!(dst[(2 * 16 + 2 * 4) as usize], 1);
        assert_eq!(dst[0], 0);
    }

    #[test]
    fn cursor_is_blended_clipped_and_offset_by_hotspot() {
        let primary = solid(100, 80, PixelFormat::XRGB8888, [0, 0, 255, 255]);
        let mut cursor = solid(64, 64, PixelFormat::ARGB8888, [255, 0, 0, 255]);
        // Half-transparent bottom-right pixel, fully transparent top-left.
        PixelFormat::ARGB8888.from_rgba([255, 0, 0, 128], &mut cursor[(63 * 64 + 63) * 4..][..4]);
        PixelFormat::ARGB8888.from_rgba([255, 0, 0, 0], &mut cursor[0..4]);
        let img = ImageRef {
            width: 100,
            height: 80,
            stride: 400,
            format: PixelFormat::XRGB8888,
            data: &primary,
        };
        let plane = CursorPlane {
            argb: &cursor,
            x: 50,
            y: 40,
            hot_x: 10,
            hot_y: 10,
        };
        let f = compose(&img, Some(plane)).unwrap();
        assert_eq!(
            f.pixel_rgba(40, 30),
            Some([0, 0, 255, 255]),
            "transparent pixel"
        );
        assert_eq!(f.pixel_rgba(41, 30), Some([255, 0, 0, 255]));
        assert_eq!(
            f.pixel_rgba(39, 30),
            Some([0, 0, 255, 255]),
            "left of cursor"
        );
        let [r, _, b, _] = f.pixel_rgba(40 + 59, 30 + 49).unwrap();
        assert_eq!((r, b), (255, 0), "inside frame, opaque cursor");
        // A cursor far off-screen or at negative positions is clipped, not a panic.
        let plane = CursorPlane {
            argb: &cursor,
            x: 0,
            y: 0,
            hot_x: 64,
            hot_y: 64,
        };
        let f = compose(&img, Some(plane)).unwrap();
        assert_eq!(f.pixel_rgba(0, 0), Some([0, 0, 255, 255]));
        let plane = CursorPlane {
            argb: &cursor,
            x: u32::MAX,
            y: u32::MAX,
            hot_x: 0,
            hot_y: 0,
        };
        assert!(compose(&img, Some(plane)).is_ok());
    }

    #[test]
    fn copy_changed_copies_and_reports_only_differences() {
        let src: Vec<u8> = (0..64).collect();
        let mut dst = src.clone();
        assert_eq!(copy_changed(&src, &mut dst, 16, Rect::full(4, 4)), None);
        dst[16 + 8] = 0;
        dst[48 + 4] = 0;
        let got = copy_changed(&src, &mut dst, 16, Rect::new(1, 0, 3, 4));
        assert_eq!(got, Some(Rect::new(1, 1, 2, 3)));
        assert_eq!(dst, src);
        let mut short = vec![0u8; 32];
        assert_eq!(
            copy_changed(&src, &mut short, 16, Rect::full(4, 4)),
            None,
            "outside"
        );
    }

    #[test]
    fn half_alpha_blends() {
        let mut frame = Frame {
            width: 1,
            height: 1,
            stride: 4,
            format: PixelFormat::XRGB8888,
            data: solid(1, 1, PixelFormat::XRGB8888, [0, 0, 0, 255]),
        };
        let mut cursor = vec![0u8; CURSOR_BYTES];
        PixelFormat::ARGB8888.from_rgba([255, 255, 255, 128], &mut cursor[0..4]);
        blend_cursor(&mut frame, &cursor, 0, 0).unwrap();
        assert_eq!(frame.pixel_rgba(0, 0), Some([128, 128, 128, 255]));
    }

    #[test]
    fn cursor_conversion_pads_small_images() {
        let data = solid(2, 2, PixelFormat::XRGB8888, [1, 2, 3, 0]);
        let img = ImageRef {
            width: 2,
            height: 2,
            stride: 8,
            format: PixelFormat::XRGB8888,
            data: &data,
        };
        let argb = cursor_to_argb(&img).unwrap();
        assert_eq!(PixelFormat::ARGB8888.to_rgba(&argb[0..4]), [1, 2, 3, 255]);
        assert_eq!(PixelFormat::ARGB8888.to_rgba(&argb[8..12]), [0, 0, 0, 0]);
    }
}
