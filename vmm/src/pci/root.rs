//! Bus 0 of the root complex, and the two ways the guest reaches its configuration space.

use std::sync::{Arc, Mutex, Weak};

use tracing::{debug, warn};

use super::config::{CONFIG_SPACE_SIZE, NUM_REGIONS};
use super::{MmioAllocator, PciConfig, PciDevice, PciError, PciIds};
use crate::bus::{Bus, BusDevice};

const SLOTS: usize = 32;

type SharedDevice = Arc<Mutex<dyn PciDevice>>;

struct Slot {
    device: SharedDevice,
    /// Where each BAR is on the MMIO bus now: (base, size).
    mapped: [Option<(u64, u64)>; NUM_REGIONS],
}

/// Bus 0: a host bridge at 00.0 and up to 31 single-function devices.
pub struct PciRoot {
    slots: Vec<Option<Slot>>,
    mmio_bus: Arc<Bus>,
}

/// The host bridge at 00.0: identity only.
struct HostBridge {
    config: PciConfig,
}

impl PciDevice for HostBridge {
    fn config(&self) -> &PciConfig {
        &self.config
    }
    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.config
    }
    fn bar_read(&mut self, _bar: usize, _offset: u64, data: &mut [u8]) {
        data.fill(0xff);
    }
    fn bar_write(&mut self, _bar: usize, _offset: u64, _data: &[u8]) {}
}

fn lock(device: &SharedDevice) -> std::sync::MutexGuard<'_, dyn PciDevice + 'static> {
    device.lock().unwrap_or_else(|e| e.into_inner())
}

impl PciRoot {
    /// A bus whose BARs appear on `mmio_bus`.
    pub fn new(mmio_bus: Arc<Bus>) -> Self {
        let mut slots: Vec<Option<Slot>> = (0..SLOTS).map(|_| None).collect();
        let bridge = HostBridge {
            config: PciConfig::new(PciIds {
                vendor: 0x8086,
                device: 0x0d57,
                revision: 0,
                class: 0x06,
                subclass: 0x00,
                prog_if: 0,
                subsystem_vendor: 0,
                subsystem: 0,
                header_type: 0,
            }),
        };
        slots[0] = Some(Slot {
            device: Arc::new(Mutex::new(bridge)),
            mapped: [None; NUM_REGIONS],
        });
        PciRoot { slots, mmio_bus }
    }

    /// Plugs `device` into the first free slot, assigning its BARs from `allocator` the way
    /// firmware would (memory decoding stays off until the guest turns it on). Returns the slot.
    pub fn add_device(
        &mut self,
        device: SharedDevice,
        allocator: &mut MmioAllocator,
    ) -> Result<u8, PciError> {
        let slot = self
            .slots
            .iter()
            .position(Option::is_none)
            .ok_or(PciError::NoSlot)?;
        {
            let mut dev = lock(&device);
            let bars: Vec<_> = dev.config().bars().collect();
            for bar in bars {
                let base = allocator.allocate_bar(&bar)?;
                dev.config_mut().set_bar_address(bar.index, base)?;
                debug!(
                    slot,
                    bar = bar.index,
                    base,
                    size = bar.size,
                    "pci: BAR assigned"
                );
            }
        }
        self.slots[slot] = Some(Slot {
            device,
            mapped: [None; NUM_REGIONS],
        });
        // A device may come with decoding on; map what it says.
        self.sync_bars(slot);
        Ok(slot as u8)
    }

    fn function(&self, bus: u8, dev: u8, func: u8) -> Option<&Slot> {
        if bus != 0 || func != 0 {
            return None;
        }
        self.slots.get(usize::from(dev))?.as_ref()
    }

    /// Reads config space of 00:dev.func at `offset`; absent functions read as all ones.
    pub fn config_read(&self, bus: u8, dev: u8, func: u8, offset: usize, data: &mut [u8]) {
        match self.function(bus, dev, func) {
            Some(slot) if offset < CONFIG_SPACE_SIZE => {
                lock(&slot.device).config_read(offset, data)
            }
            Some(_) => data.fill(0),
            None => data.fill(0xff),
        }
    }

