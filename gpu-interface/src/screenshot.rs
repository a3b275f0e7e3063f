//! Saving frames as PNG, so a person can look at what a guest shows.

use std::io::Write;

use crate::display::Frame;

/// Why a frame could not be saved.
#[derive(Debug, thiserror::Error)]
pub enum ScreenshotError {
    #[error("frame is empty")]
    Empty,
    #[error("frame data is shorter than stride * height")]
    ShortData,
    #[error("PNG encoding failed: {0}")]
    Encode(#[from] png::EncodingError),
    #[error("writing {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Encodes `frame` as an RGBA PNG into `out`.
pub fn write_png<W: Write>(frame: &Frame, out: W) -> Result<(), ScreenshotError> {
    if frame.width == 0 || frame.height == 0 {
        return Err(ScreenshotError::Empty);
    }
    let needed = frame.stride as usize * (frame.height as usize - 1) + frame.width as usize * 4;
    if frame.data.len() < needed || (frame.stride as usize) < frame.width as usize * 4 {
        return Err(ScreenshotError::ShortData);
    }
    let mut rgba = Vec::with_capacity(frame.width as usize * frame.height as usize * 4);
    for y in 0..frame.height as usize {
        let row = &frame.data[y * frame.stride as usize..][..frame.width as usize * 4];
        for px in row.chunks_exact(4) {
            rgba.extend_from_slice(&frame.format.to_rgba(px));
        }
    }
    let mut encoder = png::Encoder::new(out, frame.width, frame.height);
    encoder.set_color(png::ColorType::Rgba);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header()?;
    writer.write_image_data(&rgba)?;
    writer.finish()?;
    Ok(())
}

/// Saves `frame` as a PNG file at `path`.
pub fn save_png(frame: &Frame, path: &std::path::Path) -> Result<(), ScreenshotError> {
    let io = |source| ScreenshotError::Io {
        path: path.display().to_string(),
        source,
    };
    let file = std::fs::File::create(path).map_err(io)?;
    let mut buf = std::io::BufWriter::new(file);
    write_png(frame, &mut buf)?;
    buf.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::PixelFormat;

    #[test]
    fn png_round_trips_pixels() {
        let mut data = vec![0u8; 2 * 2 * 4];
        PixelFormat::XRGB8888.from_rgba([255, 0, 0, 255], &mut data[0..4]);
        PixelFormat::XRGB8888.from_rgba([0, 0, 255, 255], &mut data[12..16]);
        let frame = Frame {
            width: 2,
            height: 2,
            stride: 8,
            format: PixelFormat::XRGB8888,
            data,
        };
        let mut bytes = Vec::new();
        write_png(&frame, &mut bytes).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        let mut reader = decoder.read_info().unwrap();
        let mut buf = vec![0; reader.output_buffer_size()];
        reader.next_frame(&mut buf).unwrap();
        assert_eq!(&buf[0..4], &[255, 0, 0, 255]);
        assert_eq!(&buf[12..16], &[0, 0, 255, 255]);
    }

    #[test]
    fn short_frame_is_an_error() {
        let frame = Frame {
            width: 4,
            height: 4,
            stride: 16,
            format: PixelFormat::XRGB8888,
            data: vec![0; 10],
        };
        assert!(matches!(
            write_png(&frame, Vec::new()),
            Err(ScreenshotError::ShortData)
        ));
    }
}
