//! NVIDIA: BAR0 holds a window onto the function's own config space (at 0x88000 on PCI
//! Express parts, 4 KiB; at 0x1800 on older conventional ones, 256 bytes). The driver reads and
//! writes config through it, so left alone it would see the host's BAR addresses and MSI
//! setup and bypass the VMM's: the window is trapped and served from the virtual config space.

use super::{DeviceId, Quirk, Redirect};
use crate::vfio::bars::Trap;

pub const VENDOR: u16 = 0x10de;
const PCIE_MIRROR: (u64, u64) = (0x88000, 0x1000);
const LEGACY_MIRROR: (u64, u64) = (0x1800, 0x100);

struct Bar0ConfigMirror {
    base: u64,
    len: u64,
}

pub fn bar0_config_mirror(id: &DeviceId) -> Option<Box<dyn Quirk>> {
    let (base, len) = if id.pcie { PCIE_MIRROR } else { LEGACY_MIRROR };
    if id.bar0_size? < base + len {
        return None;
    }
    Some(Box::new(Bar0ConfigMirror { base, len }))
}

impl Quirk for Bar0ConfigMirror {
    fn name(&self) -> &'static str {
        "nvidia-bar0-config-mirror"
    }

    fn traps(&self) -> Vec<Trap> {
        vec![(0, self.base, self.len)]
    }

    fn redirect(&self, bar: usize, offset: u64, len: usize) -> Option<Redirect> {
        let inside = offset >= self.base && offset + len as u64 <= self.base + self.len;
        (bar == 0 && inside).then(|| Redirect::Config((offset - self.base) as usize))
    }
}
