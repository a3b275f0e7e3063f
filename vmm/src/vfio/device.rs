//! A host PCI function passed to the guest: a [`PciDevice`] whose config space is the
//! [`ConfigView`], whose BARs are the device's own memory where they can be mapped
//! ([`BarMaps`]) and forwarded accesses elsewhere, and whose interrupts are eventfds wired into
//! KVM ([`Interrupts`]).

use std::sync::Arc;

use tracing::{debug, info, warn};

use super::api::{IrqKind, ResetPeer, VfioDeviceApi, ROM_REGION};
use super::bars::{BarMaps, Trap};
use super::config::{ConfigEvent, ConfigView, MsixLayout, RomSource};
use super::irq::{Interrupts, IntxIrq, MsiIrq, MsixIrq};
use super::quirks::{self, DeviceId, Quirk, Redirect};
use super::VfioError;
use crate::pci::config::{CONFIG_SPACE_SIZE, NUM_REGIONS};
use crate::pci::{PciConfig, PciDevice, ROM_BAR};
use crate::vm::Vm;

/// Fields drop in order: the BAR mappings and eventfds go before the device (`api`), whose
/// group cannot leave its container while a mapping of the device file is alive.
pub struct VfioPciDevice {
    bars: BarMaps,
    irqs: Interrupts,
    name: String,
    view: ConfigView,
    quirks: Vec<Box<dyn Quirk>>,
    rom: RomSource,
    /// Accesses per BAR (ROM last) that reached the VMM: mapped areas never add to these.
    trapped: [u64; NUM_REGIONS],
    api: Arc<dyn VfioDeviceApi>,
}

/// How a function is passed.
#[derive(Debug, Clone)]
pub struct FunctionOptions {
    pub rom: RomSource,
    /// The legacy line for a function that uses INTx.
    pub intx_gsi: u32,
    /// BARs never mapped into the guest: every access to them is trapped and forwarded (all of
    /// them is QEMU's x-no-mmap), for debugging and for measuring what mapping saves.
    pub unmapped_bars: Vec<usize>,
}

impl FunctionOptions {
    pub fn new(rom: RomSource, intx_gsi: u32) -> Self {
        FunctionOptions {
            rom,
            intx_gsi,
            unmapped_bars: Vec::new(),
        }
    }
}

/// How a function was reset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ResetMethod {
    /// The kernel's own reset of the function (FLR, PM, or its bus when it is alone there).
    Function,
    /// A hot reset of its bus, which reset these functions too.
    Bus(Vec<ResetPeer>),
}

/// Resets the function the best way it has: the kernel's function reset, else a hot reset of
/// its bus when this VM holds every group on that bus (a GPU without FLR beside its audio
/// function, as QEMU's vfio does).
pub fn reset_on_host(api: &dyn VfioDeviceApi, name: &str) -> Result<ResetMethod, VfioError> {
    if api.can_reset() {
        match api.reset() {
            Ok(()) => return Ok(ResetMethod::Function),
            Err(err) => {
                debug!(%err, device = name, "vfio: function reset failed; a hot reset next")
            }
        }
    }
    let peers = api.hot_reset_peers().ok_or(VfioError::NoReset)?;
    let mut groups: Vec<u32> = peers.iter().map(|p| p.group).collect();
    groups.sort_unstable();
    groups.dedup();
    api.hot_reset(&groups)?;
    let list: Vec<String> = peers.iter().map(ToString::to_string).collect();
    info!(device = name, peers = %list.join(", "), "vfio: hot reset of the bus");
    Ok(ResetMethod::Bus(peers))
}

