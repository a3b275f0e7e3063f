//! The virtio-pci modern transport (virtio 1.2, 4.1): a PCI function whose BAR 0 holds the common,
//! ISR, device-specific and notification structures plus the MSI-X table, and whose optional
//! BAR 2 is a host-visible shared-memory region.
//!
//! The transport knows nothing of what the device does: a device implements [`VirtioDevice`]
//! (the GPU adapter is in [`gpu`]). Queue notifications arrive through ioeventfds on a worker
//! thread (or inline, from a trapped BAR write, where no ioeventfd is registered); interrupts
//! leave through MSI-X vectors routed to irqfds.

pub mod common;
pub mod gpu;
pub mod irq;
pub mod shm;
pub mod transport;
pub mod worker;

#[cfg(test)]
pub(crate) mod test_guest;
#[cfg(test)]
mod tests;

use std::sync::{Arc, Mutex};

use virtio_queue::Queue;

use vm_memory::GuestMemoryMmap as GuestRam;

pub use irq::IrqfdMsiSink;
pub use transport::VirtioPciDevice;
pub use worker::Worker;

/// Feature bits the transport itself offers and understands.
pub const VIRTIO_F_VERSION_1: u64 = 1 << 32;
/// Ring features virtio-queue implements for every device: indirect descriptor tables and
/// used/avail event indices (fewer notifications both ways).
pub const VIRTIO_RING_F_INDIRECT_DESC: u64 = 1 << 28;
pub const VIRTIO_RING_F_EVENT_IDX: u64 = 1 << 29;
/// "No vector" in MSI-X vector fields.
pub const NO_VECTOR: u16 = 0xffff;
/// PCI vendor of every virtio device; device IDs are 0x1040 + the virtio device type.
pub const VIRTIO_PCI_VENDOR: u16 = 0x1af4;
pub const VIRTIO_PCI_DEVICE_BASE: u16 = 0x1040;

/// Device status bits (virtio 1.2, 2.1).
pub mod status {
    pub const ACKNOWLEDGE: u8 = 1;
    pub const DRIVER: u8 = 2;
    pub const DRIVER_OK: u8 = 4;
    pub const FEATURES_OK: u8 = 8;
    pub const DEVICE_NEEDS_RESET: u8 = 0x40;
    pub const FAILED: u8 = 0x80;
}

