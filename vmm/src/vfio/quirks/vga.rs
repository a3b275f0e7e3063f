//! Legacy VGA: a VGA-class function's fixed I/O ports (0x3b0-0x3bb, 0x3c0-0x3df) and memory
//! window (0xa0000-0xbffff), which no BAR describes, forwarded to vfio-pci's VGA region (where
//! the port number or guest physical address is the region offset), so a guest's VGA BIOS or
//! driver can program the real device (QEMU's x-vga=on). The memory window is taken out of guest
//! RAM first ([`crate::memory::Memory::open_window`]).

use std::sync::Arc;

use tracing::warn;

use crate::bus::BusDevice;
use crate::vfio::api::{VfioDeviceApi, VGA_REGION};

/// The port block a bus device covers, and the two ranges VGA decodes inside it.
pub const PORTS_START: u64 = 0x3b0;
pub const PORTS_LEN: u64 = 0x30;
const PORTS_DECODED: &[(u64, u64)] = &[(0x3b0, 0x3bc), (0x3c0, 0x3e0)];
/// The memory window (all of it decoded).
pub const MEMORY_START: u64 = 0xa_0000;
pub const MEMORY_LEN: u64 = 0x2_0000;
const MEMORY_DECODED: &[(u64, u64)] = &[(MEMORY_START, MEMORY_START + MEMORY_LEN)];

/// One of the two legacy ranges of a VGA function, on the port or the MMIO bus.
pub struct VgaLegacy {
    api: Arc<dyn VfioDeviceApi>,
    start: u64,
    decoded: &'static [(u64, u64)],
}

impl VgaLegacy {
    /// The ports of `api`'s function, if it has a VGA region.
    pub fn ports(api: Arc<dyn VfioDeviceApi>) -> Option<VgaLegacy> {
        Self::new(api, PORTS_START, PORTS_DECODED)
    }

    /// The memory window of `api`'s function, if it has a VGA region.
    pub fn memory(api: Arc<dyn VfioDeviceApi>) -> Option<VgaLegacy> {
        Self::new(api, MEMORY_START, MEMORY_DECODED)
    }

    fn new(
        api: Arc<dyn VfioDeviceApi>,
        start: u64,
        decoded: &'static [(u64, u64)],
    ) -> Option<VgaLegacy> {
        api.region(VGA_REGION)?;
        Some(VgaLegacy {
            api,
            start,
            decoded,
        })
    }

    /// The VGA region offset of an access, if VGA decodes all of it.
    fn at(&self, offset: u64, len: usize) -> Option<u64> {
        let addr = self.start.checked_add(offset)?;
        let end = addr.checked_add(len as u64)?;
        self.decoded
            .iter()
            .any(|&(s, e)| addr >= s && end <= e)
            .then_some(addr)
    }
}

impl BusDevice for VgaLegacy {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let ok = self
            .at(offset, data.len())
            .is_some_and(|at| self.api.read(VGA_REGION, at, data));
        if !ok {
            data.fill(0xff);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let ok = self
            .at(offset, data.len())
            .is_some_and(|at| self.api.write(VGA_REGION, at, data));
        if !ok {
            warn!(
                at = self.start + offset,
                len = data.len(),
                "vfio: legacy VGA write dropped"
            );
        }
    }
}