impl VfioPciDevice {
    /// Builds the guest's view of `api`: resets the function (where it can be), probes its
    /// config space and BARs, maps what can be mapped, and prepares its interrupts.
    pub fn new(
        vm: &mut Vm,
        name: &str,
        api: Arc<dyn VfioDeviceApi>,
        options: FunctionOptions,
    ) -> Result<VfioPciDevice, VfioError> {
        let FunctionOptions {
            rom,
            intx_gsi,
            unmapped_bars,
        } = options;
        if let Err(err) = reset_on_host(api.as_ref(), name) {
            warn!(
                device = name,
                %err,
                "vfio: the function cannot be reset; it starts as the host left it"
            );
        }
        let mut view = ConfigView::probe(api.as_ref(), &rom)?;
        let id = DeviceId {
            vendor: view.shadow.read_u16(0),
            device: view.shadow.read_u16(2),
            pcie: view.caps.pcie.is_some(),
            bar0_size: view.shadow.bar(0).map(|b| b.size),
        };
        let quirks = quirks::for_device(&id);
        let mut traps: Vec<Trap> = quirks.iter().flat_map(|q| q.traps()).collect();
        if let Some(msix) = view.caps.msix {
            traps.push((msix.table.0, msix.table.1, msix.table_len()));
            traps.push((msix.pba.0, msix.pba.1, msix.pba_len()));
        }
        let specs: Vec<_> = view.shadow.bars().collect();
        let unmapped = specs.iter().filter(|b| unmapped_bars.contains(&b.index));
        traps.extend(unmapped.map(|b| (b.index, 0, b.size)));
        let hv = vm.hv.clone();
        let bars = BarMaps::map(api.as_ref(), hv.clone(), &specs, &traps, || {
            vm.allocate_memory_slot()
        })?;
        let mut irqs = Interrupts::default();
        if let Some(msix) = view.caps.msix {
            let vectors = msix.vectors.min(api.irq_count(IrqKind::Msix) as u16).max(1);
            let base = vm.allocate_gsi();
            for _ in 1..vectors {
                vm.allocate_gsi();
            }
            irqs.msix = Some(MsixIrq::new(hv.clone(), base, vectors)?);
        }
        if let Some(msi) = view.caps.msi {
            let vectors = (1u32 << msi.max_vectors_log2.min(5)).min(api.irq_count(IrqKind::Msi));
            if vectors > 0 {
                let base = vm.allocate_gsi();
                for _ in 1..vectors {
                    vm.allocate_gsi();
                }
                irqs.msi = Some(MsiIrq::new(hv.clone(), base, vectors)?);
            }
        }
        if view.interrupt_pin(api.as_ref()) != 0 && api.irq_count(IrqKind::Intx) > 0 && vm.irqchip {
            irqs.intx = Some(IntxIrq::new(hv, intx_gsi)?);
            view.shadow.write(0x3c, &[intx_gsi as u8]);
        }
        irqs.start(api.as_ref());
        info!(
            device = name,
            vendor = format_args!("{:04x}", id.vendor),
            device_id = format_args!("{:04x}", id.device),
            bars = specs.len(),
            quirks = ?quirks.iter().map(|q| q.name()).collect::<Vec<_>>(),
            msix = view.caps.msix.map(|m| m.vectors),
            msi = view.caps.msi.is_some(),
            intx = irqs.intx.is_some(),
            "vfio: function ready"
        );
        Ok(VfioPciDevice {
            name: name.to_string(),
            api,
            view,
            bars,
            irqs,
            quirks,
            rom,
            trapped: [0; NUM_REGIONS],
        })
    }

    pub fn bars(&self) -> &BarMaps {
        &self.bars
    }

    pub fn view(&self) -> &ConfigView {
        &self.view
    }

    /// How many guest accesses to each BAR (the ROM last) the VMM had to serve.
    pub fn trapped_accesses(&self) -> [u64; NUM_REGIONS] {
        self.trapped
    }

    fn act(&mut self, event: ConfigEvent) {
        match event {
            ConfigEvent::Command => {}
            ConfigEvent::MsixControl(control) => self.irqs.msix_control(self.api.as_ref(), control),
            ConfigEvent::Msi(program) => self.irqs.msi(self.api.as_ref(), program),
            ConfigEvent::Flr => self.reset_function(),
        }
    }

    /// A Function Level Reset the guest asked for: interrupts off, the device reset, config
    /// back to power-on (decoding off, so the root takes the BARs out of the guest).
    pub fn reset_function(&mut self) {
        info!(device = %self.name, "vfio: function reset by the guest");
        self.irqs.stop(self.api.as_ref(), false);
        if let Err(err) = reset_on_host(self.api.as_ref(), &self.name) {
            warn!(%err, device = %self.name, "vfio: reset failed");
        }
        self.view.reset();
        self.irqs.start(self.api.as_ref());
    }

