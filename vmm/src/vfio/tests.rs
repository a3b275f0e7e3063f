//! Passthrough driven as a guest drives it (config cycles through ECAM, BAR accesses on the MMIO
//! bus) against the recording VFIO mock and the recording hypervisor.

use std::sync::{Arc, Mutex};

use super::api::{
    IrqKind, ResetPeer, BAR0_REGION, CONFIG_REGION, REGION_MMAP, REGION_READ, REGION_WRITE,
};
use super::config::RomSource;
use super::device::{reset_on_host, ResetMethod};
use super::mock::fixtures::{bochs, config_space, mbochs, nvidia, virtio_gpu};
use super::mock::{Call, MockDma, MockVfio};
use super::{FunctionOptions, VfioError, VfioPciDevice};
use crate::hypervisor::mock::MockHypervisor;
use crate::pci::{self, PciDevice};
use crate::vm::Vm;

const RW: u32 = REGION_READ | REGION_WRITE;
const RWM: u32 = RW | REGION_MMAP;

struct Guest {
    hv: MockHypervisor,
    vm: Vm,
    mock: MockVfio,
    dev: Arc<Mutex<VfioPciDevice>>,
    slot: u8,
}

impl Guest {
    fn plug(mock: MockVfio, rom: RomSource) -> Guest {
        let hv = MockHypervisor::new();
        let mut vm = Vm::new(&hv, 16 << 20, true).unwrap();
        let dev = VfioPciDevice::new(
            &mut vm,
            "test",
            Arc::new(mock.clone()),
            FunctionOptions::new(rom, 10),
        )
        .unwrap();
        let dev = Arc::new(Mutex::new(dev));
        let slot = vm.add_pci_device(dev.clone()).unwrap();
        Guest {
            hv,
            vm,
            mock,
            dev,
            slot,
        }
    }

    fn ecam(&self, offset: usize) -> u64 {
        pci::ECAM_START + (u64::from(self.slot) << 15) + offset as u64
    }

    fn cfg_read32(&self, offset: usize) -> u32 {
        let mut b = [0u8; 4];
        assert!(self.vm.mmio.read(self.ecam(offset), &mut b));
        u32::from_le_bytes(b)
    }

    fn cfg_read16(&self, offset: usize) -> u16 {
        let mut b = [0u8; 2];
        assert!(self.vm.mmio.read(self.ecam(offset), &mut b));
        u16::from_le_bytes(b)
    }

    fn cfg_write(&self, offset: usize, data: &[u8]) {
        assert!(self.vm.mmio.write(self.ecam(offset), data));
    }

    fn bar(&self, index: usize) -> u64 {
        self.dev
            .lock()
            .unwrap()
            .config()
            .bar_address(index)
            .unwrap()
    }

    /// irqfds on MSI GSIs (24 and up): the vectors KVM delivers now.
    fn msi_irqfds(&self) -> usize {
        let state = self.hv.state.lock().unwrap();
        state.irqfds.iter().filter(|(gsi, _)| *gsi >= 24).count()
    }

    fn slots(&self) -> Vec<(u64, u64)> {
        let state = self.hv.state.lock().unwrap();
        state
            .memory_slots
            .values()
            .skip(1)
            .map(|&(gpa, size, _)| (gpa, size))
            .collect()
    }
}

#[test]
fn a_mediated_device_with_less_config_space_plugs() {
    // mbochs answers 255 bytes of config space; the last dword is not there and reads as ones.
    let g = Guest::plug(mbochs(), RomSource::Device);
    assert_eq!(g.cfg_read32(0), 0x1111_1234);
    assert_eq!(g.cfg_read32(0x30), 0, "no ROM region, no ROM BAR");
    assert_eq!(g.cfg_read32(0xfc), u32::MAX);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    assert!(
        g.slots().contains(&(g.bar(0), 16 << 20)),
        "{:x?}",
        g.slots()
    );
}