    /// Writes config space of 00:dev.func at `offset`, then re-maps BARs the write moved.
    pub fn config_write(&mut self, bus: u8, dev: u8, func: u8, offset: usize, data: &[u8]) {
        let Some(slot) = self.function(bus, dev, func) else {
            return;
        };
        if offset >= CONFIG_SPACE_SIZE {
            return;
        }
        {
            let mut device = lock(&slot.device);
            if !device.config_write(offset, data) {
                warn!(
                    dev,
                    offset,
                    len = data.len(),
                    "pci: malformed config write ignored"
                );
                return;
            }
            device.config_written(offset, data.len());
        }
        self.sync_bars(usize::from(dev));
    }

    /// Brings the MMIO bus in line with the BARs of the device in `slot`.
    fn sync_bars(&mut self, slot_index: usize) {
        let Some(slot) = self.slots[slot_index].as_mut() else {
            return;
        };
        let wanted: Vec<_> = {
            let dev = lock(&slot.device);
            (0..NUM_REGIONS)
                .map(|i| dev.config().bar_mapping(i))
                .collect()
        };
        for (bar, want) in wanted.into_iter().enumerate() {
            let old = slot.mapped[bar];
            if old == want {
                continue;
            }
            if let Some((base, _)) = old {
                if let Err(err) = self.mmio_bus.remove(base) {
                    warn!(%err, "pci: unmapping a BAR");
                }
            }
            let mut now = None;
            if let Some((base, size)) = want {
                let region = Arc::new(Mutex::new(BarRegion {
                    device: slot.device.clone(),
                    bar,
                }));
                match self.mmio_bus.insert(region, base, size) {
                    Ok(()) => now = Some((base, size)),
                    Err(err) => {
                        warn!(%err, slot = slot_index, bar, "pci: guest put a BAR where it cannot go")
                    }
                }
            }
            slot.mapped[bar] = now;
            debug!(
                slot = slot_index,
                bar,
                ?old,
                ?now,
                "pci: BAR mapping changed"
            );
            lock(&slot.device).bar_moved(bar, old.map(|m| m.0), now.map(|m| m.0));
        }
    }
}

/// One BAR of a device, as a range on the MMIO bus.
struct BarRegion {
    device: SharedDevice,
    bar: usize,
}

impl BusDevice for BarRegion {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        lock(&self.device).bar_read(self.bar, offset, data);
    }
    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        lock(&self.device).bar_write(self.bar, offset, data);
    }
}

/// Configuration mechanism #1: address register at 0xCF8, data window at 0xCFC..0xCFF.
/// Ports 0xCF8/0xCFC. The root is held weakly: the root holds the MMIO bus these sit on, and
/// the VM's devices must go when the VM does (a passed-through function is released then).
pub struct PciConfigIo {
    root: Weak<Mutex<PciRoot>>,
    address: u32,
}

impl PciConfigIo {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciConfigIo {
            root: Arc::downgrade(&root),
            address: 0,
        }
    }

    /// (bus, device, function, register offset) the address register selects, if enabled.
    fn target(&self, byte: u64) -> Option<(u8, u8, u8, usize)> {
        if self.address & 0x8000_0000 == 0 {
            return None;
        }
        let a = self.address;
        let offset = (a & 0xfc) as usize + byte as usize;
        Some((
            (a >> 16) as u8,
            ((a >> 11) & 0x1f) as u8,
            ((a >> 8) & 7) as u8,
            offset,
        ))
    }
}

impl BusDevice for PciConfigIo {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        match offset {
            0..=3 => {
                let bytes = self.address.to_le_bytes();
                for (i, out) in data.iter_mut().enumerate() {
                    *out = bytes.get(offset as usize + i).copied().unwrap_or(0xff);
                }
            }
            _ => match self.target(offset - 4) {
                Some((bus, dev, func, reg)) if (reg % 4) + data.len() <= 4 => {
                    match self.root.upgrade() {
                        Some(root) => root
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .config_read(bus, dev, func, reg, data),
                        None => data.fill(0xff),
                    }
                }
                _ => data.fill(0xff),
            },
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        match (offset, data.len()) {
            (0, 4) => self.address = u32::from_le_bytes([data[0], data[1], data[2], data[3]]),
            (0..=3, _) => {} // Only dword writes select an address; others go to the chipset.
            _ => {
                if let (Some((bus, dev, func, reg)), Some(root)) =
                    (self.target(offset - 4), self.root.upgrade())
                {
                    let mut root = root.lock().unwrap_or_else(|e| e.into_inner());
                    root.config_write(bus, dev, func, reg, data);
                }
            }
        }
    }
}

