//! Port-I/O and MMIO buses: non-overlapping address ranges, each served by one device.
//!
//! A vCPU exit on an address finds the range holding it and calls the device with the range's
//! base and the offset inside it. The bus is shared by every vCPU thread, so lookups take a
//! read lock and devices sit behind their own mutex.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, RwLock};

/// A device on a bus. `base` is the start of the range the device was inserted at (a device may
/// sit at several ranges, e.g. one per BAR) and `offset` the access's offset inside it.
pub trait BusDevice: Send {
    /// Fills `data` (1, 2, 4 or 8 bytes, or more for string I/O) from the device.
    fn read(&mut self, base: u64, offset: u64, data: &mut [u8]);
    /// Hands `data` to the device.
    fn write(&mut self, base: u64, offset: u64, data: &[u8]);
}

/// Why a range could not be inserted or removed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("bus range of zero length at {0:#x}")]
    ZeroLength(u64),
    #[error("bus range {base:#x}+{len:#x} wraps around the address space")]
    Overflow { base: u64, len: u64 },
    #[error("bus range {base:#x}+{len:#x} overlaps an existing range")]
    Overlap { base: u64, len: u64 },
    #[error("no bus range starts at {0:#x}")]
    NotFound(u64),
}

/// One inserted range.
#[derive(Clone)]
struct BusEntry {
    len: u64,
    device: Arc<Mutex<dyn BusDevice>>,
}

/// An address space of non-overlapping ranges mapped to devices.
#[derive(Default)]
pub struct Bus {
    ranges: RwLock<BTreeMap<u64, BusEntry>>,
}

impl std::fmt::Debug for Bus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        f.debug_list()
            .entries(ranges.iter().map(|(b, e)| (*b, e.len)))
            .finish()
    }
}

impl Bus {
    pub fn new() -> Bus {
        Bus::default()
    }

    /// Maps `[base, base + len)` to `dev`. Fails if the range is empty, wraps, or overlaps.
    pub fn insert(
        &self,
        dev: Arc<Mutex<dyn BusDevice>>,
        base: u64,
        len: u64,
    ) -> Result<(), BusError> {
        if len == 0 {
            return Err(BusError::ZeroLength(base));
        }
        let end = base
            .checked_add(len - 1)
            .ok_or(BusError::Overflow { base, len })?;
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        // The nearest range starting at or below `end` is the only one that can overlap.
        if let Some((&b, e)) = ranges.range(..=end).next_back() {
            if b + (e.len - 1) >= base {
                return Err(BusError::Overlap { base, len });
            }
        }
        ranges.insert(base, BusEntry { len, device: dev });
        Ok(())
    }

    /// Removes the range starting at `base` (e.g. when a guest moves a BAR).
    pub fn remove(&self, base: u64) -> Result<(), BusError> {
        let mut ranges = self.ranges.write().unwrap_or_else(|e| e.into_inner());
        ranges
            .remove(&base)
            .map(|_| ())
            .ok_or(BusError::NotFound(base))
    }

    /// The device holding `addr`, with its range's base.
    fn resolve(&self, addr: u64) -> Option<(u64, Arc<Mutex<dyn BusDevice>>)> {
        let ranges = self.ranges.read().unwrap_or_else(|e| e.into_inner());
        let (&base, entry) = ranges.range(..=addr).next_back()?;
        (addr - base < entry.len).then(|| (base, entry.device.clone()))
    }

    /// Reads from the device at `addr`. Returns false (leaving `data` untouched) if none is there.
    pub fn read(&self, addr: u64, data: &mut [u8]) -> bool {
        match self.resolve(addr) {
            Some((base, dev)) => {
                let mut dev = dev.lock().unwrap_or_else(|e| e.into_inner());
                dev.read(base, addr - base, data);
                true
            }
            None => false,
        }
    }

    /// Writes to the device at `addr`. Returns false if none is there.
    pub fn write(&self, addr: u64, data: &[u8]) -> bool {
        match self.resolve(addr) {
            Some((base, dev)) => {
                let mut dev = dev.lock().unwrap_or_else(|e| e.into_inner());
                dev.write(base, addr - base, data);
                true
            }
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records the last access and answers reads with the offset.
    #[derive(Default)]
    struct Probe {
        last_write: Option<(u64, u64, Vec<u8>)>,
    }

    impl BusDevice for Probe {
        fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
            data.fill(offset as u8);
        }
        fn write(&mut self, base: u64, offset: u64, data: &[u8]) {
            self.last_write = Some((base, offset, data.to_vec()));
        }
    }

    #[test]
    fn routes_accesses_to_the_range_holding_them() {
        let bus = Bus::new();
        let a = Arc::new(Mutex::new(Probe::default()));
        let b = Arc::new(Mutex::new(Probe::default()));
        bus.insert(a.clone(), 0x100, 0x10).unwrap();
        bus.insert(b.clone(), 0x110, 0x8).unwrap();

        let mut data = [0u8; 2];
        assert!(bus.read(0x10f, &mut data));
        assert_eq!(data, [0xf, 0xf]);
        assert!(bus.write(0x112, &[7, 8]));
        assert_eq!(b.lock().unwrap().last_write, Some((0x110, 2, vec![7, 8])));
        assert!(a.lock().unwrap().last_write.is_none());

        let mut untouched = [0xaa];
        assert!(!bus.read(0x118, &mut untouched));
        assert!(!bus.read(0xff, &mut untouched));
        assert!(!bus.write(0, &[1]));
        assert_eq!(untouched, [0xaa]);
    }

    #[test]
    fn rejects_overlapping_empty_and_wrapping_ranges() {
        let bus = Bus::new();
        let dev = Arc::new(Mutex::new(Probe::default()));
        bus.insert(dev.clone(), 0x1000, 0x100).unwrap();
        for (base, len) in [(0x1000, 1), (0xff0, 0x11), (0x10ff, 4), (0x800, 0x1000)] {
            assert_eq!(
                bus.insert(dev.clone(), base, len),
                Err(BusError::Overlap { base, len })
            );
        }
        assert_eq!(bus.insert(dev.clone(), 5, 0), Err(BusError::ZeroLength(5)));
        assert!(matches!(
            bus.insert(dev.clone(), u64::MAX, 2),
            Err(BusError::Overflow { .. })
        ));
        // Adjacent ranges on both sides are fine, and so is the very top of the space.
        bus.insert(dev.clone(), 0xf00, 0x100).unwrap();
        bus.insert(dev.clone(), 0x1100, 0x100).unwrap();
        bus.insert(dev.clone(), u64::MAX, 1).unwrap();
        assert!(bus.write(u64::MAX, &[1]));
    }

    #[test]
    fn removed_ranges_stop_answering() {
        let bus = Bus::new();
        let dev = Arc::new(Mutex::new(Probe::default()));
        bus.insert(dev.clone(), 0x20, 4).unwrap();
        bus.remove(0x20).unwrap();
        assert!(!bus.write(0x21, &[0]));
        assert_eq!(bus.remove(0x20), Err(BusError::NotFound(0x20)));
        bus.insert(dev, 0x22, 4).unwrap();
    }
}