#[test]
fn header_ids_and_bar_sizing_are_the_guests() {
    let g = Guest::plug(bochs(), RomSource::Device);
    assert_eq!(g.cfg_read32(0), 0x1111_1234);
    assert_eq!(g.cfg_read32(8) >> 8, 0x03_0000);
    assert_eq!(
        g.mock.calls().first(),
        Some(&Call::Reset),
        "reset before use"
    );
    // Sizing BAR0: all ones back as the size mask, prefetchable 32-bit.
    let bar0 = g.cfg_read32(0x10);
    g.cfg_write(0x10, &u32::MAX.to_le_bytes());
    assert_eq!(g.cfg_read32(0x10), !((16u32 << 20) - 1) | 0x8);
    g.cfg_write(0x10, &bar0.to_le_bytes());
    // The guest's BAR never reaches the device.
    assert_eq!(g.mock.peek(CONFIG_REGION, 0x10, 4), vec![0x8, 0, 0, 0]);
    // ROM: 64 KiB, sized through 0x30.
    g.cfg_write(0x30, &u32::MAX.to_le_bytes());
    assert_eq!(g.cfg_read32(0x30), !((64u32 << 10) - 1) | 1);
}

#[test]
fn bars_become_memory_slots_that_follow_the_guest() {
    let g = Guest::plug(bochs(), RomSource::Device);
    assert!(g.slots().is_empty(), "nothing mapped while decoding is off");
    let (bar0, bar2) = (g.bar(0), g.bar(2));
    g.cfg_write(4, &0x0006u16.to_le_bytes());
    assert_eq!(g.slots(), vec![(bar0, 16 << 20), (bar2, 4096)]);
    assert_eq!(
        g.mock.config_u16(4) & 0x6,
        0x6,
        "decoding and bus mastering reach the device"
    );
    // The guest moves BAR0 (decoding off, new address, on again).
    g.cfg_write(4, &0u16.to_le_bytes());
    assert!(g.slots().is_empty());
    let moved = pci::MMIO32_START + (64 << 20);
    g.cfg_write(0x10, &(moved as u32).to_le_bytes());
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    assert!(g.slots().contains(&(moved, 16 << 20)), "{:?}", g.slots());
    assert!(g.dev.lock().unwrap().bars().is_mapped(0, 0x10_0000));
    assert_eq!(
        g.dev.lock().unwrap().trapped_accesses(),
        [0; 7],
        "no BAR access reached the VMM"
    );
}

#[test]
fn rom_reads_come_from_the_device_or_a_file_or_not_at_all() {
    let g = Guest::plug(bochs(), RomSource::Device);
    let rom = pci::MMIO32_START + (128 << 20);
    g.cfg_write(0x30, &((rom as u32) | 1).to_le_bytes());
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    let mut sig = [0u8; 4];
    assert!(g.vm.mmio.read(rom, &mut sig));
    assert_eq!(sig, [0x55, 0xaa, 0x7f, 0xe9]);

    let file = vec![0x55, 0xaa, 0x10, 0x20, 0x30];
    let g = Guest::plug(bochs(), RomSource::File(file));
    g.cfg_write(0x30, &u32::MAX.to_le_bytes());
    assert_eq!(
        g.cfg_read32(0x30),
        !2047 | 1,
        "a 5-byte file is a 2 KiB ROM"
    );
    g.cfg_write(0x30, &((rom as u32) | 1).to_le_bytes());
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    assert!(g.vm.mmio.read(rom + 2, &mut sig));
    assert_eq!(sig, [0x10, 0x20, 0x30, 0xff]);

    let g = Guest::plug(bochs(), RomSource::Off);
    g.cfg_write(0x30, &u32::MAX.to_le_bytes());
    assert_eq!(g.cfg_read32(0x30), 0, "rombar=off: no ROM BAR");
}

#[test]
fn unmappable_bars_are_trapped_and_forwarded_at_the_guests_width() {
    let mock = bochs();
    mock.add_region(2, 4096, RW, None);
    mock.fill(2, 0x500, &[0xc0, 0x00]);
    let g = Guest::plug(mock, RomSource::Off);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    let bar2 = g.bar(2);
    assert_eq!(
        g.slots(),
        vec![(g.bar(0), 16 << 20)],
        "BAR2 is not mappable"
    );
    g.mock.take_calls();
    let mut id = [0u8; 2];
    assert!(g.vm.mmio.read(bar2 + 0x500, &mut id));
    assert_eq!(id, [0xc0, 0x00]);
    assert!(g.vm.mmio.write(bar2 + 0x502, &[0x01]));
    assert_eq!(g.dev.lock().unwrap().trapped_accesses()[2], 2);
    assert_eq!(
        g.mock.take_calls(),
        vec![
            Call::Read {
                region: 2,
                offset: 0x500,
                len: 2
            },
            Call::Write {
                region: 2,
                offset: 0x502,
                data: vec![1]
            },
        ]
    );
}

