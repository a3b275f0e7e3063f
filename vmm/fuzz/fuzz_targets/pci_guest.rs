//! A hostile guest against the PCI root and the virtio-pci transport carrying a virtio-gpu
//! (software backend): random config-space accesses through 0xCF8/0xCFC and ECAM (BAR sizing,
//! moves, MSI-X control) and random BAR 0 accesses (common config, queue setup with rings anywhere,
//! notifications, ISR, device config, MSI-X table and PBA).
//!
//! Input: records of 8 bytes `[op, a_lo, a_hi, len, value: u32]`; `op % 6` picks the access.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use virtio_gpu::backend::software::SoftwareBackend;
use virtio_gpu::{GpuConfig, GpuDevice};
use vm_memory::{GuestAddress, GuestMemoryMmap};
use vmm::bus::{Bus, BusDevice};
use vmm::pci::{MmioAllocator, MsiMessage, MsiSink, PciConfigIo, PciConfigMmio, PciDevice, PciRoot};
use vmm::virtio_pci::gpu::VirtioGpu;
use vmm::virtio_pci::VirtioPciDevice;

struct Sink;
impl MsiSink for Sink {
    fn route(&mut self, _: u16, _: MsiMessage) {}
    fn fire(&mut self, _: u16) {}
}

fuzz_target!(|data: &[u8]| {
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)]).unwrap();
    let device = GpuDevice::new(Box::new(SoftwareBackend::new()), GpuConfig::default());
    let transport =
        VirtioPciDevice::new(Box::new(VirtioGpu::new(device)), mem, Box::new(Sink), None).unwrap();
    let transport = Arc::new(Mutex::new(transport));
    let bus = Arc::new(Bus::new());
    let mut root = PciRoot::new(bus.clone());
    let mut alloc = MmioAllocator::new(0xc000_0000, 0x2000_0000);
    root.add_device(transport.clone(), &mut alloc).unwrap();
    let root = Arc::new(Mutex::new(root));
    let mut cf8 = PciConfigIo::new(root.clone());
    // The config accessors hold the root weakly; `root` keeps it alive.
    let mut ecam = PciConfigMmio::new(root.clone());

    for r in data.chunks_exact(8) {
        let a = u16::from_le_bytes([r[1], r[2]]) as u64;
        let len = [1usize, 2, 4, 8][usize::from(r[3] & 3)];
        let value = [r[4], r[5], r[6], r[7], r[4], r[5], r[6], r[7]];
        let mut out = [0u8; 8];
        let bar0 = transport.lock().unwrap().config().bar_address(0).unwrap_or(0);
        match r[0] % 6 {
            0 => {
                cf8.write(0xcf8, 0, &(0x8000_0000u32 | (a as u32 & 0xfffc)).to_le_bytes());
                cf8.write(0xcf8, 4 + (a >> 14 & 3), &value[..len.min(4)]);
            }
            1 => {
                cf8.write(0xcf8, 0, &(0x8000_0000u32 | (a as u32 & 0xfffc)).to_le_bytes());
                cf8.read(0xcf8, 4 + (a >> 14 & 3), &mut out[..len.min(4)]);
            }
            2 => ecam.write(0, (a & 0x7fff) | u64::from(r[3] >> 4) << 15, &value[..len.min(4)]),
            3 => ecam.read(0, (a & 0x7fff) | u64::from(r[3] >> 4) << 15, &mut out[..len.min(4)]),
            4 => {
                bus.write(bar0 + (a & 0x7fff), &value[..len]);
            }
            _ => {
                bus.read(bar0 + (a & 0x7fff), &mut out[..len]);
            }
        }
    }
});
