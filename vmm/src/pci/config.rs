//! A type-0 PCI configuration space: identity, command register, BARs with sizing, and a
//! capability list. Every guest write goes through a per-bit write mask, so the guest can change
//! only what real hardware would let it change.

use super::PciError;

/// Conventional configuration space; ECAM's extended space (256..4096) reads as zero here.
pub const CONFIG_SPACE_SIZE: usize = 256;
const NUM_REGS: usize = CONFIG_SPACE_SIZE / 4;

pub const NUM_BARS: usize = 6;
/// The expansion ROM's index where BARs and the ROM are handled alike (mapping, moves).
pub const ROM_BAR: usize = 6;
/// BARs plus the ROM.
pub const NUM_REGIONS: usize = NUM_BARS + 1;
const ROM_REG: usize = 12;
const ROM_ENABLE: u32 = 1;
const ROM_ADDRESS_MASK: u32 = !0x7ff;
const BAR0_REG: usize = 4;
const COMMAND_REG: usize = 1;
const CAP_PTR_REG: usize = 13;
const INTERRUPT_REG: usize = 15;
const FIRST_CAP_OFFSET: usize = 0x40;

/// Command register bits the guest may change: I/O space, memory space, bus master, INTx disable.
const COMMAND_WRITABLE: u32 = 0x0407;
pub const COMMAND_MEMORY_SPACE: u16 = 1 << 1;
pub const COMMAND_BUS_MASTER: u16 = 1 << 2;
/// Status register: "capabilities list present".
const STATUS_CAP_LIST: u32 = 1 << 20;

const BAR_MEM_64: u32 = 0b100;
const BAR_PREFETCHABLE: u32 = 0b1000;

/// Identity of a function, as its header shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PciIds {
    pub vendor: u16,
    pub device: u16,
    pub revision: u8,
    pub class: u8,
    pub subclass: u8,
    pub prog_if: u8,
    pub subsystem_vendor: u16,
    pub subsystem: u16,
    /// Header type byte (0 for an endpoint); bit 7 marks a multi-function device.
    pub header_type: u8,
}

/// A memory BAR a device asks for. `size` is a power of two, at least 16 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BarSpec {
    pub index: usize,
    pub size: u64,
    pub is_64bit: bool,
    pub prefetchable: bool,
}

/// A configuration space with its write masks.
#[derive(Debug, Clone)]
pub struct PciConfig {
    regs: [u32; NUM_REGS],
    writable: [u32; NUM_REGS],
    bars: [Option<BarSpec>; NUM_BARS],
    rom_size: Option<u64>,
    last_cap: Option<usize>,
    next_cap: usize,
}

impl PciConfig {
    pub fn new(ids: PciIds) -> Self {
        let mut regs = [0u32; NUM_REGS];
        let mut writable = [0u32; NUM_REGS];
        regs[0] = u32::from(ids.device) << 16 | u32::from(ids.vendor);
        regs[2] = u32::from(ids.class) << 24
            | u32::from(ids.subclass) << 16
            | u32::from(ids.prog_if) << 8
            | u32::from(ids.revision);
        regs[3] = u32::from(ids.header_type) << 16;
        regs[11] = u32::from(ids.subsystem) << 16 | u32::from(ids.subsystem_vendor);
        writable[COMMAND_REG] = COMMAND_WRITABLE;
        // Cache line size and latency timer are plain scratch registers to software.
        writable[3] = 0x0000_ffff;
        // Interrupt line is scratch for the OS; the pin stays 0: this model has no INTx.
        writable[INTERRUPT_REG] = 0x0000_00ff;
        PciConfig {
            regs,
            writable,
            bars: [None; NUM_BARS],
            rom_size: None,
            last_cap: None,
            next_cap: FIRST_CAP_OFFSET,
        }
    }

    /// Declares a memory BAR. A 64-bit BAR also takes the next index for its high half.
    pub fn add_bar(&mut self, spec: BarSpec) -> Result<(), PciError> {
        let last = spec.index + usize::from(spec.is_64bit);
        if last >= NUM_BARS || !spec.size.is_power_of_two() || spec.size < 16 {
            return Err(PciError::BadBar(spec.index));
        }
        if !spec.is_64bit && spec.size > 1 << 31 {
            return Err(PciError::BadBar(spec.index));
        }
        if (spec.index..=last).any(|i| self.bars[i].is_some() || self.is_upper_half(i)) {
            return Err(PciError::BadBar(spec.index));
        }
        let mask = !(spec.size - 1);
        let mut flags = 0;
        if spec.is_64bit {
            flags |= BAR_MEM_64;
        }
        if spec.prefetchable {
            flags |= BAR_PREFETCHABLE;
        }
        self.regs[BAR0_REG + spec.index] = flags;
        self.writable[BAR0_REG + spec.index] = mask as u32 & !0xf;
        if spec.is_64bit {
            self.writable[BAR0_REG + spec.index + 1] = (mask >> 32) as u32;
        }
        self.bars[spec.index] = Some(spec);
        Ok(())
    }

