//! Legacy VGA: a VGA-class function's fixed I/O ports (0x3b0-0x3bb, 0x3c0-0x3df), which no BAR
//! describes, forwarded to vfio-pci's VGA region (where the port number is the region offset),
//! so a guest's VGA BIOS or driver can program the real device (QEMU's x-vga=on). The legacy
//! memory window 0xa0000-0xbffff is left out: in this VMM's layout it is guest RAM.

use std::sync::Arc;

use tracing::warn;

use crate::bus::BusDevice;
use crate::vfio::api::{VfioDeviceApi, VGA_REGION};

/// The port block the bus device covers, and the two ranges VGA decodes inside it.
pub const PORTS_START: u64 = 0x3b0;
pub const PORTS_LEN: u64 = 0x30;
const DECODED: [(u64, u64); 2] = [(0x3b0, 0x3bc), (0x3c0, 0x3e0)];

pub struct VgaPorts {
    api: Arc<dyn VfioDeviceApi>,
}

impl VgaPorts {
    /// The ports of `api`'s function, if it has a VGA region.
    pub fn new(api: Arc<dyn VfioDeviceApi>) -> Option<VgaPorts> {
        api.region(VGA_REGION)?;
        Some(VgaPorts { api })
    }

    fn port(offset: u64, len: usize) -> Option<u64> {
        let port = PORTS_START + offset;
        let end = port + len as u64;
        DECODED
            .iter()
            .any(|&(s, e)| port >= s && end <= e)
            .then_some(port)
    }
}

impl BusDevice for VgaPorts {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        let ok = Self::port(offset, data.len()).is_some_and(|p| self.api.read(VGA_REGION, p, data));
        if !ok {
            data.fill(0xff);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let ok =
            Self::port(offset, data.len()).is_some_and(|p| self.api.write(VGA_REGION, p, data));
        if !ok {
            warn!(
                port = PORTS_START + offset,
                len = data.len(),
                "vfio: VGA port write dropped"
            );
        }
    }
}
