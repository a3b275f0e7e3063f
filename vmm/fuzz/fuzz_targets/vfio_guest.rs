//! A hostile guest against passed-through functions (the VFIO mock standing for the host
//! device, the recording hypervisor for KVM): random config accesses through ECAM (BAR sizing
//! and moves, ROM, command, MSI-X control, PCIe FLR, anything else passed through) and random
//! accesses to every BAR (mapped areas, the trapped MSI-X table and PBA, NVIDIA's BAR0 config
//! window, ROM), and with `vga=on` to the legacy VGA ports and memory window. Nothing may panic,
//! and the function must still answer its IDs.
//!
//! Input: one byte picks the device (bochs-display, virtio-gpu-pci, an NVIDIA GPU, mbochs; bit 2: with
//! the legacy VGA ranges), then records of 8 bytes `[op, a_lo, a_hi, len, value: u32]`.
#![no_main]

use std::sync::{Arc, Mutex};

use libfuzzer_sys::fuzz_target;
use vmm::hypervisor::mock::MockHypervisor;
use vmm::pci::{self, PciDevice};
use vmm::vfio::api::{REGION_READ, REGION_WRITE, VGA_REGION};
use vmm::vfio::config::RomSource;
use vmm::vfio::mock::fixtures;
use vmm::vfio::{FunctionOptions, VfioPciDevice};
use vmm::vm::Vm;

fuzz_target!(|data: &[u8]| {
    let Some((&which, records)) = data.split_first() else {
        return;
    };
    let mock = match which & 3 {
        0 => fixtures::bochs(),
        1 => fixtures::virtio_gpu(),
        2 => fixtures::nvidia(),
        _ => fixtures::mbochs(),
    };
    let ids = mock.peek(7, 0, 4);
    let hv = MockHypervisor::new();
    let mut vm = Vm::new(&hv, 2 << 20, true).unwrap();
    if which & 4 != 0 {
        mock.add_region(VGA_REGION, 0xc0000, REGION_READ | REGION_WRITE, None);
        vm.add_legacy_vga(Arc::new(mock.clone())).unwrap();
    }
    let options = FunctionOptions::new(RomSource::Device, 10);
    let device = VfioPciDevice::new(&mut vm, "fuzz", Arc::new(mock), options).unwrap();
    let device = Arc::new(Mutex::new(device));
    let slot = vm.add_pci_device(device.clone()).unwrap();
    let ecam = pci::ECAM_START + (u64::from(slot) << 15);
    for r in records.chunks_exact(8) {
        let a = u64::from(u16::from_le_bytes([r[1], r[2]]));
        let len = [1usize, 2, 4, 8][usize::from(r[3] & 3)];
        let value = [r[4], r[5], r[6], r[7], r[4], r[5], r[6], r[7]];
        let mut out = [0u8; 8];
        let bar = usize::from(r[3] >> 2) % 7;
        let base = device.lock().unwrap().config().bar_address(bar).unwrap_or(0);
        // Offsets reach NVIDIA's 0x88000 window from the record's high bits.
        let offset = a | u64::from(r[3] >> 5) << 16;
        match r[0] % 6 {
            0 => {
                vm.mmio.write(ecam + (a & 0xfff), &value[..len.min(4)]);
            }
            1 => {
                vm.mmio.read(ecam + (a & 0xfff), &mut out[..len.min(4)]);
            }
            2 => {
                vm.mmio.write(base + offset, &value[..len]);
            }
            3 => {
                vm.mmio.read(base + offset, &mut out[..len]);
            }
            // The legacy VGA ranges (absent without bit 2: nothing answers).
            4 => {
                vm.pio.write(0x3b0 + a % 0x30, &value[..len.min(4)]);
                vm.mmio.write(0xa_0000 + (offset % 0x2_0000), &value[..len]);
            }
            _ => {
                vm.pio.read(0x3b0 + a % 0x30, &mut out[..len.min(4)]);
                vm.mmio.read(0xa_0000 + (offset % 0x2_0000), &mut out[..len]);
            }
        }
    }
    let mut id = [0u8; 4];
    vm.mmio.read(ecam, &mut id);
    assert_eq!(id.to_vec(), ids, "the function lost its identity");
});