    fn is_upper_half(&self, index: usize) -> bool {
        index > 0 && matches!(self.bars[index - 1], Some(b) if b.is_64bit)
    }

    /// Takes the parts of a real function's header (`raw`, its first 64 bytes or more) that an
    /// emulated header would otherwise make up: cache line size and latency timer, the
    /// capability pointer, the interrupt pin, min-grant and max-latency.
    pub fn mirror_header(&mut self, raw: &[u8]) {
        let reg = |i: usize| {
            raw.get(i * 4..i * 4 + 4)
                .map_or(0, |b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        };
        self.regs[3] = (self.regs[3] & 0x00ff_0000) | (reg(3) & 0x0000_ffff);
        self.regs[CAP_PTR_REG] = reg(CAP_PTR_REG) & 0xfc;
        self.regs[INTERRUPT_REG] = reg(INTERRUPT_REG);
    }

    /// Declares an expansion ROM of `size` bytes (a power of two, at least 2 KiB): the guest
    /// sizes it and places it through register 0x30, and it decodes only while both its enable
    /// bit and memory decoding are on. It is BAR [`ROM_BAR`] to everything below.
    pub fn add_rom(&mut self, size: u64) -> Result<(), PciError> {
        if self.rom_size.is_some() || !size.is_power_of_two() || !(2048..=1 << 31).contains(&size) {
            return Err(PciError::BadBar(ROM_BAR));
        }
        self.rom_size = Some(size);
        self.regs[ROM_REG] = 0;
        self.writable[ROM_REG] = (!(size - 1) as u32 & ROM_ADDRESS_MASK) | ROM_ENABLE;
        Ok(())
    }

    /// The BAR declared at `index` (the ROM at [`ROM_BAR`]), if any.
    pub fn bar(&self, index: usize) -> Option<BarSpec> {
        if index == ROM_BAR {
            return self.rom_size.map(|size| BarSpec {
                index: ROM_BAR,
                size,
                is_64bit: false,
                prefetchable: false,
            });
        }
        self.bars.get(index).copied().flatten()
    }

    /// Every declared BAR, then the ROM.
    pub fn bars(&self) -> impl Iterator<Item = BarSpec> + '_ {
        self.bars.iter().flatten().copied().chain(self.bar(ROM_BAR))
    }

    /// The address BAR `index` is programmed with (as the VMM or the guest left it).
    pub fn bar_address(&self, index: usize) -> Option<u64> {
        let spec = self.bar(index)?;
        if index == ROM_BAR {
            return Some(u64::from(self.regs[ROM_REG] & ROM_ADDRESS_MASK));
        }
        let low = u64::from(self.regs[BAR0_REG + index] & !0xf);
        let high = if spec.is_64bit {
            u64::from(self.regs[BAR0_REG + index + 1])
        } else {
            0
        };
        Some(high << 32 | low)
    }

    /// Programs BAR `index` as firmware would. `addr` must be aligned to the BAR's size.
    pub fn set_bar_address(&mut self, index: usize, addr: u64) -> Result<(), PciError> {
        let spec = self.bar(index).ok_or(PciError::BadBar(index))?;
        if addr & (spec.size - 1) != 0 || (!spec.is_64bit && addr > u64::from(u32::MAX)) {
            return Err(PciError::BadBar(index));
        }
        if index == ROM_BAR {
            self.regs[ROM_REG] = (self.regs[ROM_REG] & ROM_ENABLE) | addr as u32;
            return Ok(());
        }
        let reg = BAR0_REG + index;
        self.regs[reg] = (self.regs[reg] & 0xf) | addr as u32;
        if spec.is_64bit {
            self.regs[reg + 1] = (addr >> 32) as u32;
        }
        Ok(())
    }

