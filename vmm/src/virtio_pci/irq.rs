//! MSI-X delivery through the hypervisor: vector `v` is GSI `gsi_base + v`, an irqfd raises it,
//! and the GSI's route follows the message the guest wrote into the table.

use std::sync::Arc;

use tracing::warn;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::VirtioPciError;
use crate::hypervisor::Vm;
use crate::pci::{MsiMessage, MsiSink};

pub struct IrqfdMsiSink {
    vm: Arc<dyn Vm>,
    gsi_base: u32,
    irqfds: Vec<EventFd>,
    routed: Vec<bool>,
}

impl IrqfdMsiSink {
    /// Registers one irqfd per vector on GSIs `gsi_base..gsi_base + vectors` (24 and above:
    /// lower GSIs are the IOAPIC's).
    pub fn new(vm: Arc<dyn Vm>, gsi_base: u32, vectors: u16) -> Result<Self, VirtioPciError> {
        let mut irqfds = Vec::with_capacity(usize::from(vectors));
        for v in 0..u32::from(vectors) {
            let fd = EventFd::new(EFD_NONBLOCK)?;
            vm.register_irqfd(&fd, gsi_base + v)?;
            irqfds.push(fd);
        }
        Ok(IrqfdMsiSink {
            vm,
            gsi_base,
            irqfds,
            routed: vec![false; usize::from(vectors)],
        })
    }
}

impl MsiSink for IrqfdMsiSink {
    fn route(&mut self, vector: u16, message: MsiMessage) {
        let gsi = self.gsi_base + u32::from(vector);
        let result = if message.address == 0 {
            // A cleared entry: drop the route rather than point it at address 0.
            if std::mem::take(&mut self.routed[usize::from(vector)]) {
                self.vm.remove_msi_route(gsi)
            } else {
                Ok(())
            }
        } else {
            self.routed[usize::from(vector)] = true;
            self.vm.set_msi_route(gsi, message.address, message.data)
        };
        if let Err(err) = result {
            warn!(%err, vector, gsi, "virtio-pci: MSI route update failed");
        }
    }

    fn irqfd(&self, vector: u16) -> Option<&EventFd> {
        let index = usize::from(vector);
        (*self.routed.get(index)?).then(|| &self.irqfds[index])
    }

    fn fire(&mut self, vector: u16) {
        let Some(fd) = self.irqfds.get(usize::from(vector)) else {
            return;
        };
        if !self.routed[usize::from(vector)] {
            warn!(
                vector,
                "virtio-pci: vector fired before the guest routed it"
            );
            return;
        }
        if let Err(err) = fd.write(1) {
            warn!(%err, vector, "virtio-pci: irqfd write failed");
        }
    }
}

impl Drop for IrqfdMsiSink {
    fn drop(&mut self) {
        for (v, fd) in self.irqfds.iter().enumerate() {
            let _ = self.vm.unregister_irqfd(fd, self.gsi_base + v as u32);
        }
    }
}
