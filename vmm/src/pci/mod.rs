//! The PCI root complex: bus 0 with a host bridge, configuration access through ports
//! 0xCF8/0xCFC and through ECAM, BAR allocation, and MSI-X.
//!
//! Devices implement [`PciDevice`]; the root decodes configuration accesses, keeps each BAR mapped
//! on the MMIO bus where the guest programmed it (moving it when the guest does), and tells the
//! device so it can move what it attached there (ioeventfds).

pub mod config;
pub mod msix;
pub mod root;

pub use config::{BarSpec, PciConfig, PciIds};
pub use msix::{MsiMessage, MsiSink, Msix};
pub use root::{PciConfigIo, PciConfigMmio, PciRoot};

/// The 32-bit window BARs are allocated from; the guest's e820 map must leave it (and the ECAM
/// window) unused, and the MP/ACPI tables may describe it as the host bridge's window.
pub const MMIO32_START: u64 = 0xc000_0000;
pub const MMIO32_SIZE: u64 = 0x2000_0000;
/// ECAM for bus 0 only: 32 devices x 8 functions x 4 KiB.
pub const ECAM_START: u64 = 0xe000_0000;
pub const ECAM_SIZE: u64 = 0x10_0000;
/// Ports of configuration mechanism #1 (address at 0xCF8, data at 0xCFC..0xCFF).
pub const CONFIG_IO_PORT: u64 = 0xcf8;
pub const CONFIG_IO_LEN: u64 = 8;

/// Why a PCI operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PciError {
    #[error("BAR {0} is malformed, taken, or not declared")]
    BadBar(usize),
    #[error("capability is malformed")]
    BadCapability,
    #[error("no room left in configuration space for a capability")]
    NoCapabilitySpace,
    #[error("an MSI-X function has 1..=2048 vectors, not {0}")]
    BadMsixVectors(u16),
    #[error("bus 0 has no free device slot")]
    NoSlot,
    #[error("MMIO window exhausted allocating {0:#x} bytes")]
    NoMmioSpace(u64),
    #[error("mapping a BAR on the MMIO bus")]
    Bus(#[from] crate::bus::BusError),
}

/// A PCI function on bus 0. Config space lives in a [`PciConfig`]; BAR accesses come here with
/// the BAR index and the offset inside it.
pub trait PciDevice: Send {
    fn config(&self) -> &PciConfig;
    fn config_mut(&mut self) -> &mut PciConfig;
    /// Called after the guest wrote config space (through the masks), e.g. for MSI-X control.
    fn config_written(&mut self, _offset: usize, _len: usize) {}
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The guest moved BAR `bar` (or turned decoding on or off): `None` is unmapped.
    fn bar_moved(&mut self, _bar: usize, _old: Option<u64>, _new: Option<u64>) {}
}

/// Hands out naturally aligned ranges of a window, as firmware assigns BARs.
#[derive(Debug, Clone)]
pub struct MmioAllocator {
    next: u64,
    end: u64,
}

impl MmioAllocator {
    pub fn new(start: u64, size: u64) -> Self {
        MmioAllocator {
            next: start,
            end: start.saturating_add(size),
        }
    }

    /// A `size`-aligned range of `size` bytes (`size` a power of two).
    pub fn allocate(&mut self, size: u64) -> Result<u64, PciError> {
        if !size.is_power_of_two() {
            return Err(PciError::NoMmioSpace(size));
        }
        let base = self
            .next
            .checked_next_multiple_of(size)
            .ok_or(PciError::NoMmioSpace(size))?;
        let end = base.checked_add(size).ok_or(PciError::NoMmioSpace(size))?;
        if end > self.end {
            return Err(PciError::NoMmioSpace(size));
        }
        self.next = end;
        Ok(base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allocator_aligns_and_runs_out() {
        let mut alloc = MmioAllocator::new(0x1000, 0x10000);
        assert_eq!(alloc.allocate(0x100).unwrap(), 0x1000);
        assert_eq!(alloc.allocate(0x4000).unwrap(), 0x4000);
        assert_eq!(alloc.allocate(0x8000).unwrap(), 0x8000);
        assert!(alloc.allocate(0x2000).is_err());
        assert_eq!(alloc.allocate(0x1000).unwrap(), 0x10000);
        assert!(alloc.allocate(3).is_err());
    }
}
