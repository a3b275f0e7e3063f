//! The guest's view of a passed-through function's config space.
//!
//! Shadowed here: the header's BARs, ROM BAR, command register, cache line/latency and
//! interrupt line (the guest's addresses and routing, not the host's), the MSI capability and
//! MSI-X's enable and function-mask bits (interrupts are wired by the VMM), and PCIe's
//! "initiate FLR" bit (a reset the VMM performs). Everything else reads from and writes to the
//! device, where vfio-pci applies its own permission bits.

use tracing::{debug, warn};

use super::api::{RegionInfo, VfioDeviceApi, CONFIG_REGION, ROM_REGION};
use super::VfioError;
use crate::pci::config::{CONFIG_SPACE_SIZE, NUM_BARS};
use crate::pci::{BarSpec, PciConfig, PciIds, ROM_BAR};

pub const MSI_CAP_ID: u8 = 0x05;
pub const MSIX_CAP_ID: u8 = 0x11;
pub const PCIE_CAP_ID: u8 = 0x10;
const HEADER_END: usize = 0x40;
const COMMAND: usize = 0x04;
const STATUS: usize = 0x06;
const CAP_PTR: usize = 0x34;
const INTERRUPT_PIN: usize = 0x3d;
/// PCIe Device Capabilities bit 28: Function Level Reset capable; Device Control bit 15.
const PCIE_DEVCAP_FLR: u32 = 1 << 28;
const PCIE_DEVCTL_FLR: u16 = 1 << 15;
/// Command bits the device itself must see: I/O and memory decoding, bus mastering (its DMA),
/// SERR, parity and INTx disable.
const COMMAND_TO_DEVICE: u16 = 0x0001 | 0x0002 | 0x0004 | 0x0040 | 0x0100 | 0x0400;

/// Where the MSI-X table and PBA are: (BAR, offset), with the vector count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixLayout {
    pub cap: usize,
    pub vectors: u16,
    pub table: (usize, u64),
    pub pba: (usize, u64),
}

impl MsixLayout {
    pub fn table_len(&self) -> u64 {
        u64::from(self.vectors) * 16
    }
    pub fn pba_len(&self) -> u64 {
        u64::from(self.vectors).div_ceil(64) * 8
    }
}

/// The MSI capability's layout (PCI 3.0, 6.8.1): 32- or 64-bit address, optional mask bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsiLayout {
    pub cap: usize,
    pub is_64bit: bool,
    pub per_vector_mask: bool,
    /// Multiple Message Capable: log2 of the vectors the function can use.
    pub max_vectors_log2: u8,
}

impl MsiLayout {
    fn data_offset(&self) -> usize {
        if self.is_64bit {
            12
        } else {
            8
        }
    }
    fn mask_offset(&self) -> Option<usize> {
        self.per_vector_mask.then(|| self.data_offset() + 4)
    }
    /// Bytes of the capability the VMM emulates (ID and next pointer stay the device's).
    pub fn emulated_len(&self) -> usize {
        self.data_offset() + if self.per_vector_mask { 12 } else { 4 }
    }
}

/// The MSI capability as the guest programmed it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MsiProgram {
    pub enabled: bool,
    pub vectors: u32,
    pub address: u64,
    pub data: u16,
    pub mask: u32,
}

/// What a guest write changed, for the device to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigEvent {
    /// The command register (decoding may have turned on or off: BARs re-mapped by the root).
    Command,
    /// MSI-X message control: the enable and function-mask bits now.
    MsixControl(u16),
    Msi(MsiProgram),
    /// The guest asked for a Function Level Reset.
    Flr,
}

/// Capabilities found on the device.
#[derive(Debug, Clone, Default)]
pub struct Capabilities {
    pub msi: Option<MsiLayout>,
    pub msix: Option<MsixLayout>,
    /// PCIe capability offset, and whether the function can do FLR.
    pub pcie: Option<(usize, bool)>,
}

/// Where the ROM the guest sees comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RomSource {
    Device,
    File(Vec<u8>),
    Off,
}