    /// Where BAR `index` should be decoded now: its address while memory decoding is on (and,
    /// for the ROM, while its enable bit is set).
    pub fn bar_mapping(&self, index: usize) -> Option<(u64, u64)> {
        if !self.memory_enabled() {
            return None;
        }
        if index == ROM_BAR && self.regs[ROM_REG] & ROM_ENABLE == 0 {
            return None;
        }
        let spec = self.bar(index)?;
        Some((self.bar_address(index)?, spec.size))
    }

    pub fn command(&self) -> u16 {
        self.regs[COMMAND_REG] as u16
    }

    pub fn memory_enabled(&self) -> bool {
        self.command() & COMMAND_MEMORY_SPACE != 0
    }

    /// Appends a capability. `body` starts at the capability ID; its second byte (the next
    /// pointer) is filled in here. `write_mask` (same length, or empty) marks guest-writable bits.
    pub fn add_capability(&mut self, body: &[u8], write_mask: &[u8]) -> Result<usize, PciError> {
        let len = body.len().div_ceil(4) * 4;
        if body.len() < 2 || (!write_mask.is_empty() && write_mask.len() != body.len()) {
            return Err(PciError::BadCapability);
        }
        let offset = self.next_cap;
        if offset + len > CONFIG_SPACE_SIZE {
            return Err(PciError::NoCapabilitySpace);
        }
        for (i, byte) in body.iter().enumerate() {
            let value = if i == 1 { 0 } else { *byte };
            self.set_byte(offset + i, value);
            let mask = write_mask.get(i).copied().unwrap_or(0);
            set_byte_in(
                &mut self.writable,
                offset + i,
                if i == 1 { 0 } else { mask },
            );
        }
        match self.last_cap {
            Some(prev) => self.set_byte(prev + 1, offset as u8),
            None => {
                self.regs[CAP_PTR_REG] = offset as u32;
                self.regs[COMMAND_REG] |= STATUS_CAP_LIST;
            }
        }
        self.last_cap = Some(offset);
        self.next_cap = offset + len;
        Ok(offset)
    }

    /// Reads the dword register `reg` (0..64); past the conventional space, zero.
    pub fn read_reg(&self, reg: usize) -> u32 {
        self.regs.get(reg).copied().unwrap_or(0)
    }

    /// Reads `data.len()` bytes (1, 2 or 4, not crossing a dword) at `offset`.
    pub fn read(&self, offset: usize, data: &mut [u8]) {
        let value = self.read_reg(offset / 4).to_le_bytes();
        let start = offset % 4;
        for (i, out) in data.iter_mut().enumerate() {
            *out = value.get(start + i).copied().unwrap_or(0);
        }
    }

    /// Applies a guest write through the write masks. Returns false if the access was malformed.
    pub fn write(&mut self, offset: usize, data: &[u8]) -> bool {
        let start = offset % 4;
        if !matches!(data.len(), 1 | 2 | 4) || start + data.len() > 4 || offset >= CONFIG_SPACE_SIZE
        {
            return false;
        }
        let reg = offset / 4;
        let mut value = self.regs[reg].to_le_bytes();
        let mask = self.writable[reg].to_le_bytes();
        for (i, byte) in data.iter().enumerate() {
            let at = start + i;
            value[at] = (value[at] & !mask[at]) | (byte & mask[at]);
        }
        self.regs[reg] = u32::from_le_bytes(value);
        true
    }

    /// Reads a little-endian u16 of the space (used for capability fields the device tracks).
    pub fn read_u16(&self, offset: usize) -> u16 {
        let mut data = [0u8; 2];
        self.read(offset, &mut data);
        u16::from_le_bytes(data)
    }

    fn set_byte(&mut self, offset: usize, value: u8) {
        set_byte_in(&mut self.regs, offset, value);
    }
}

