//! A passed-through function's interrupts: the device signals eventfds it was given with
//! VFIO_DEVICE_SET_IRQS, and each eventfd is a KVM irqfd, so an interrupt reaches the guest
//! without the VMM. The VMM only follows what the guest programs: MSI-X table entries and masks
//! (trapped), the MSI capability (shadowed), and INTx while neither is on.

use std::sync::{Arc, Mutex};

use tracing::{debug, warn};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::api::{IrqKind, VfioDeviceApi};
use super::config::MsiProgram;
use super::VfioError;
use crate::hypervisor::Vm as HvVm;
use crate::pci::{MsiMessage, MsiSink, Msix};

const MSIX_ENABLE: u16 = 1 << 15;

fn eventfds(count: usize) -> Result<Vec<EventFd>, VfioError> {
    (0..count)
        .map(|_| EventFd::new(EFD_NONBLOCK).map_err(VfioError::EventFd))
        .collect()
}

/// Keeps vector `index`'s irqfd registered exactly while it is routed and deliverable; KVM
/// checks a newly registered irqfd for a pending signal, so nothing raised while masked is lost.
struct Vector {
    routed: bool,
    deliverable: bool,
    registered: bool,
}

struct VectorTable {
    vm: Arc<dyn HvVm>,
    gsi_base: u32,
    fds: Vec<EventFd>,
    vectors: Vec<Vector>,
}

impl VectorTable {
    fn new(vm: Arc<dyn HvVm>, gsi_base: u32, count: usize) -> Result<Self, VfioError> {
        Ok(VectorTable {
            vm,
            gsi_base,
            fds: eventfds(count)?,
            vectors: (0..count)
                .map(|_| Vector {
                    routed: false,
                    deliverable: false,
                    registered: false,
                })
                .collect(),
        })
    }

    fn route(&mut self, index: usize, message: Option<MsiMessage>) {
        let gsi = self.gsi_base + index as u32;
        let Some(v) = self.vectors.get_mut(index) else {
            return;
        };
        let result = match message {
            Some(m) if m.address != 0 => {
                v.routed = true;
                self.vm.set_msi_route(gsi, m.address, m.data)
            }
            _ if std::mem::take(&mut v.routed) => self.vm.remove_msi_route(gsi),
            _ => Ok(()),
        };
        if let Err(err) = result {
            warn!(%err, gsi, "vfio: MSI route update failed");
        }
        self.sync(index);
    }

    fn set_deliverable(&mut self, index: usize, deliverable: bool) {
        if let Some(v) = self.vectors.get_mut(index) {
            v.deliverable = deliverable;
            self.sync(index);
        }
    }

    fn sync(&mut self, index: usize) {
        let gsi = self.gsi_base + index as u32;
        let (Some(v), Some(fd)) = (self.vectors.get_mut(index), self.fds.get(index)) else {
            return;
        };
        let want = v.routed && v.deliverable;
        if want == v.registered {
            return;
        }
        let result = if want {
            self.vm.register_irqfd(fd, gsi)
        } else {
            self.vm.unregister_irqfd(fd, gsi)
        };
        match result {
            Ok(()) => {
                v.registered = want;
                debug!(gsi, vector = index, registered = want, "vfio: vector irqfd");
            }
            Err(err) => warn!(%err, gsi, want, "vfio: irqfd update failed"),
        }
    }

    fn fd_refs(&self, count: usize) -> Vec<&EventFd> {
        self.fds.iter().take(count).collect()
    }

    /// Every vector off: unregistered and unrouted.
    fn clear(&mut self) {
        for index in 0..self.vectors.len() {
            self.vectors[index].deliverable = false;
            self.route(index, None);
        }
    }
}

/// The [`Msix`] model's sink: routes and masks move the irqfds; nothing is fired by the VMM.
struct MsixSink(Arc<Mutex<VectorTable>>);