fn program_vector(g: &Guest, vector: u64, address: u64, data: u32, masked: bool) {
    let entry = g.bar(1) + vector * 16;
    assert!(g.vm.mmio.write(entry, &(address as u32).to_le_bytes()));
    assert!(g
        .vm
        .mmio
        .write(entry + 4, &((address >> 32) as u32).to_le_bytes()));
    assert!(g.vm.mmio.write(entry + 8, &data.to_le_bytes()));
    assert!(g
        .vm
        .mmio
        .write(entry + 12, &u32::from(masked).to_le_bytes()));
}

#[test]
fn msix_vectors_are_eventfds_wired_to_irqfds_while_unmasked() {
    let g = Guest::plug(virtio_gpu(), RomSource::Off);
    // INTx runs until MSI-X is on: a resample irqfd on the device's line.
    assert!(g.mock.calls().contains(&Call::EnableIrq {
        kind: IrqKind::Intx,
        vectors: 1
    }));
    assert_eq!(g.hv.state.lock().unwrap().resample_irqfds.len(), 1);
    assert_eq!(g.cfg_read32(0x3c) & 0xff, 10, "the line the VMM wired");
    g.cfg_write(4, &0x0006u16.to_le_bytes());
    assert!(
        !g.slots().iter().any(|&(gpa, _)| gpa == g.bar(1)),
        "the MSI-X page is trapped"
    );
    assert!(g.slots().contains(&(g.bar(4), 16 << 10)));

    program_vector(&g, 0, 0xfee0_0000, 0x4021, false);
    program_vector(&g, 1, 0xfee0_0000, 0x4022, true);
    g.mock.take_calls();
    g.cfg_write(0x98 + 2, &0x8000u16.to_le_bytes());
    assert_eq!(g.cfg_read16(0x98 + 2), 0x8002, "enabled, table size 3");
    let calls = g.mock.take_calls();
    assert!(
        calls.contains(&Call::DisableIrq(IrqKind::Intx)),
        "{calls:?}"
    );
    assert!(
        calls.contains(&Call::EnableIrq {
            kind: IrqKind::Msix,
            vectors: 3
        }),
        "{calls:?}"
    );
    let gsi0 = {
        let state = g.hv.state.lock().unwrap();
        let (&gsi, _) = state
            .msi_routes
            .iter()
            .find(|(_, &(_, d))| d == 0x4021)
            .unwrap();
        assert_eq!(
            state.irqfds.iter().filter(|(g, _)| *g >= 24).count(),
            1,
            "vector 1 is masked"
        );
        gsi
    };
    // The device fires vector 0: the eventfd KVM listens on is the one signalled.
    assert!(g.mock.fire(IrqKind::Msix, 0));
    assert_eq!(
        g.hv.state
            .lock()
            .unwrap()
            .irqfd(gsi0)
            .unwrap()
            .read()
            .unwrap(),
        1
    );
    // Reading the table back gives the guest's entry; unmasking vector 1 wires it.
    let mut data = [0u8; 4];
    assert!(g.vm.mmio.read(g.bar(1) + 8, &mut data));
    assert_eq!(u32::from_le_bytes(data), 0x4021);
    assert!(g.vm.mmio.write(g.bar(1) + 16 + 12, &0u32.to_le_bytes()));
    assert_eq!(g.msi_irqfds(), 2);
    // Function mask: nothing delivered; disable: the device loses its vectors, INTx is back.
    g.cfg_write(0x98 + 3, &[0xc0]);
    assert_eq!(g.msi_irqfds(), 0);
    g.cfg_write(0x98 + 3, &[0x00]);
    let calls = g.mock.take_calls();
    assert!(
        calls.contains(&Call::DisableIrq(IrqKind::Msix)),
        "{calls:?}"
    );
    assert!(
        calls.contains(&Call::EnableIrq {
            kind: IrqKind::Intx,
            vectors: 1
        }),
        "{calls:?}"
    );
}