fn set_byte_in(regs: &mut [u32; NUM_REGS], offset: usize, value: u8) {
    let mut bytes = regs[offset / 4].to_le_bytes();
    bytes[offset % 4] = value;
    regs[offset / 4] = u32::from_le_bytes(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids() -> PciIds {
        PciIds {
            vendor: 0x1af4,
            device: 0x1050,
            revision: 1,
            class: 0x03,
            subclass: 0x80,
            prog_if: 0,
            subsystem_vendor: 0x1af4,
            subsystem: 0x1100,
            header_type: 0,
        }
    }

    fn write32(cfg: &mut PciConfig, offset: usize, value: u32) {
        assert!(cfg.write(offset, &value.to_le_bytes()));
    }

    #[test]
    fn header_shows_identity_and_rejects_writes_to_it() {
        let mut cfg = PciConfig::new(ids());
        assert_eq!(cfg.read_reg(0), 0x1050_1af4);
        assert_eq!(cfg.read_reg(2), 0x0380_0001);
        write32(&mut cfg, 0, 0xdead_beef);
        assert_eq!(cfg.read_reg(0), 0x1050_1af4);
        write32(&mut cfg, 4, 0xffff_ffff);
        assert_eq!(cfg.command(), 0x0407);
    }

    #[test]
    fn bar_sizing_returns_size_mask_and_flags() {
        let mut cfg = PciConfig::new(ids());
        cfg.add_bar(BarSpec {
            index: 0,
            size: 0x4000,
            is_64bit: true,
            prefetchable: true,
        })
        .unwrap();
        cfg.add_bar(BarSpec {
            index: 2,
            size: 0x1000,
            is_64bit: false,
            prefetchable: false,
        })
        .unwrap();
        write32(&mut cfg, 0x10, 0xffff_ffff);
        write32(&mut cfg, 0x14, 0xffff_ffff);
        write32(&mut cfg, 0x18, 0xffff_ffff);
        assert_eq!(cfg.read_reg(4), 0xffff_c00c);
        assert_eq!(cfg.read_reg(5), 0xffff_ffff);
        assert_eq!(cfg.read_reg(6), 0xffff_f000);
        // Unused BARs stay zero: "not implemented".
        write32(&mut cfg, 0x1c, 0xffff_ffff);
        assert_eq!(cfg.read_reg(7), 0);
        write32(&mut cfg, 0x10, 0xc000_4000);
        write32(&mut cfg, 0x14, 0x1);
        assert_eq!(cfg.bar_address(0), Some(0x1_c000_4000));
        assert_eq!(cfg.bar_mapping(0), None, "memory decoding is off");
        write32(&mut cfg, 4, u32::from(COMMAND_MEMORY_SPACE));
        assert_eq!(cfg.bar_mapping(0), Some((0x1_c000_4000, 0x4000)));
    }

    #[test]
    fn bad_bars_are_refused() {
        let mut cfg = PciConfig::new(ids());
        let bar = |index, size, is_64bit| BarSpec {
            index,
            size,
            is_64bit,
            prefetchable: false,
        };
        assert!(cfg.add_bar(bar(5, 0x1000, true)).is_err());
        assert!(cfg.add_bar(bar(0, 0x1001, false)).is_err());
        assert!(cfg.add_bar(bar(6, 0x1000, false)).is_err());
        cfg.add_bar(bar(0, 0x1000, true)).unwrap();
        assert!(
            cfg.add_bar(bar(1, 0x1000, false)).is_err(),
            "upper half of BAR0"
        );
        assert!(cfg.set_bar_address(0, 0x800).is_err(), "misaligned");
    }

    #[test]
    fn capabilities_chain_and_honour_write_masks() {
        let mut cfg = PciConfig::new(ids());
        let a = cfg
            .add_capability(&[0x11, 0xff, 0x00, 0x00], &[0, 0, 0, 0xc0])
            .unwrap();
        let b = cfg
            .add_capability(&[0x09, 0xff, 0x10, 0x01, 0, 0, 0, 0, 0], &[])
            .unwrap();
        assert_eq!(a, 0x40);
        assert_eq!(b, 0x44);
        assert_eq!(cfg.read_reg(13), 0x40);
        assert_ne!(cfg.read_reg(1) & STATUS_CAP_LIST, 0);
        let mut next = [0u8];
        cfg.read(0x41, &mut next);
        assert_eq!(next[0], 0x44);
        cfg.read(0x45, &mut next);
        assert_eq!(next[0], 0);
        assert!(cfg.write(0x42, &[0xff, 0xff]));
        assert_eq!(cfg.read_u16(0x42), 0xc000);
        assert!(!cfg.write(0x43, &[1, 2]), "crosses a dword");
        assert!(!cfg.write(0x40, &[1, 2, 3]), "3-byte access");
    }

    #[test]
    fn capability_space_runs_out() {
        let mut cfg = PciConfig::new(ids());
        let big = [0u8; 64];
        for _ in 0..3 {
            cfg.add_capability(&big, &[]).unwrap();
        }
        assert!(matches!(
            cfg.add_capability(&big, &[]),
            Err(PciError::NoCapabilitySpace)
        ));
    }
}