impl MsixSink {
    fn table(&self) -> std::sync::MutexGuard<'_, VectorTable> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl MsiSink for MsixSink {
    fn route(&mut self, vector: u16, message: MsiMessage) {
        self.table().route(usize::from(vector), Some(message));
    }
    fn fire(&mut self, _vector: u16) {}
    fn masked(&mut self, vector: u16, masked: bool) {
        self.table().set_deliverable(usize::from(vector), !masked);
    }
}

/// MSI-X: the guest's table lives in [`Msix`]; the device gets one eventfd per vector when the
/// guest enables MSI-X and loses them when it disables it.
pub struct MsixIrq {
    pub model: Msix,
    table: Arc<Mutex<VectorTable>>,
    on_device: bool,
}

impl MsixIrq {
    pub fn new(vm: Arc<dyn HvVm>, gsi_base: u32, vectors: u16) -> Result<MsixIrq, VfioError> {
        let table = Arc::new(Mutex::new(VectorTable::new(
            vm,
            gsi_base,
            usize::from(vectors),
        )?));
        let model = Msix::new(vectors, Box::new(MsixSink(table.clone())))?;
        Ok(MsixIrq {
            model,
            table,
            on_device: false,
        })
    }

    fn table(&self) -> std::sync::MutexGuard<'_, VectorTable> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn enabled(&self) -> bool {
        self.on_device
    }

    pub fn set_control(&mut self, api: &dyn VfioDeviceApi, control: u16) {
        let enable = control & MSIX_ENABLE != 0;
        debug!(
            control = format_args!("{control:#06x}"),
            on_device = self.on_device,
            "vfio: MSI-X control"
        );
        if enable && !self.on_device {
            let result = {
                let table = self.table.lock().unwrap_or_else(|e| e.into_inner());
                api.enable_irq(
                    IrqKind::Msix,
                    &table.fd_refs(usize::from(self.model.vectors())),
                )
            };
            match result {
                Ok(()) => self.on_device = true,
                Err(err) => warn!(%err, "vfio: enabling MSI-X on the device failed"),
            }
        }
        self.model.set_control(control);
        if !enable && self.on_device {
            if let Err(err) = api.disable_irq(IrqKind::Msix) {
                warn!(%err, "vfio: disabling MSI-X on the device failed");
            }
            self.on_device = false;
        }
    }

    /// Off on the device, the table back to reset (every vector masked).
    pub fn reset(&mut self, api: &dyn VfioDeviceApi) {
        self.set_control(api, 0);
        self.model.reset();
        self.table().clear();
    }
}

/// MSI: up to 32 vectors, vector `i` raising `data | i` at the programmed address.
pub struct MsiIrq {
    table: VectorTable,
    on_device: Option<u32>,
}

impl MsiIrq {
    pub fn new(vm: Arc<dyn HvVm>, gsi_base: u32, max_vectors: u32) -> Result<MsiIrq, VfioError> {
        Ok(MsiIrq {
            table: VectorTable::new(vm, gsi_base, max_vectors.clamp(1, 32) as usize)?,
            on_device: None,
        })
    }

    pub fn enabled(&self) -> bool {
        self.on_device.is_some()
    }

    pub fn program(&mut self, api: &dyn VfioDeviceApi, p: MsiProgram) {
        let count = (p.vectors as usize).min(self.table.vectors.len());
        if !p.enabled {
            self.table.clear();
            if self.on_device.take().is_some() {
                if let Err(err) = api.disable_irq(IrqKind::Msi) {
                    warn!(%err, "vfio: disabling MSI failed");
                }
            }
            return;
        }
        for i in 0..self.table.vectors.len() {
            let message = (i < count).then_some(MsiMessage {
                address: p.address,
                data: u32::from(p.data) | i as u32,
            });
            self.table.route(i, message);
            self.table
                .set_deliverable(i, i < count && p.mask & (1 << i) == 0);
        }
        if self.on_device != Some(count as u32) {
            if self.on_device.is_some() {
                let _ = api.disable_irq(IrqKind::Msi);
            }
            match api.enable_irq(IrqKind::Msi, &self.table.fd_refs(count)) {
                Ok(()) => self.on_device = Some(count as u32),
                Err(err) => {
                    warn!(%err, "vfio: enabling MSI on the device failed");
                    self.on_device = None;
                }
            }
        }
    }
}

