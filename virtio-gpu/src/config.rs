//! Device configuration chosen by the VMM ([`GpuConfig`]) and the guest-visible
//! `virtio_gpu_config` space.

use gpu_interface::display::MAX_SCANOUTS;
use gpu_interface::DisplayMode;
use zerocopy::IntoBytes;

use crate::protocol::{self, VIRTIO_GPU_EVENT_DISPLAY};

/// What the VMM asks of the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuConfig {
    /// One display mode per scanout, 1..=16 of them (extra entries are ignored, none gives one
    /// 1024x768 scanout).
    pub scanouts: Vec<DisplayMode>,
    /// Offer VIRTIO_GPU_F_EDID and answer GET_EDID.
    pub edid: bool,
}

impl Default for GpuConfig {
    fn default() -> Self {
        GpuConfig {
            scanouts: vec![DisplayMode::new(1024, 768)],
            edid: true,
        }
    }
}

impl GpuConfig {
    /// The scanout modes the device starts with, clamped to 1..=16 scanouts.
    pub fn initial_modes(&self) -> Vec<Option<DisplayMode>> {
        if self.scanouts.is_empty() {
            return vec![Some(DisplayMode::new(1024, 768))];
        }
        self.scanouts
            .iter()
            .take(MAX_SCANOUTS)
            .map(|m| Some(*m))
            .collect()
    }
}

/// The `virtio_gpu_config` registers.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConfigSpace {
    pub events_read: u32,
    pub num_scanouts: u32,
    pub num_capsets: u32,
}

impl ConfigSpace {
    fn bytes(&self) -> protocol::Config {
        protocol::Config {
            events_read: self.events_read.into(),
            events_clear: 0.into(),
            num_scanouts: self.num_scanouts.into(),
            num_capsets: self.num_capsets.into(),
        }
    }

    /// Reads `data.len()` bytes at `offset`; bytes past the structure read as zero.
    pub fn read(&self, offset: u64, data: &mut [u8]) {
        let config = self.bytes();
        let bytes = config.as_bytes();
        for (i, out) in data.iter_mut().enumerate() {
            let pos = usize::try_from(offset).ok().and_then(|o| o.checked_add(i));
            *out = pos.and_then(|p| bytes.get(p)).copied().unwrap_or(0);
        }
    }

    /// Handles a driver write: only `events_clear` (offset 4) is writable, write-1-to-clear.
    /// Returns false (and changes nothing) for any other write.
    pub fn write(&mut self, offset: u64, data: &[u8]) -> bool {
        const EVENTS_CLEAR: u64 = 4;
        let end = offset.checked_add(data.len() as u64);
        if offset < EVENTS_CLEAR || data.is_empty() || end.is_none_or(|e| e > EVENTS_CLEAR + 4) {
            return false;
        }
        let shift = (offset - EVENTS_CLEAR) * 8;
        let mut value = 0u32;
        for (i, b) in data.iter().enumerate() {
            value |= u32::from(*b) << (shift + 8 * i as u64);
        }
        self.events_read &= !value;
        true
    }

    /// Raises VIRTIO_GPU_EVENT_DISPLAY.
    pub fn raise_display_event(&mut self) {
        self.events_read |= VIRTIO_GPU_EVENT_DISPLAY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_clear_is_write_one_to_clear() {
        let mut c = ConfigSpace {
            events_read: 0,
            num_scanouts: 2,
            num_capsets: 1,
        };
        c.raise_display_event();
        let mut buf = [0u8; 16];
        c.read(0, &mut buf);
        assert_eq!(&buf[0..4], &1u32.to_le_bytes());
        assert_eq!(&buf[8..12], &2u32.to_le_bytes());
        assert_eq!(&buf[12..16], &1u32.to_le_bytes());
        assert!(!c.write(8, &[0xff; 4]), "num_scanouts is read-only");
        assert!(!c.write(u64::MAX, &[0xff; 4]), "offset overflow");
        assert!(c.write(4, &1u32.to_le_bytes()));
        assert_eq!(c.events_read, 0);
        let mut past = [0xaau8; 4];
        c.read(u64::MAX, &mut past);
        assert_eq!(past, [0; 4]);
    }
}