pub struct ConfigView {
    /// The header as the guest sees it (BARs, ROM, command, line); the BAR specs live here.
    pub shadow: PciConfig,
    pub caps: Capabilities,
    /// The emulated bytes of the MSI capability (offset 0 = the capability's ID byte).
    msi_regs: Vec<u8>,
    msix_control: u16,
    /// BARs of the device the guest does not get (I/O BARs: no port space is passed).
    pub skipped_bars: Vec<usize>,
}

fn u16_at(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn u32_at(bytes: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]])
}

impl ConfigView {
    /// Reads the device's config space and declares its BARs and ROM as `rom` says.
    pub fn probe(api: &dyn VfioDeviceApi, rom: &RomSource) -> Result<ConfigView, VfioError> {
        let mut raw = [0u8; CONFIG_SPACE_SIZE];
        // Some mediated devices have less than the 256 bytes (mbochs: 255); the rest reads 0.
        let size = api
            .region(CONFIG_REGION)
            .map_or(0, |r| r.size.min(CONFIG_SPACE_SIZE as u64) as usize);
        if size < HEADER_END || !api.read(CONFIG_REGION, 0, &mut raw[..size]) {
            return Err(VfioError::ConfigUnreadable);
        }
        let ids = PciIds {
            vendor: u16_at(&raw, 0),
            device: u16_at(&raw, 2),
            revision: raw[8],
            prog_if: raw[9],
            subclass: raw[10],
            class: raw[11],
            subsystem_vendor: u16_at(&raw, 0x2c),
            subsystem: u16_at(&raw, 0x2e),
            // One function is passed: never claim a multi-function device.
            header_type: raw[0x0e] & 0x7f,
        };
        let mut shadow = PciConfig::new(ids);
        shadow.mirror_header(&raw);
        let mut skipped_bars = Vec::new();
        let mut index = 0;
        while index < NUM_BARS {
            let reg = u32_at(&raw, 0x10 + index * 4);
            let is_64bit = reg & 0b111 == 0b100;
            let region = api.region(index as u32).filter(|r| r.size > 0);
            match region {
                Some(_) if reg & 1 == 1 => skipped_bars.push(index),
                Some(RegionInfo { size, .. }) => {
                    shadow.add_bar(BarSpec {
                        index,
                        size: size.next_power_of_two().max(16),
                        is_64bit,
                        prefetchable: reg & 0b1000 != 0,
                    })?;
                }
                None => {}
            }
            index += if is_64bit { 2 } else { 1 };
        }
        let rom_size = match rom {
            RomSource::Off => None,
            RomSource::File(bytes) => Some(bytes.len() as u64),
            RomSource::Device => api.region(ROM_REGION).map(|r| r.size),
        };
        if let Some(size) = rom_size.filter(|&s| s > 0) {
            shadow.add_rom(size.next_power_of_two().max(2048))?;
        }
        let caps = walk_capabilities(&raw);
        let mut msi_regs = Vec::new();
        if let Some(msi) = caps.msi {
            msi_regs = raw[msi.cap..(msi.cap + msi.emulated_len()).min(CONFIG_SPACE_SIZE)].to_vec();
            msi_regs.resize(msi.emulated_len(), 0);
            // Disabled, one vector, until the guest says otherwise.
            msi_regs[2] &= !0x71;
        }
        debug!(?caps, ?skipped_bars, "vfio: config probed");
        Ok(ConfigView {
            shadow,
            caps,
            msi_regs,
            msix_control: 0,
            skipped_bars,
        })
    }

    /// What the guest reads at `offset` (1, 2 or 4 bytes inside one dword).
    pub fn read(&self, api: &dyn VfioDeviceApi, offset: usize, data: &mut [u8]) {
        let base = offset & !3;
        let mut device = [0xffu8; 4];
        // Only the status register and everything past the header come from the device.
        if (base >= HEADER_END || base == COMMAND)
            && !api.read(CONFIG_REGION, base as u64, &mut device)
        {
            device = [0xff; 4];
        }
        let mut shadow = [0u8; 4];
        self.shadow.read(base, &mut shadow);
        for (i, out) in data.iter_mut().enumerate() {
            let at = offset + i;
            let k = at - base;
            *out = match self.emulated_byte(at) {
                Some(byte) => byte,
                None if at < HEADER_END && !(STATUS..STATUS + 2).contains(&at) => shadow[k],
                None => device[k.min(3)],
            };
        }
    }

