//! The PCI root complex: bus 0 with a host bridge, configuration access through ports
//! 0xCF8/0xCFC and through ECAM, BAR allocation, and MSI-X.
//!
//! Devices implement [`PciDevice`]; the root decodes configuration accesses, keeps each BAR mapped
//! on the MMIO bus where the guest programmed it (moving it when the guest does), and tells the
//! device so it can move what it attached there (ioeventfds).

pub mod config;
pub mod msix;
pub mod root;

pub use config::{BarSpec, PciConfig, PciIds, ROM_BAR};
pub use msix::{MsiMessage, MsiSink, Msix};
pub use root::{PciConfigIo, PciConfigMmio, PciRoot};

/// The 32-bit window BARs are allocated from; the guest's e820 map must leave it (and the ECAM
/// window) unused, and the MP/ACPI tables may describe it as the host bridge's window.
pub const MMIO32_START: u64 = 0xc000_0000;
pub const MMIO32_SIZE: u64 = 0x2000_0000;
/// The 64-bit window for BARs too large for the 32-bit one (a datacenter GPU's BAR of hundreds
/// of GiB): 512 GiB at 512 GiB, under the 40 physical address bits every x86-64 CPU (and QEMU's
/// TCG) has, and above any guest RAM this VMM gives.
pub const MMIO64_START: u64 = 512 << 30;
pub const MMIO64_SIZE: u64 = 512 << 30;
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
    /// What the guest reads at `offset`: the emulated config space, unless the device serves
    /// parts from elsewhere (a passed-through function's own registers).
    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.config().read(offset, data);
    }
    /// Applies a guest write at `offset` (through the masks); false if malformed.
    fn config_write(&mut self, offset: usize, data: &[u8]) -> bool {
        self.config_mut().write(offset, data)
    }
    /// Called after the guest wrote config space (through the masks), e.g. for MSI-X control.
    fn config_written(&mut self, _offset: usize, _len: usize) {}
    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]);
    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]);
    /// The guest moved BAR `bar` (or turned decoding on or off): `None` is unmapped.
    fn bar_moved(&mut self, _bar: usize, _old: Option<u64>, _new: Option<u64>) {}
}

/// Hands out naturally aligned ranges of a window, as firmware assigns BARs; 64-bit BARs that
/// do not fit go to a second window above 4 GiB where there is one.
#[derive(Debug, Clone)]
pub struct MmioAllocator {
    next: u64,
    end: u64,
    high: Option<Box<MmioAllocator>>,
}

impl MmioAllocator {
    pub fn new(start: u64, size: u64) -> Self {
        MmioAllocator {
            next: start,
            end: start.saturating_add(size),
            high: None,
        }
    }

    /// This window, with `[start, start + size)` for 64-bit BARs it cannot hold.
    pub fn with_high_window(mut self, start: u64, size: u64) -> Self {
        self.high = Some(Box::new(MmioAllocator::new(start, size)));
        self
    }

    /// Where BAR `bar` goes: the first window if it fits (as SeaBIOS places them), else, for a
    /// 64-bit BAR, the high window.
    pub fn allocate_bar(&mut self, bar: &BarSpec) -> Result<u64, PciError> {
        match (self.allocate(bar.size), self.high.as_mut()) {
            (Ok(base), _) => Ok(base),
            (Err(_), Some(high)) if bar.is_64bit => high.allocate(bar.size),
            (Err(err), _) => Err(err),
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

    #[test]
    fn big_64bit_bars_go_to_the_high_window() {
        let bar = |size, is_64bit| BarSpec {
            index: 0,
            size,
            is_64bit,
            prefetchable: true,
        };
        let mut alloc = MmioAllocator::new(MMIO32_START, MMIO32_SIZE)
            .with_high_window(MMIO64_START, MMIO64_SIZE);
        assert_eq!(
            alloc.allocate_bar(&bar(16 << 20, true)).unwrap(),
            MMIO32_START
        );
        // A 256 GiB BAR (an H200's BAR1 is 256 GiB) cannot sit below 4 GiB.
        assert_eq!(
            alloc.allocate_bar(&bar(256 << 30, true)).unwrap(),
            MMIO64_START
        );
        assert_eq!(
            alloc.allocate_bar(&bar(128 << 30, true)).unwrap(),
            MMIO64_START + (256 << 30)
        );
        assert!(
            alloc.allocate_bar(&bar(1 << 30, false)).is_err(),
            "32-bit BARs stay low"
        );
        assert!(
            alloc.allocate_bar(&bar(256 << 30, true)).is_err(),
            "the high window is full"
        );
        // Small BARs still fill the low window.
        assert_eq!(
            alloc.allocate_bar(&bar(4096, false)).unwrap(),
            MMIO32_START + (16 << 20)
        );
    }
}
