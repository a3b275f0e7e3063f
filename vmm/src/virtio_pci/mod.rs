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
mod tests;

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
    /// Device-specific feature bits; the transport adds VIRTIO_F_VERSION_1 and the ring features.
    fn device_features(&self) -> u64;
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
    /// Device reset by the driver (status 0).
    fn reset(&mut self);
    /// The concrete device, for host-side requests (screenshots, display mode changes).
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any;
}