/// A GPU without FLR at 01:00.0 and its audio function at 01:00.1, in `groups`.
fn gpu_with_audio(groups: [u32; 2], held: &[u32]) -> MockVfio {
    let mock = bochs();
    let mut state = mock.state();
    state.can_reset = false;
    state.hot_reset_peers = Some(
        (0..2)
            .map(|f| ResetPeer {
                group: groups[f],
                segment: 0,
                bus: 1,
                devfn: f as u8,
            })
            .collect(),
    );
    state.held_groups = held.to_vec();
    drop(state);
    mock
}

#[test]
fn a_function_without_its_own_reset_gets_a_hot_reset_of_its_bus() {
    let g = Guest::plug(gpu_with_audio([5, 5], &[5]), RomSource::Off);
    let calls = g.mock.calls();
    assert_eq!(calls.first(), Some(&Call::HotReset(vec![5])), "{calls:?}");
    assert!(!calls.contains(&Call::Reset));
    // Peers in two groups: both handed over, once each.
    let mock = gpu_with_audio([5, 6], &[5, 6]);
    let method = reset_on_host(&mock, "gpu").unwrap();
    assert!(matches!(method, ResetMethod::Bus(ref peers) if peers.len() == 2));
    assert_eq!(mock.calls(), vec![Call::HotReset(vec![5, 6])]);
}

#[test]
fn a_hot_reset_that_needs_a_group_the_vm_lacks_is_not_done() {
    let mock = gpu_with_audio([5, 6], &[5]);
    assert!(matches!(
        reset_on_host(&mock, "gpu"),
        Err(VfioError::GroupNotHeld(6))
    ));
    // The function still plugs, as the host left it.
    let g = Guest::plug(mock, RomSource::Off);
    assert_eq!(g.cfg_read32(0), 0x1111_1234);
    assert!(!g
        .mock
        .calls()
        .iter()
        .any(|c| matches!(c, Call::HotReset(_) | Call::Reset)));
}

#[test]
fn the_kernels_function_reset_comes_before_a_hot_reset() {
    let mock = gpu_with_audio([5, 5], &[5]);
    mock.state().can_reset = true;
    assert_eq!(reset_on_host(&mock, "gpu").unwrap(), ResetMethod::Function);
    assert_eq!(mock.calls(), vec![Call::Reset]);
    // Neither kind: plainly no reset.
    let mock = gpu_with_audio([5, 5], &[5]);
    mock.state().hot_reset_peers = None;
    assert!(matches!(
        reset_on_host(&mock, "gpu"),
        Err(VfioError::NoReset)
    ));
}

#[test]
fn flr_resets_the_device_and_turns_everything_off() {
    let g = Guest::plug(virtio_gpu(), RomSource::Off);
    g.cfg_write(4, &0x0006u16.to_le_bytes());
    program_vector(&g, 0, 0xfee0_0000, 0x30, false);
    g.cfg_write(0x98 + 2, &0x8000u16.to_le_bytes());
    g.mock.take_calls();
    // Device Control of the PCIe capability (0x40 + 8): Initiate FLR and a bit of its own.
    g.cfg_write(0x48, &0x8010u16.to_le_bytes());
    let calls = g.mock.take_calls();
    assert!(calls.contains(&Call::Reset), "{calls:?}");
    assert!(
        calls.contains(&Call::DisableIrq(IrqKind::Msix)),
        "{calls:?}"
    );
    assert_eq!(
        g.mock.config_u16(0x48),
        0x0010,
        "the FLR bit is the VMM's, the rest the device's"
    );
    assert_eq!(g.cfg_read16(4) & 0x6, 0, "decoding off after the reset");
    assert!(g.slots().is_empty(), "BARs out of the guest");
    assert_eq!(g.cfg_read16(0x98 + 2) & 0x8000, 0);
}

