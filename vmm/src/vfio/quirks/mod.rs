//! Device quirks: what a passed-through function needs beyond plain config and BAR
//! passthrough, found in one table keyed by vendor and device (as QEMU's vfio quirks are). A
//! quirk claims BAR ranges (they are trapped, not mapped) and says what an access there means.
//! [`vga`] forwards a VGA function's legacy I/O ports, which no BAR covers.

mod nvidia;
pub mod vga;

use super::bars::Trap;

/// What a trapped BAR access inside a quirk's range is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Redirect {
    /// An access to the function's (virtualised) config space at this offset; offsets past the
    /// 256 bytes the guest sees read as zero and ignore writes.
    Config(usize),
}

pub trait Quirk: Send {
    fn name(&self) -> &'static str;
    /// The BAR ranges it needs to see.
    fn traps(&self) -> Vec<Trap>;
    /// What an access of `len` bytes at `offset` of `bar` is, if the quirk claims it.
    fn redirect(&self, bar: usize, offset: u64, len: usize) -> Option<Redirect>;
}

/// What the table matches on.
#[derive(Debug, Clone, Copy)]
pub struct DeviceId {
    pub vendor: u16,
    pub device: u16,
    /// Whether the function has a PCI Express capability.
    pub pcie: bool,
    /// Size of BAR0, if any (a quirk window must fit in it).
    pub bar0_size: Option<u64>,
}

type Probe = fn(&DeviceId) -> Option<Box<dyn Quirk>>;

/// Every quirk there is: (vendor, device or None for all of the vendor's, probe).
const TABLE: &[(u16, Option<u16>, Probe)] = &[(nvidia::VENDOR, None, nvidia::bar0_config_mirror)];

/// The quirks that apply to `id`.
pub fn for_device(id: &DeviceId) -> Vec<Box<dyn Quirk>> {
    TABLE
        .iter()
        .filter(|(vendor, device, _)| *vendor == id.vendor && device.is_none_or(|d| d == id.device))
        .filter_map(|(_, _, probe)| probe(id))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn id(vendor: u16, pcie: bool, bar0: u64) -> DeviceId {
        DeviceId {
            vendor,
            device: 0x2335,
            pcie,
            bar0_size: Some(bar0),
        }
    }

    #[test]
    fn table_picks_quirks_by_vendor() {
        assert!(
            for_device(&id(0x1234, true, 16 << 20)).is_empty(),
            "bochs has none"
        );
        let quirks = for_device(&id(0x10de, true, 16 << 20));
        assert_eq!(quirks.len(), 1);
        assert_eq!(quirks[0].traps(), vec![(0, 0x88000, 0x1000)]);
        let legacy = for_device(&id(0x10de, false, 16 << 20));
        assert_eq!(legacy[0].traps(), vec![(0, 0x1800, 0x100)]);
        assert!(
            for_device(&id(0x10de, true, 0x10000)).is_empty(),
            "window outside BAR0"
        );
    }
}