    fn msix_access(&self, bar: usize, offset: u64, len: usize) -> Option<(MsixLayout, bool)> {
        let msix = self.view.caps.msix?;
        let inside = |(b, start): (usize, u64), size: u64| {
            b == bar && offset >= start && offset + len as u64 <= start + size
        };
        if inside(msix.table, msix.table_len()) {
            Some((msix, true))
        } else if inside(msix.pba, msix.pba_len()) {
            Some((msix, false))
        } else {
            None
        }
    }

    fn quirk_redirect(&self, bar: usize, offset: u64, len: usize) -> Option<Redirect> {
        self.quirks
            .iter()
            .find_map(|q| q.redirect(bar, offset, len))
    }

    fn rom_read(&self, offset: u64, data: &mut [u8]) {
        data.fill(0xff);
        match &self.rom {
            RomSource::File(bytes) => {
                for (i, out) in data.iter_mut().enumerate() {
                    if let Some(b) = usize::try_from(offset).ok().and_then(|o| bytes.get(o + i)) {
                        *out = *b;
                    }
                }
            }
            RomSource::Device => {
                if !self.api.read(ROM_REGION, offset, data) {
                    data.fill(0xff);
                }
            }
            RomSource::Off => {}
        }
    }
}

impl PciDevice for VfioPciDevice {
    fn config(&self) -> &PciConfig {
        &self.view.shadow
    }

    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.view.shadow
    }

    fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        self.view.read(self.api.as_ref(), offset, data);
    }

    fn config_write(&mut self, offset: usize, data: &[u8]) -> bool {
        if !matches!(data.len(), 1 | 2 | 4) || offset % 4 + data.len() > 4 {
            return false;
        }
        if let Some(event) = self.view.write(self.api.as_ref(), offset, data) {
            self.act(event);
        }
        true
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if let Some(count) = self.trapped.get_mut(bar) {
            *count += 1;
        }
        if bar == ROM_BAR {
            return self.rom_read(offset, data);
        }
        if let Some(Redirect::Config(at)) = self.quirk_redirect(bar, offset, data.len()) {
            data.fill(0);
            if at + data.len() <= CONFIG_SPACE_SIZE && at % 4 + data.len() <= 4 {
                self.view.read(self.api.as_ref(), at, data);
            }
            return;
        }
        if let Some((msix, is_table)) = self.msix_access(bar, offset, data.len()) {
            if is_table {
                if let Some(irq) = &self.irqs.msix {
                    irq.model.read_table(offset - msix.table.1, data);
                }
                return;
            }
        }
        if !self.api.read(bar as u32, offset, data) {
            warn!(device = %self.name, bar, offset, len = data.len(), "vfio: BAR read refused");
            data.fill(0xff);
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if let Some(count) = self.trapped.get_mut(bar) {
            *count += 1;
        }
        if bar == ROM_BAR {
            return;
        }
        if let Some(Redirect::Config(at)) = self.quirk_redirect(bar, offset, data.len()) {
            if at + data.len() <= CONFIG_SPACE_SIZE {
                self.config_write(at, data);
            }
            return;
        }
        if let Some((msix, is_table)) = self.msix_access(bar, offset, data.len()) {
            debug!(
                bar,
                offset,
                len = data.len(),
                is_table,
                "vfio: MSI-X table write"
            );
            if is_table {
                if let Some(irq) = self.irqs.msix.as_mut() {
                    irq.model.write_table(offset - msix.table.1, data);
                }
            }
            // The PBA is read-only.
            return;
        }
        if !self.api.write(bar as u32, offset, data) {
            warn!(device = %self.name, bar, offset, len = data.len(), "vfio: BAR write refused");
        }
    }

    fn bar_moved(&mut self, bar: usize, _old: Option<u64>, new: Option<u64>) {
        self.bars.moved(bar, new);
    }
}

impl Drop for VfioPciDevice {
    fn drop(&mut self) {
        info!(device = %self.name, trapped = ?self.trapped, "vfio: released (trapped BAR accesses, BAR0..5 and ROM)");
        self.irqs.stop(self.api.as_ref(), false);
        self.bars.unmap_all();
    }
}