    /// The byte the VMM answers at `at`, where it emulates it.
    fn emulated_byte(&self, at: usize) -> Option<u8> {
        if let Some(msix) = self.caps.msix {
            if at == msix.cap + 3 {
                return Some((self.msix_control >> 8) as u8 | ((msix.vectors - 1) >> 8) as u8);
            }
            if at == msix.cap + 2 {
                return Some((msix.vectors - 1) as u8);
            }
        }
        if let Some(msi) = self.caps.msi {
            if (msi.cap + 2..msi.cap + msi.emulated_len()).contains(&at) {
                return self.msi_regs.get(at - msi.cap).copied();
            }
        }
        None
    }

    /// Applies a guest write; returns what the device must act on. Malformed writes are
    /// dropped with a warning.
    pub fn write(
        &mut self,
        api: &dyn VfioDeviceApi,
        offset: usize,
        data: &[u8],
    ) -> Option<ConfigEvent> {
        if !matches!(data.len(), 1 | 2 | 4)
            || offset % 4 + data.len() > 4
            || offset >= CONFIG_SPACE_SIZE
        {
            warn!(
                offset,
                len = data.len(),
                "vfio: malformed config write dropped"
            );
            return None;
        }
        if offset < HEADER_END {
            return self.write_header(api, offset, data);
        }
        if let Some(msix) = self.caps.msix {
            if overlaps(offset, data.len(), msix.cap + 2, 2) {
                let mut control = self.msix_control.to_le_bytes();
                for (i, byte) in data.iter().enumerate() {
                    if let Some(k) = (offset + i).checked_sub(msix.cap + 2).filter(|&k| k < 2) {
                        control[k] = *byte;
                    }
                }
                self.msix_control = u16::from_le_bytes(control) & 0xc000;
                return Some(ConfigEvent::MsixControl(self.msix_control));
            }
        }
        if let Some(msi) = self.caps.msi {
            if overlaps(offset, data.len(), msi.cap + 2, msi.emulated_len() - 2) {
                return self.write_msi(msi, offset, data);
            }
        }
        if let Some((cap, flr)) = self.caps.pcie {
            if overlaps(offset, data.len(), cap + 8, 2) {
                let mut bytes = data.to_vec();
                let mut event = None;
                if let Some(k) = (cap + 9).checked_sub(offset).filter(|&k| k < bytes.len()) {
                    if bytes[k] & (PCIE_DEVCTL_FLR >> 8) as u8 != 0 {
                        bytes[k] &= !((PCIE_DEVCTL_FLR >> 8) as u8);
                        if flr {
                            event = Some(ConfigEvent::Flr);
                        }
                    }
                }
                api.write(CONFIG_REGION, offset as u64, &bytes);
                return event;
            }
        }
        if !api.write(CONFIG_REGION, offset as u64, data) {
            warn!(offset, "vfio: the device refused a config write");
        }
        None
    }

    fn write_header(
        &mut self,
        api: &dyn VfioDeviceApi,
        offset: usize,
        data: &[u8],
    ) -> Option<ConfigEvent> {
        // The status register's write-one-to-clear bits are the device's.
        if overlaps(offset, data.len(), STATUS, 2) {
            let (start, end) = (offset.max(STATUS), (offset + data.len()).min(STATUS + 2));
            api.write(
                CONFIG_REGION,
                start as u64,
                &data[start - offset..end - offset],
            );
        }
        let before = self.shadow.command();
        self.shadow.write(offset, data);
        if !overlaps(offset, data.len(), COMMAND, 2) {
            return None;
        }
        let command = self.shadow.command() & COMMAND_TO_DEVICE;
        let mut device = [0u8; 2];
        api.read(CONFIG_REGION, COMMAND as u64, &mut device);
        let merged = (u16::from_le_bytes(device) & !COMMAND_TO_DEVICE) | command;
        api.write(CONFIG_REGION, COMMAND as u64, &merged.to_le_bytes());
        (before != self.shadow.command()).then_some(ConfigEvent::Command)
    }