/// INTx: a level-triggered legacy line; the guest's EOI resamples it and unmasks the device.
pub struct IntxIrq {
    vm: Arc<dyn HvVm>,
    pub gsi: u32,
    fd: EventFd,
    resample: EventFd,
    on: bool,
}

impl IntxIrq {
    pub fn new(vm: Arc<dyn HvVm>, gsi: u32) -> Result<IntxIrq, VfioError> {
        let fd = EventFd::new(EFD_NONBLOCK).map_err(VfioError::EventFd)?;
        let resample = EventFd::new(EFD_NONBLOCK).map_err(VfioError::EventFd)?;
        Ok(IntxIrq {
            vm,
            gsi,
            fd,
            resample,
            on: false,
        })
    }

    pub fn enabled(&self) -> bool {
        self.on
    }

    pub fn set(&mut self, api: &dyn VfioDeviceApi, on: bool) {
        if on == self.on {
            return;
        }
        let result = if on {
            api.enable_irq(IrqKind::Intx, &[&self.fd])
                .and_then(|()| api.set_intx_unmask_fd(&self.resample))
                .and_then(|()| {
                    Ok(self
                        .vm
                        .register_resample_irqfd(&self.fd, &self.resample, self.gsi)?)
                })
        } else {
            let unregistered = self.vm.unregister_irqfd(&self.fd, self.gsi);
            api.disable_irq(IrqKind::Intx)
                .and(unregistered.map_err(VfioError::from))
        };
        match result {
            Ok(()) => self.on = on,
            Err(err) => warn!(%err, on, gsi = self.gsi, "vfio: INTx update failed"),
        }
    }
}

/// The three kinds together: INTx runs while neither MSI nor MSI-X is enabled, as on hardware.
#[derive(Default)]
pub struct Interrupts {
    pub msix: Option<MsixIrq>,
    pub msi: Option<MsiIrq>,
    pub intx: Option<IntxIrq>,
}

impl Interrupts {
    fn message_signalled(&self) -> bool {
        self.msix.as_ref().is_some_and(MsixIrq::enabled)
            || self.msi.as_ref().is_some_and(MsiIrq::enabled)
    }

    fn sync_intx(&mut self, api: &dyn VfioDeviceApi) {
        let want = !self.message_signalled();
        if let Some(intx) = self.intx.as_mut() {
            intx.set(api, want);
        }
    }

    /// Starts the function as it comes out of reset: INTx if it has a line.
    pub fn start(&mut self, api: &dyn VfioDeviceApi) {
        self.sync_intx(api);
    }

    pub fn msix_control(&mut self, api: &dyn VfioDeviceApi, control: u16) {
        if control & MSIX_ENABLE != 0 {
            if let Some(intx) = self.intx.as_mut() {
                intx.set(api, false);
            }
        }
        if let Some(msix) = self.msix.as_mut() {
            msix.set_control(api, control);
        }
        self.sync_intx(api);
    }

    pub fn msi(&mut self, api: &dyn VfioDeviceApi, program: MsiProgram) {
        if program.enabled {
            if let Some(intx) = self.intx.as_mut() {
                intx.set(api, false);
            }
        }
        if let Some(msi) = self.msi.as_mut() {
            msi.program(api, program);
        }
        self.sync_intx(api);
    }

    /// Everything off (a reset, or the VM ends); with `restart`, INTx comes back on.
    pub fn stop(&mut self, api: &dyn VfioDeviceApi, restart: bool) {
        if let Some(msix) = self.msix.as_mut() {
            msix.reset(api);
        }
        if let Some(msi) = self.msi.as_mut() {
            msi.program(api, MsiProgram::default());
        }
        if let Some(intx) = self.intx.as_mut() {
            intx.set(api, false);
        }
        if restart {
            self.sync_intx(api);
        }
    }
}