/// Why the transport could not be built or run.
#[derive(Debug, thiserror::Error)]
pub enum VirtioPciError {
    #[error("PCI configuration")]
    Pci(#[from] crate::pci::PciError),
    #[error("hypervisor call")]
    Hypervisor(#[from] crate::hypervisor::HypervisorError),
    #[error("creating an eventfd or epoll")]
    Io(#[from] std::io::Error),
    #[error("virtqueue of size {0} cannot be created")]
    Queue(u16),
    #[error("device has {0} queues; the transport supports 1..=64")]
    QueueCount(usize),
    #[error("GPU backend: {0}")]
    Backend(String),
    #[error("plugging the device into the VM: {0}")]
    Attach(String),
}

/// What the transport tells a device when the guest rings a queue: notify the driver or not.
pub type NeedsInterrupt = bool;

/// A virtio device as the transport drives it.
pub trait VirtioDevice: Send {
    /// The virtio device type (16 for GPU).
    fn device_type(&self) -> u16;
    /// Maximum size of each virtqueue; the number of entries is the number of queues.
    fn queue_max_sizes(&self) -> Vec<u16>;
    /// Device-specific feature bits; the transport adds VIRTIO_F_VERSION_1 and
    /// [`VirtioDevice::ring_features`].
    fn device_features(&self) -> u64;
    /// Ring features offered besides VERSION_1: what virtio-queue implements, unless the rings
    /// are served elsewhere by something that implements less.
    fn ring_features(&self) -> u64 {
        VIRTIO_RING_F_INDIRECT_DESC | VIRTIO_RING_F_EVENT_IDX
    }
    /// The features the driver accepted (transport bits included).
    fn ack_features(&mut self, features: u64);
    /// Device-specific configuration space.
    fn read_config(&self, offset: u64, data: &mut [u8]);
    fn write_config(&mut self, offset: u64, data: &[u8]);
    /// Serves the available buffers of queue `index`. `queues` is every queue, for devices that
    /// complete work on one queue while serving another.
    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestRam,
    ) -> NeedsInterrupt;
    /// Work that completes asynchronously (fences): returns the queues to interrupt for.
    fn poll(&mut self, _queues: &mut [Queue], _mem: &GuestRam) -> Vec<usize> {
        Vec::new()
    }
    /// How often the worker polls the device while nothing else happens: often for devices
    /// with asynchronous completions (fences); `None` for one that only needs polling when one
    /// of its [`VirtioDevice::poll_fds`] fires (an idle VM then wakes no VMM thread).
    fn poll_interval(&self) -> Option<std::time::Duration> {
        Some(std::time::Duration::from_millis(5))
    }
    /// Descriptors whose events (`EventSet` bits) mean the device wants a poll now: a
    /// backend's socket hanging up, a backend's request waiting. Asked again after each poll.
    fn poll_fds(&self) -> Vec<(std::os::fd::RawFd, vmm_sys_util::epoll::EventSet)> {
        Vec::new()
    }
    /// Whether the configuration space changed since the last call (config interrupt).
    fn take_config_changed(&mut self) -> bool {
        false
    }
    /// Size of the host-visible shared-memory region the device wants (shmid 1), if any.
    fn shm_size(&self) -> Option<u64> {
        None
    }
    /// The shared-memory region's BAR moved (or stopped decoding: `None`).
    fn shm_moved(&mut self, _base: Option<u64>) {}
    /// Whether another process serves the queues right now (vhost-user). Then the transport
    /// never calls `process_queue`: it hands the rings and their eventfds over through
    /// [`VirtioDevice::activate`] and relays the backend's used-buffer signals as interrupts.
    fn queues_served_elsewhere(&self) -> bool {
        false
    }
    /// The driver set DRIVER_OK: `kicks[i]` is signalled when the guest notifies queue `i`,
    /// `calls[i]` is for whoever serves queue `i` to signal used buffers. Only called for
    /// devices whose queues are served elsewhere; an error fails the device.
    fn activate(
        &mut self,
        _queues: &[Queue],
        _kicks: &[vmm_sys_util::eventfd::EventFd],
        _calls: &[vmm_sys_util::eventfd::EventFd],
    ) -> Result<(), String> {
        Ok(())
    }
    /// Queue `index`'s backend is to signal used buffers on `call` from now on (the transport
    /// switches between an irqfd that interrupts the guest directly and its own eventfd while
    /// the vector is masked). Only called after a successful `activate`.
    fn set_call(&mut self, _index: usize, _call: &vmm_sys_util::eventfd::EventFd) {}
    /// Whether the device failed for good (its backend went away): the transport then sets
    /// DEVICE_NEEDS_RESET and raises a config interrupt, once.
    fn failed(&mut self) -> bool {
        false
    }
    /// Whether the failure `failed` reported is over (a backend came back and took the rings
    /// over): the transport then clears DEVICE_NEEDS_RESET and raises a config interrupt.
    fn recovered(&mut self) -> bool {
        false
    }
    /// Device reset by the driver (status 0).
    fn reset(&mut self);
    /// The concrete device, for host-side requests (screenshots, display mode changes).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}

/// Delivers nothing: raw-mode VMs have no interrupt controller, so their guests poll.
struct NoInterrupts;

impl crate::pci::MsiSink for NoInterrupts {
    fn route(&mut self, _vector: u16, _message: crate::pci::MsiMessage) {}
    fn fire(&mut self, vector: u16) {
        tracing::trace!(
            vector,
            "virtio-pci: no interrupt controller; vector dropped"
        );
    }
}

/// Puts `device` on the virtio-pci transport, plugs it into bus 0 of `vm` with its MSI-X
/// vectors on irqfds, and starts the worker that serves it.
pub fn plug(
    vm: &mut crate::vm::Vm,
    device: Box<dyn VirtioDevice>,
    name: &str,
) -> Result<(Arc<Mutex<VirtioPciDevice>>, Worker), VirtioPciError> {
    let vectors = device.queue_max_sizes().len() as u16 + 1;
    let msi: Box<dyn crate::pci::MsiSink> = if vm.irqchip {
        let gsi_base = vm.allocate_gsi();
        for _ in 1..vectors {
            vm.allocate_gsi();
        }
        Box::new(IrqfdMsiSink::new(vm.hv.clone(), gsi_base, vectors)?)
    } else {
        Box::new(NoInterrupts)
    };
    let transport = VirtioPciDevice::new(device, vm.memory.ram.clone(), msi, Some(vm.hv.clone()))?;
    let transport = Arc::new(Mutex::new(transport));
    let slot = vm
        .add_pci_device(transport.clone())
        .map_err(|e| VirtioPciError::Attach(e.to_string()))?;
    tracing::info!(slot, "{name} on PCI 00:{slot:02x}.0");
    let worker = Worker::spawn(transport.clone(), name)?;
    Ok((transport, worker))
}
