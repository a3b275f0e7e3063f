//! Screenshots as RGB images (from QEMU's PPM/PNG screendumps and our PNG exports) and the
//! guest programs' colour-bar pattern they are checked against.

use std::path::Path;

use crate::{io, E2eError};

/// An RGB image from a screenshot.
#[derive(Debug, Clone)]
pub struct Image {
    pub width: u32,
    pub height: u32,
    /// RGB, 3 bytes per pixel, no padding.
    pub rgb: Vec<u8>,
}

/// The guest programs' known pattern: eight vertical bars (guests/programs/vgpu_test.h).
pub const BARS: [[u8; 3]; 8] = [
    [255, 255, 255],
    [255, 255, 0],
    [0, 255, 255],
    [0, 255, 0],
    [255, 0, 255],
    [255, 0, 0],
    [0, 0, 255],
    [0, 0, 0],
];

impl Image {
    pub fn pixel(&self, x: u32, y: u32) -> [u8; 3] {
        let i = (y as usize * self.width as usize + x as usize) * 3;
        [self.rgb[i], self.rgb[i + 1], self.rgb[i + 2]]
    }

    /// Checks the colour-bar pattern at the centre of every bar, on three rows.
    pub fn check_bars(&self) -> Result<(), String> {
        self.check_bars_as(|c| c)
    }

    /// Checks the colour bars with every colour inverted (`vgpu-kms --invert`).
    pub fn check_inverted_bars(&self) -> Result<(), String> {
        self.check_bars_as(|c| c.map(|v| 255 - v))
    }

    fn check_bars_as(&self, colour: impl Fn([u8; 3]) -> [u8; 3]) -> Result<(), String> {
        for y in [self.height / 4, self.height / 2, self.height * 3 / 4] {
            for (i, bar) in BARS.iter().enumerate() {
                let x = (2 * i as u32 + 1) * self.width / 16;
                let got = self.pixel(x, y);
                let want = &colour(*bar);
                if &got != want {
                    return Err(format!(
                        "pixel ({x},{y}) is {got:?}, bar {i} should be {want:?}"
                    ));
                }
            }
        }
        Ok(())
    }

    pub(crate) fn read_ppm(path: &Path) -> Result<Image, E2eError> {
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        // "P6\n<w> <h>\n255\n" then RGB.
        let mut fields = Vec::new();
        let mut pos = 0;
        while fields.len() < 4 && pos < bytes.len() {
            while pos < bytes.len() && bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            let start = pos;
            while pos < bytes.len() && !bytes[pos].is_ascii_whitespace() {
                pos += 1;
            }
            fields.push(String::from_utf8_lossy(&bytes[start..pos]).to_string());
        }
        pos += 1;
        let bad = || E2eError::Image(format!("{} is not a P6 PPM", path.display()));
        if fields.len() != 4 || fields[0] != "P6" {
            return Err(bad());
        }
        let width: u32 = fields[1].parse().map_err(|_| bad())?;
        let height: u32 = fields[2].parse().map_err(|_| bad())?;
        let rgb = bytes
            .get(pos..pos + width as usize * height as usize * 3)
            .ok_or_else(bad)?
            .to_vec();
        Ok(Image { width, height, rgb })
    }

    pub(crate) fn read_png(path: &Path) -> Result<Image, E2eError> {
        let bytes = std::fs::read(path).map_err(io(format!("reading {}", path.display())))?;
        Image::from_png(&bytes)
    }

    /// Decodes a PNG (any colour type) to RGB.
    pub fn from_png(bytes: &[u8]) -> Result<Image, E2eError> {
        let mut decoder = png::Decoder::new(std::io::Cursor::new(bytes));
        decoder.set_transformations(png::Transformations::normalize_to_color8());
        let mut reader = decoder
            .read_info()
            .map_err(|e| E2eError::Image(e.to_string()))?;
        let mut buf = vec![0; reader.output_buffer_size()];
        let info = reader
            .next_frame(&mut buf)
            .map_err(|e| E2eError::Image(e.to_string()))?;
        let channels = info.color_type.samples();
        let rgb = buf[..info.buffer_size()]
            .chunks_exact(channels)
            .flat_map(|px| [px[0], px[1], px[2]])
            .collect();
        Ok(Image {
            width: info.width,
            height: info.height,
            rgb,
        })
    }
}
