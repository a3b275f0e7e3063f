//! EDID 1.4 base blocks for virtual displays: preferred mode as a detailed timing descriptor.

use crate::display::DisplayMode;

/// Size of an EDID base block.
pub const EDID_BLOCK_LEN: usize = 128;

/// Builds a checksummed 128-byte EDID base block advertising `mode` as the preferred timing.
pub fn edid_for_mode(mode: DisplayMode, serial: u32) -> [u8; EDID_BLOCK_LEN] {
    let mut e = [0u8; EDID_BLOCK_LEN];
    e[0..8].copy_from_slice(&[0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x00]);
    // Manufacturer "VGP": three 5-bit letters, 'A' = 1, big-endian.
    let id = (((b'V' - b'@') as u16) << 10) | (((b'G' - b'@') as u16) << 5) | (b'P' - b'@') as u16;
    e[8..10].copy_from_slice(&id.to_be_bytes());
    e[10..12].copy_from_slice(&0x1234u16.to_le_bytes()); // product code
    e[12..16].copy_from_slice(&serial.to_le_bytes());
    e[16] = 1; // week
    e[17] = (2026 - 1990) as u8; // year
    e[18] = 1; // EDID 1.4
    e[19] = 4;
    e[20] = 0xa5; // digital, 8 bits per colour, DisplayPort
    e[21] = (mode.width / 100).clamp(1, 255) as u8; // size in cm at ~0.26 mm pixels
    e[22] = (mode.height / 100).clamp(1, 255) as u8;
    e[23] = 120; // gamma 2.2
    e[24] = 0x06; // RGB 4:4:4, preferred timing is native, continuous frequency
                  // Chromaticity of sRGB.
    e[25..35].copy_from_slice(&[0xee, 0x91, 0xa3, 0x54, 0x4c, 0x99, 0x26, 0x0f, 0x50, 0x54]);
    // No established or standard timings: the detailed timing says it all.
    for i in 0..8 {
        e[38 + 2 * i] = 0x01;
        e[39 + 2 * i] = 0x01;
    }
    detailed_timing(&mut e[54..72], mode);
    range_limits(&mut e[72..90]);
    name_descriptor(&mut e[90..108], b"vgpu virtual");
    // Dummy descriptor.
    e[108..126].copy_from_slice(&[0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    e[126] = 0; // no extension blocks
    e[127] = checksum(&e[..127]);
    e
}

fn checksum(bytes: &[u8]) -> u8 {
    0u8.wrapping_sub(bytes.iter().fold(0u8, |a, b| a.wrapping_add(*b)))
}

/// Reduced-blanking timing (CVT-RB-like) for `mode`; exact porches do not matter to a virtual
/// display, but the pixel clock must be consistent with the refresh rate.
fn detailed_timing(d: &mut [u8], mode: DisplayMode) {
    let (w, h) = (mode.width.min(4095), mode.height.min(4095));
    let (hblank, vblank) = (160u32, 35u32);
    let (hfront, hsync, vfront, vsync) = (48u32, 32u32, 3u32, 5u32);
    let total = u64::from(w + hblank) * u64::from(h + vblank);
    let clock_10khz = (total * u64::from(mode.refresh_mhz.max(1)) / 1000 / 10_000).clamp(1, 65535);
    d[0..2].copy_from_slice(&(clock_10khz as u16).to_le_bytes());
    d[2] = (w & 0xff) as u8;
    d[3] = (hblank & 0xff) as u8;
    d[4] = (((w >> 8) << 4) | (hblank >> 8)) as u8;
    d[5] = (h & 0xff) as u8;
    d[6] = (vblank & 0xff) as u8;
    d[7] = (((h >> 8) << 4) | (vblank >> 8)) as u8;
    d[8] = hfront as u8;
    d[9] = hsync as u8;
    d[10] = ((vfront << 4) | vsync) as u8;
    d[11] = 0;
    let (wmm, hmm) = (w * 26 / 100, h * 26 / 100);
    d[12] = (wmm & 0xff) as u8;
    d[13] = (hmm & 0xff) as u8;
    d[14] = (((wmm >> 8) << 4) | (hmm >> 8)) as u8;
    d[15] = 0;
    d[16] = 0;
    d[17] = 0x1e; // digital separate sync, +h +v
}

fn range_limits(d: &mut [u8]) {
    d.copy_from_slice(&[
        0, 0, 0, 0xfd, 0, 50, 125, 30, 160, 255, 0x01, 0x0a, 0x20, 0x20, 0x20, 0x20, 0x20, 0x20,
    ]);
}

fn name_descriptor(d: &mut [u8], name: &[u8]) {
    d[..5].copy_from_slice(&[0, 0, 0, 0xfc, 0]);
    let text = &mut d[5..18];
    text.fill(0x20);
    let n = name.len().min(12);
    text[..n].copy_from_slice(&name[..n]);
    text[n] = 0x0a;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn edid_is_valid_and_advertises_mode() {
        let e = edid_for_mode(DisplayMode::new(1920, 1080), 7);
        assert_eq!(&e[0..8], &[0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0]);
        assert_eq!(e.iter().fold(0u8, |a, b| a.wrapping_add(*b)), 0, "checksum");
        let w = u32::from(e[56]) | (u32::from(e[58] >> 4) << 8);
        let h = u32::from(e[59]) | (u32::from(e[61] >> 4) << 8);
        assert_eq!((w, h), (1920, 1080));
        let clock_khz = u32::from(u16::from_le_bytes([e[54], e[55]])) * 10;
        // (1920+160) * (1080+35) * 60 Hz ~= 139 MHz.
        assert!((138_000..140_000).contains(&clock_khz), "{clock_khz}");
    }
}
