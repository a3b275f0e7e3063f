//! A guest driver for transport tests: config space through the PCI root, registers through
//! the MMIO bus, queue 0 (8 entries) in real guest memory at fixed addresses.

use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::transport::*;
use super::*;
use crate::bus::Bus;
use crate::pci::msix::tests::RecordingSink;
use crate::pci::{MmioAllocator, PciDevice, PciRoot};

pub const DESC: u64 = 0x1000;
pub const AVAIL: u64 = 0x2000;
pub const USED: u64 = 0x3000;
pub const REQ: u64 = 0x4000;
pub const RESP: u64 = 0x5000;

pub(crate) struct Guest {
    pub(crate) bus: Arc<Bus>,
    pub(crate) root: Arc<Mutex<PciRoot>>,
    pub(crate) mem: GuestMemoryMmap,
    pub(crate) dev: Arc<Mutex<VirtioPciDevice>>,
    pub(crate) bar0: u64,
}

impl Guest {
    /// Puts `device` on the transport in slot 1 of a fresh bus, with memory and bus mastering
    /// enabled, as firmware leaves it.
    pub(crate) fn attach(
        device: Box<dyn VirtioDevice>,
        mem: GuestMemoryMmap,
        vm: Option<Arc<dyn crate::hypervisor::Vm>>,
        sink: RecordingSink,
    ) -> Guest {
        let device = VirtioPciDevice::new(device, mem.clone(), Box::new(sink), vm).unwrap();
        let dev = Arc::new(Mutex::new(device));
        let bus = Arc::new(Bus::new());
        let mut root = PciRoot::new(bus.clone());
        // Room for a GPU's 256 MiB shared-memory BAR after the small ones.
        let mut alloc = MmioAllocator::new(0xc000_0000, 0x2000_0000);
        let slot = root.add_device(dev.clone(), &mut alloc).unwrap();
        assert_eq!(slot, 1);
        let root = Arc::new(Mutex::new(root));
        let bar0 = dev.lock().unwrap().config().bar_address(0).unwrap();
        let guest = Guest {
            bus,
            root,
            mem,
            dev,
            bar0,
        };
        guest.cfg_write(4, &[0x06, 0x00]);
        guest
    }

    pub(crate) fn cfg_write(&self, offset: usize, data: &[u8]) {
        self.root
            .lock()
            .unwrap()
            .config_write(0, 1, 0, offset, data);
    }

    pub(crate) fn cfg_read(&self, offset: usize, len: usize) -> u32 {
        let mut data = [0u8; 4];
        self.root
            .lock()
            .unwrap()
            .config_read(0, 1, 0, offset, &mut data[..len]);
        u32::from_le_bytes(data)
    }

    pub(crate) fn w(&self, offset: u64, value: u64, len: usize) {
        assert!(self
            .bus
            .write(self.bar0 + offset, &value.to_le_bytes()[..len]));
    }

    pub(crate) fn r(&self, offset: u64, len: usize) -> u64 {
        let mut data = [0u8; 8];
        assert!(self.bus.read(self.bar0 + offset, &mut data[..len]));
        u64::from_le_bytes(data)
    }

    /// The driver's side of initialisation, through FEATURES_OK and queue 0 setup.
    pub(crate) fn init(&self, driver_features: u64) -> u8 {
        self.w(0x14, 0, 1);
        self.w(0x14, u64::from(status::ACKNOWLEDGE | status::DRIVER), 1);
        self.w(0x08, 0, 4);
        self.w(0x0c, driver_features & 0xffff_ffff, 4);
        self.w(0x08, 1, 4);
        self.w(0x0c, driver_features >> 32, 4);
        self.w(
            0x14,
            u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
            1,
        );
        let status = self.r(0x14, 1) as u8;
        self.setup_queue(0, DESC);
        status
    }

    /// Turns MSI-X on through its capability's Message Control.
    pub(crate) fn enable_msix(&self) {
        let mut cap = self.cfg_read(0x34, 1) as usize;
        while self.cfg_read(cap, 1) != 0x11 {
            cap = self.cfg_read(cap + 1, 1) as usize;
        }
        self.cfg_write(cap + 2, &0x8000u16.to_le_bytes());
    }