#[test]
fn msi_programs_one_route_per_enabled_vector() {
    // 64-bit MSI, 4 vectors capable (MMC = 2), per-vector masks; INTx pin A.
    let mut msi = vec![0x05, 0, 0x84 | 0x01, 0x01];
    msi.resize(24, 0);
    let cfg = config_space((0x8086, 0x1234), 0x03_0000, &[(0, 0)], &[(0x50, msi)], 1);
    let mock = MockVfio::new(&cfg);
    mock.add_region(0, 1 << 20, RWM, None);
    mock.set_irqs(IrqKind::Intx, 1);
    mock.set_irqs(IrqKind::Msi, 4);
    let g = Guest::plug(mock, RomSource::Off);
    assert_eq!(
        g.cfg_read16(0x52) & 0x71,
        0,
        "off until the guest enables it"
    );
    g.cfg_write(0x54, &0xfee0_1000u32.to_le_bytes());
    g.cfg_write(0x58, &0u32.to_le_bytes());
    g.cfg_write(0x5c, &0x4040u16.to_le_bytes());
    g.cfg_write(0x60, &0b0100u32.to_le_bytes()); // vector 2 masked
    g.mock.take_calls();
    g.cfg_write(0x52, &(0x0020u16 | 1).to_le_bytes()); // MME = 2: four vectors
    let calls = g.mock.take_calls();
    assert!(
        calls.contains(&Call::EnableIrq {
            kind: IrqKind::Msi,
            vectors: 4
        }),
        "{calls:?}"
    );
    assert!(
        calls.contains(&Call::DisableIrq(IrqKind::Intx)),
        "{calls:?}"
    );
    let state = g.hv.state.lock().unwrap();
    let mut datas: Vec<u32> = state
        .msi_routes
        .values()
        .map(|&(a, d)| {
            assert_eq!(a, 0xfee0_1000);
            d
        })
        .collect();
    datas.sort();
    assert_eq!(datas, vec![0x4040, 0x4041, 0x4042, 0x4043]);
    assert_eq!(
        state.irqfds.iter().filter(|(g, _)| *g >= 24).count(),
        3,
        "vector 2 masked"
    );
    drop(state);
    assert_eq!(
        g.mock.peek(CONFIG_REGION, 0x54, 4),
        vec![0; 4],
        "MSI is not written to the device"
    );
    g.cfg_write(0x52, &0u16.to_le_bytes());
    assert!(g.mock.calls().contains(&Call::DisableIrq(IrqKind::Msi)));
    assert!(g.hv.state.lock().unwrap().msi_routes.is_empty());
}

#[test]
fn nvidia_bar0_window_serves_the_virtual_config_space() {
    let g = Guest::plug(nvidia(), RomSource::Off);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    let bar0 = g.bar(0);
    let dev = g.dev.lock().unwrap();
    assert!(!dev.bars().is_mapped(0, 0x88000), "the window is trapped");
    assert!(dev.bars().is_mapped(0, 0x87000) && dev.bars().is_mapped(0, 0x89000));
    drop(dev);
    let mut word = [0u8; 4];
    assert!(g.vm.mmio.read(bar0 + 0x88000, &mut word));
    assert_eq!(u32::from_le_bytes(word), 0x2335_10de);
    assert!(g.vm.mmio.read(bar0 + 0x88010, &mut word));
    assert_eq!(
        u64::from(u32::from_le_bytes(word)),
        bar0,
        "the guest's BAR0, not the host's"
    );
    // A write through the window is a config write: the command register turns decoding off.
    assert!(g.vm.mmio.write(bar0 + 0x88004, &0u16.to_le_bytes()));
    assert_eq!(g.cfg_read16(4) & 2, 0);
    assert_eq!(
        g.mock.peek(BAR0_REGION, 0x88004, 2),
        vec![0, 0],
        "nothing went to the device's BAR"
    );
}

#[test]
fn a_bar_of_hundreds_of_gib_goes_above_4g_as_one_slot() {
    let g = Guest::plug(nvidia(), RomSource::Off);
    assert_eq!(g.bar(1), pci::MMIO64_START);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    assert!(
        g.slots().contains(&(pci::MMIO64_START, 256 << 30)),
        "{:?}",
        g.slots()
    );
}