    fn write_msi(&mut self, msi: MsiLayout, offset: usize, data: &[u8]) -> Option<ConfigEvent> {
        let data_at = msi.data_offset();
        for (i, byte) in data.iter().enumerate() {
            let Some(k) = (offset + i)
                .checked_sub(msi.cap)
                .filter(|&k| k < msi.emulated_len())
            else {
                continue;
            };
            let mask: u8 = match k {
                2 => 0x71, // enable, Multiple Message Enable
                4 => 0xfc, // address, dword aligned
                5..=7 => 0xff,
                8..=11 if msi.is_64bit => 0xff, // upper address
                _ if k == data_at || k == data_at + 1 => 0xff,
                _ if msi.mask_offset().is_some_and(|m| (m..m + 4).contains(&k)) => 0xff,
                _ => 0,
            };
            self.msi_regs[k] = (self.msi_regs[k] & !mask) | (byte & mask);
        }
        Some(ConfigEvent::Msi(self.msi_program()))
    }

    /// The MSI capability as programmed now.
    pub fn msi_program(&self) -> MsiProgram {
        let Some(msi) = self.caps.msi else {
            return MsiProgram::default();
        };
        let r = &self.msi_regs;
        let control = u16_at(r, 2);
        let enabled_log2 = ((control >> 4) & 7) as u8;
        let high = if msi.is_64bit {
            u64::from(u32_at(r, 8))
        } else {
            0
        };
        MsiProgram {
            enabled: control & 1 != 0,
            vectors: 1 << enabled_log2.min(msi.max_vectors_log2).min(5),
            address: high << 32 | u64::from(u32_at(r, 4)),
            data: u16_at(r, msi.data_offset()),
            mask: msi.mask_offset().map_or(0, |m| u32_at(r, m)),
        }
    }

    /// Back to power-on state after a reset: decoding off, interrupts off.
    pub fn reset(&mut self) {
        self.shadow.write(COMMAND, &0u16.to_le_bytes());
        self.msix_control = 0;
        if !self.msi_regs.is_empty() {
            self.msi_regs[2] &= !0x71;
        }
    }

    /// The interrupt pin the device says it uses (0: none).
    pub fn interrupt_pin(&self, api: &dyn VfioDeviceApi) -> u8 {
        let mut pin = [0u8];
        api.read(CONFIG_REGION, INTERRUPT_PIN as u64, &mut pin);
        pin[0]
    }

    pub fn rom_size(&self) -> Option<u64> {
        self.shadow.bar(ROM_BAR).map(|b| b.size)
    }
}

fn overlaps(offset: usize, len: usize, start: usize, size: usize) -> bool {
    offset < start + size && start < offset + len
}

/// Walks the standard capability list (at most 48 entries, each dword aligned in 0x40..0x100:
/// a device's list is not trusted to end).
pub fn walk_capabilities(raw: &[u8; CONFIG_SPACE_SIZE]) -> Capabilities {
    let mut caps = Capabilities::default();
    if u16_at(raw, STATUS) & 0x10 == 0 {
        return caps;
    }
    let mut at = usize::from(raw[CAP_PTR] & 0xfc);
    for _ in 0..48 {
        if at < HEADER_END || at + 4 > CONFIG_SPACE_SIZE {
            break;
        }
        match raw[at] {
            MSI_CAP_ID => {
                let control = u16_at(raw, at + 2);
                caps.msi = Some(MsiLayout {
                    cap: at,
                    is_64bit: control & 0x80 != 0,
                    per_vector_mask: control & 0x100 != 0,
                    max_vectors_log2: ((control >> 1) & 7) as u8,
                });
            }
            MSIX_CAP_ID if at + 12 <= CONFIG_SPACE_SIZE => {
                let control = u16_at(raw, at + 2);
                let table = u32_at(raw, at + 4);
                let pba = u32_at(raw, at + 8);
                caps.msix = Some(MsixLayout {
                    cap: at,
                    vectors: (control & 0x7ff) + 1,
                    table: ((table & 7) as usize, u64::from(table & !7)),
                    pba: ((pba & 7) as usize, u64::from(pba & !7)),
                });
            }
            PCIE_CAP_ID if at + 12 <= CONFIG_SPACE_SIZE => {
                let devcap = u32_at(raw, at + 4);
                caps.pcie = Some((at, devcap & PCIE_DEVCAP_FLR != 0));
            }
            _ => {}
        }
        at = usize::from(raw[at + 1] & 0xfc);
    }
    caps
}