    /// Routes MSI-X table entry `vector` to the local APIC with `data`, unmasked; returns the
    /// entry's offset in BAR 0.
    pub(crate) fn route_vector(&self, vector: u64, data: u32) -> u64 {
        let entry = MSIX_TABLE_OFFSET + 16 * vector;
        self.w(entry, 0xfee0_0000, 8);
        self.w(entry + 8, u64::from(data), 4);
        self.w(entry + 12, 0, 4);
        entry
    }

    pub(crate) fn driver_ok(&self) {
        let s = status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK;
        self.w(0x14, u64::from(s), 1);
    }

    /// Queues one request/response pair on queue 0 (avail index `n`).
    pub(crate) fn post(&self, n: u16, request: &[u8]) {
        self.mem.write_slice(request, GuestAddress(REQ)).unwrap();
        let d0 = [
            REQ.to_le_bytes().as_slice(),
            &(request.len() as u32).to_le_bytes(),
            &1u16.to_le_bytes(),
            &1u16.to_le_bytes(),
        ]
        .concat();
        let d1 = [
            RESP.to_le_bytes().as_slice(),
            &64u32.to_le_bytes(),
            &2u16.to_le_bytes(),
            &0u16.to_le_bytes(),
        ]
        .concat();
        self.mem.write_slice(&d0, GuestAddress(DESC)).unwrap();
        self.mem.write_slice(&d1, GuestAddress(DESC + 16)).unwrap();
        self.mem
            .write_obj(0u16, GuestAddress(AVAIL + 4 + 2 * u64::from(n % 8)))
            .unwrap();
        self.mem.write_obj(n + 1, GuestAddress(AVAIL + 2)).unwrap();
    }

    /// Queues a chain of (address, length, device-writable) buffers on queue 0 at avail index
    /// `n`, using descriptors from `first` on.
    pub(crate) fn post_chain(&self, n: u16, first: u16, buffers: &[(u64, u32, bool)]) {
        self.post_chain_at(DESC, n, first, buffers);
    }

    /// Sets up queue `index` (8 entries) with its descriptor table at `rings` and its avail
    /// and used rings in the next two pages, as queue 0 lies at DESC.
    pub(crate) fn setup_queue(&self, index: u16, rings: u64) {
        self.w(0x16, u64::from(index), 2);
        self.w(0x18, 8, 2);
        self.w(0x20, rings, 8);
        self.w(0x28, rings + 0x1000, 4);
        self.w(0x2c, 0, 4);
        self.w(0x30, rings + 0x2000, 8);
        self.w(0x1c, 1, 2);
    }

    /// [`Guest::post_chain`] on the queue whose rings are at `rings`.
    pub(crate) fn post_chain_at(
        &self,
        rings: u64,
        n: u16,
        first: u16,
        buffers: &[(u64, u32, bool)],
    ) {
        let avail = rings + 0x1000;
        for (i, &(addr, len, write)) in buffers.iter().enumerate() {
            let index = first + i as u16;
            let last = i + 1 == buffers.len();
            let flags = u16::from(!last) | if write { 2 } else { 0 };
            let next = if last { 0 } else { index + 1 };
            let desc = [
                addr.to_le_bytes().as_slice(),
                &len.to_le_bytes(),
                &flags.to_le_bytes(),
                &next.to_le_bytes(),
            ]
            .concat();
            self.mem
                .write_slice(&desc, GuestAddress(rings + 16 * u64::from(index)))
                .unwrap();
        }
        self.mem
            .write_obj(first, GuestAddress(avail + 4 + 2 * u64::from(n % 8)))
            .unwrap();
        self.mem.write_obj(n + 1, GuestAddress(avail + 2)).unwrap();
    }

    /// The used index of the queue whose rings are at `rings`.
    pub(crate) fn used_idx_at(&self, rings: u64) -> u16 {
        self.mem.read_obj(GuestAddress(rings + 0x2000 + 2)).unwrap()
    }

    pub(crate) fn used_idx(&self) -> u16 {
        self.used_idx_at(DESC)
    }
}