#[test]
fn guest_ram_is_mapped_for_dma_at_its_guest_addresses() {
    let hv = MockHypervisor::new();
    let vm = Vm::new(&hv, 4 << 30, true).unwrap();
    let dma = MockDma::default();
    let mut mapped = Vec::new();
    super::attach::map_ram(&dma, &vm, &mut mapped).unwrap();
    assert_eq!(mapped, vec![(0, 3 << 30), (1 << 32, 1 << 30)]);
    let calls = dma.calls.lock().unwrap();
    assert!(matches!(
        calls[1],
        Call::DmaMap {
            iova: 0x1_0000_0000,
            size: 0x4000_0000,
            ..
        }
    ));
}

#[test]
fn release_turns_interrupts_off_and_removes_slots() {
    let g = Guest::plug(virtio_gpu(), RomSource::Off);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    program_vector(&g, 0, 0xfee0_0000, 0x30, false);
    g.cfg_write(0x98 + 2, &0x8000u16.to_le_bytes());
    let Guest {
        hv, vm, mock, dev, ..
    } = g;
    drop(vm);
    drop(dev);
    let calls = mock.calls();
    assert!(
        calls.ends_with(&[
            Call::DisableIrq(IrqKind::Msix),
            Call::DisableIrq(IrqKind::Intx)
        ]) || calls.contains(&Call::DisableIrq(IrqKind::Msix)),
        "{calls:?}"
    );
    let state = hv.state.lock().unwrap();
    assert_eq!(
        state.memory_slots.len(),
        1,
        "only guest RAM is left: {:?}",
        state.memory_slots
    );
    assert!(state.msi_routes.is_empty());
}

#[test]
fn hostile_config_and_bar_accesses_never_panic() {
    let g = Guest::plug(virtio_gpu(), RomSource::Device);
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for _ in 0..20000 {
        let r = next();
        let len = [1usize, 2, 4, 8, 3][(r % 5) as usize];
        let value = next().to_le_bytes();
        let offset = (r >> 8) as usize % 0x1000;
        if r & 1 == 0 {
            g.vm.mmio.write(g.ecam(offset), &value[..len]);
        } else {
            let base = [g.bar(1), g.bar(4)][(r >> 40) as usize % 2];
            g.vm.mmio
                .write(base + (offset as u64 % 0x4000), &value[..len]);
            let mut out = [0u8; 8];
            g.vm.mmio
                .read(base + (offset as u64 % 0x4000), &mut out[..len]);
        }
    }
    // Still a working function afterwards.
    assert_eq!(g.cfg_read32(0), 0x1050_1af4);
}

#[test]
fn vfio_options_parse_and_bad_ones_say_why() {
    use super::attach::{RomChoice, VfioTarget};
    let spec = super::parse_vfio_spec(",host=0000:01:00.0,rombar=off,mmap=off:2+4").unwrap();
    assert_eq!(spec.target, VfioTarget::Host("0000:01:00.0".into()));
    assert_eq!(spec.rom, RomChoice::Off);
    assert_eq!(spec.unmapped_bars, vec![2, 4]);
    let spec =
        super::parse_vfio_spec(",sysfsdev=/sys/bus/mdev/devices/u,rom=/x.rom,mmap=off").unwrap();
    assert_eq!(
        spec.target,
        VfioTarget::Sysfs("/sys/bus/mdev/devices/u".into())
    );
    assert_eq!(spec.rom, RomChoice::File("/x.rom".into()));
    assert_eq!(spec.unmapped_bars, (0..6).collect::<Vec<_>>());
    for (bad, why) in [
        ("", "needs host=BDF"),
        (",host=1:0.0", "DDDD:BB:SS.F"),
        (",host=0000:01:00.0,mmap=off:7", "BARs are 0 to 5"),
        (",host=0000:01:00.0,x-vga=on", "unknown vfio option"),
        (",host", "not key=value"),
    ] {
        let err = super::parse_vfio_spec(bad).unwrap_err();
        assert!(err.contains(why), "{bad:?}: {err}");
    }
}

#[test]
fn an_unmapped_bar_is_trapped_whole() {
    let mock = bochs();
    let hv = MockHypervisor::new();
    let mut vm = Vm::new(&hv, 16 << 20, true).unwrap();
    let options = FunctionOptions {
        unmapped_bars: vec![2],
        ..FunctionOptions::new(RomSource::Off, 10)
    };
    let dev = VfioPciDevice::new(&mut vm, "t", Arc::new(mock), options).unwrap();
    assert!(dev.bars().is_mapped(0, 0));
    assert!(!dev.bars().is_mapped(2, 0));
}