/// Enhanced configuration access (ECAM/MMCONFIG): 4 KiB per function, bus 0 only.
pub struct PciConfigMmio {
    root: Weak<Mutex<PciRoot>>,
}

impl PciConfigMmio {
    pub fn new(root: Arc<Mutex<PciRoot>>) -> Self {
        PciConfigMmio {
            root: Arc::downgrade(&root),
        }
    }
}

fn ecam_target(offset: u64, len: usize) -> Option<(u8, u8, u8, usize)> {
    let reg = (offset & 0xfff) as usize;
    if !matches!(len, 1 | 2 | 4) || !reg.is_multiple_of(len) {
        return None;
    }
    Some((
        (offset >> 20) as u8,
        ((offset >> 15) & 0x1f) as u8,
        ((offset >> 12) & 7) as u8,
        reg,
    ))
}

impl BusDevice for PciConfigMmio {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        match (ecam_target(offset, data.len()), self.root.upgrade()) {
            (Some((bus, dev, func, reg)), Some(root)) => {
                let root = root.lock().unwrap_or_else(|e| e.into_inner());
                root.config_read(bus, dev, func, reg, data);
            }
            _ => data.fill(0xff),
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        if let Some((bus, dev, func, reg)) = ecam_target(offset, data.len()) {
            if let Some(root) = self.root.upgrade() {
                let mut root = root.lock().unwrap_or_else(|e| e.into_inner());
                root.config_write(bus, dev, func, reg, data);
            }
        } else {
            warn!(
                offset,
                len = data.len(),
                "pci: malformed ECAM write ignored"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pci::BarSpec;

    /// A device with one 4 KiB BAR that remembers the last write and where its BAR went.
    struct Scratch {
        config: PciConfig,
        regs: [u8; 16],
        moves: Vec<(usize, Option<u64>, Option<u64>)>,
    }

    impl PciDevice for Scratch {
        fn config(&self) -> &PciConfig {
            &self.config
        }
        fn config_mut(&mut self) -> &mut PciConfig {
            &mut self.config
        }
        fn bar_read(&mut self, _bar: usize, offset: u64, data: &mut [u8]) {
            let at = offset as usize;
            data.copy_from_slice(&self.regs[at..at + data.len()]);
        }
        fn bar_write(&mut self, _bar: usize, offset: u64, data: &[u8]) {
            let at = offset as usize;
            self.regs[at..at + data.len()].copy_from_slice(data);
        }
        fn bar_moved(&mut self, bar: usize, old: Option<u64>, new: Option<u64>) {
            self.moves.push((bar, old, new));
        }
    }

    fn setup() -> (Arc<Bus>, Arc<Mutex<PciRoot>>, Arc<Mutex<Scratch>>) {
        let mut config = PciConfig::new(PciIds {
            vendor: 0x1234,
            device: 0x5678,
            revision: 0,
            class: 0xff,
            subclass: 0,
            prog_if: 0,
            subsystem_vendor: 0,
            subsystem: 0,
            header_type: 0,
        });
        config
            .add_bar(BarSpec {
                index: 0,
                size: 0x1000,
                is_64bit: true,
                prefetchable: false,
            })
            .unwrap();
        let dev = Arc::new(Mutex::new(Scratch {
            config,
            regs: [0; 16],
            moves: vec![],
        }));
        let bus = Arc::new(Bus::new());
        let mut root = PciRoot::new(bus.clone());
        let mut alloc = MmioAllocator::new(0xc000_0000, 0x10_0000);
        assert_eq!(root.add_device(dev.clone(), &mut alloc).unwrap(), 1);
        (bus, Arc::new(Mutex::new(root)), dev)
    }

    fn cf8(io: &mut PciConfigIo, dev: u32, reg: u32) {
        io.write(0xcf8, 0, &(0x8000_0000 | dev << 11 | reg).to_le_bytes());
    }

    fn read32(io: &mut PciConfigIo, dev: u32, reg: u32) -> u32 {
        cf8(io, dev, reg);
        let mut data = [0u8; 4];
        io.read(0xcf8, 4, &mut data);
        u32::from_le_bytes(data)
    }

    fn write32(io: &mut PciConfigIo, dev: u32, reg: u32, value: u32) {
        cf8(io, dev, reg);
        io.write(0xcf8, 4, &value.to_le_bytes());
    }

    #[test]
    fn port_io_enumerates_bus_0() {
        let (_bus, root, _dev) = setup();
        let mut io = PciConfigIo::new(root.clone());
        assert_eq!(read32(&mut io, 0, 0), 0x0d57_8086, "host bridge");
        assert_eq!(read32(&mut io, 1, 0), 0x5678_1234);
        assert_eq!(read32(&mut io, 2, 0), 0xffff_ffff, "empty slot");
        assert_eq!(
            read32(&mut io, 1, 0x10),
            0xc000_0004,
            "BAR0 assigned, 64-bit"
        );
        // Byte reads through 0xCFD..0xCFF see the matching bytes of the dword.
        cf8(&mut io, 1, 0);
        let mut byte = [0u8];
        io.read(0xcf8, 6, &mut byte);
        assert_eq!(byte[0], 0x78);
        // With the enable bit clear, data reads float high.
        io.write(0xcf8, 0, &0x0000_0800u32.to_le_bytes());
        let mut data = [0u8; 4];
        io.read(0xcf8, 4, &mut data);
        assert_eq!(data, [0xff; 4]);
    }

    #[test]
    fn bars_map_when_decoding_is_on_and_follow_the_guest() {
        let (bus, root, dev) = setup();
        let mut io = PciConfigIo::new(root.clone());
        let mut data = [0u8; 4];
        assert!(
            !bus.read(0xc000_0000, &mut data),
            "decoding off: not mapped"
        );
        write32(&mut io, 1, 4, 0x6);
        assert!(bus.write(0xc000_0008, &[1, 2, 3, 4]));
        assert_eq!(dev.lock().unwrap().regs[8..12], [1, 2, 3, 4]);
        // Linux sizes BARs with decoding off, then moves them.
        write32(&mut io, 1, 4, 0);
        write32(&mut io, 1, 0x10, 0xffff_ffff);
        assert_eq!(read32(&mut io, 1, 0x10), 0xffff_f004);
        write32(&mut io, 1, 0x10, 0xd000_0000);
        write32(&mut io, 1, 0x14, 0x1);
        write32(&mut io, 1, 4, 0x2);
        assert!(!bus.read(0xc000_0008, &mut data));
        assert!(bus.read(0x1_d000_0008, &mut data));
        assert_eq!(data, [1, 2, 3, 4]);
        assert_eq!(
            dev.lock().unwrap().moves,
            vec![
                (0, None, Some(0xc000_0000)),
                (0, Some(0xc000_0000), None),
                (0, None, Some(0x1_d000_0000))
            ]
        );
    }

    #[test]
    fn ecam_reaches_the_same_space() {
        let (_bus, root, dev) = setup();
        let mut ecam = PciConfigMmio::new(root.clone());
        let mut data = [0u8; 4];
        ecam.read(0, 1 << 15, &mut data);
        assert_eq!(u32::from_le_bytes(data), 0x5678_1234);
        ecam.write(0, (1 << 15) | 4, &[0x02, 0x00]);
        assert!(dev.lock().unwrap().config.memory_enabled());
        ecam.read(0, (1 << 15) | 0x100, &mut data);
        assert_eq!(data, [0; 4], "extended space reads as zero");
        ecam.read(0, (1 << 20) | (1 << 15), &mut data);
        assert_eq!(data, [0xff; 4], "bus 1 is empty");
        ecam.read(0, (1 << 15) | 1, &mut data);
        assert_eq!(data, [0xff; 4], "misaligned dword");
    }

    #[test]
    fn a_bar_moved_onto_another_is_left_unmapped() {
        let (bus, root, dev) = setup();
        let blocker = Arc::new(Mutex::new(BarRegion {
            device: dev.clone(),
            bar: 5,
        }));
        bus.insert(blocker, 0xd000_0000, 0x1000).unwrap();
        let mut io = PciConfigIo::new(root.clone());
        write32(&mut io, 1, 0x10, 0xd000_0000);
        write32(&mut io, 1, 0x14, 0);
        write32(&mut io, 1, 4, 0x2);
        assert_eq!(dev.lock().unwrap().moves.last(), Some(&(0, None, None)));
    }
}