#[test]
fn legacy_vga_ports_and_memory_reach_the_vga_region_and_nothing_else() {
    use super::api::VGA_REGION;
    let mock = bochs();
    let hv = MockHypervisor::new();
    let mut vm = Vm::new(&hv, 16 << 20, true).unwrap();
    assert!(
        vm.add_legacy_vga(Arc::new(mock.clone())).is_err(),
        "no VGA region"
    );
    mock.add_region(VGA_REGION, 0xc0000, RW, None);
    mock.fill(VGA_REGION, 0x3cc, &[0x67]);
    mock.fill(VGA_REGION, 0xb8000, &[0x41, 0x07]);
    vm.add_legacy_vga(Arc::new(mock.clone())).unwrap();
    let mut misc = [0u8];
    assert!(vm.pio.read(0x3cc, &mut misc));
    assert_eq!(misc, [0x67]);
    assert!(vm.pio.write(0x3d4, &[0x0e, 0x12]));
    assert_eq!(mock.peek(VGA_REGION, 0x3d4, 2), vec![0x0e, 0x12]);
    // 0x3bc..0x3c0 is inside the block but not VGA's: all ones, nothing forwarded.
    let mut gap = [0u8];
    assert!(vm.pio.read(0x3bd, &mut gap));
    assert_eq!(gap, [0xff]);
    assert!(vm.pio.write(0x3be, &[1]));
    assert_eq!(mock.peek(VGA_REGION, 0x3be, 1), vec![0]);
    // The memory window: text mode at 0xb8000 and the graphics window at 0xa0000 are the
    // device's, and guest RAM has a hole there (RAM below and above it stays).
    let mut cell = [0u8; 2];
    assert!(vm.mmio.read(0xb8000, &mut cell));
    assert_eq!(cell, [0x41, 0x07]);
    assert!(vm.mmio.write(0xa0010, &0xdead_beefu32.to_le_bytes()));
    assert_eq!(
        mock.peek(VGA_REGION, 0xa0010, 4),
        0xdead_beefu32.to_le_bytes()
    );
    let slots: Vec<(u64, u64)> = hv
        .state
        .lock()
        .unwrap()
        .memory_slots
        .values()
        .map(|&(g, s, _)| (g, s))
        .collect();
    assert!(slots.contains(&(0, 0xa0000)), "{slots:x?}");
    assert!(
        slots.contains(&(0xc0000, (16 << 20) - 0xc0000)),
        "{slots:x?}"
    );
    assert!(
        !slots.iter().any(|&(g, s)| g < 0xc0000 && g + s > 0xa0000),
        "{slots:x?}"
    );
    // One VGA function per VM.
    assert!(matches!(
        vm.add_legacy_vga(Arc::new(mock.clone())),
        Err(crate::vm::VmError::Vfio(VfioError::SecondVga))
    ));
}

#[test]
fn a_bar_placement_kvm_refuses_stays_out_and_the_next_move_works() {
    let g = Guest::plug(nvidia(), RomSource::Off);
    g.hv.state.lock().unwrap().max_gpa = Some(1 << 40);
    g.cfg_write(4, &0x0002u16.to_le_bytes());
    assert!(g.slots().contains(&(pci::MMIO64_START, 256 << 30)));
    // A hostile guest moves BAR1 (64-bit) to 2 TiB: KVM refuses, the area stays out.
    // BAR1's upper half is at 0x18.
    g.cfg_write(0x18, &0x200u32.to_le_bytes());
    assert!(
        !g.slots().iter().any(|&(_, size)| size == 256 << 30),
        "{:?}",
        g.slots()
    );
    // Back where it fits: placed again (nothing stale was left to remove).
    g.cfg_write(0x18, &((pci::MMIO64_START >> 32) as u32).to_le_bytes());
    assert!(
        g.slots().contains(&(pci::MMIO64_START, 256 << 30)),
        "{:?}",
        g.slots()
    );
}
