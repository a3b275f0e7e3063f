//! VFIO passthrough of a whole PCI function (a GPU, or a mediated device) to the guest.
//!
//! - [`api`]: the narrow trait the device code uses; [`real`] implements it over vfio-ioctls,
//!   [`mock`] records what is done to it (tests run without /dev/vfio).
//! - [`config`]: the guest's view of config space: BARs, ROM, command, MSI and MSI-X shadowed;
//!   the rest passed through with write masks.
//! - [`bars`]: each BAR's mmap-able areas as KVM memory slots that follow the guest's BAR moves;
//!   the rest (MSI-X table, PBA, small BARs) trapped and forwarded at the guest's access width.
//! - [`irq`]: MSI, MSI-X and INTx through VFIO_DEVICE_SET_IRQS eventfds wired to KVM irqfds.
//! - [`quirks`]: per vendor/device fix-ups (NVIDIA's BAR0 mirror of config space, legacy VGA).
//! - [`display`]: a mediated device's display (its plane as a dma-buf or region) as a scanout.
//! - [`device`]: the [`crate::pci::PciDevice`] tying them together; [`attach`] opens a host
//!   device, maps guest RAM for DMA and plugs it into the VM.

pub mod api;
pub mod attach;
pub mod bars;
pub mod config;
pub mod device;
pub mod display;
pub mod irq;
pub mod mock;
pub mod quirks;
pub mod real;
#[cfg(test)]
mod tests;

pub use attach::{parse_vfio_spec, VfioSpec};
pub use device::{FunctionOptions, VfioPciDevice};

/// Why a VFIO operation failed.
#[derive(Debug, thiserror::Error)]
pub enum VfioError {
    #[error("cannot open the VFIO container /dev/vfio/vfio (is vfio-pci loaded and is there an IOMMU? `vgpu vfio list` shows the groups)")]
    Container(#[source] vfio_ioctls::VfioError),
    #[error("cannot open {device} through VFIO (bound to vfio-pci, group viable, not busy, permitted? `vgpu vfio list`)")]
    Open {
        device: String,
        #[source]
        source: vfio_ioctls::VfioError,
    },
    #[error("the device has no region {0} (or it cannot be mapped)")]
    NoRegion(u32),
    #[error("mapping region {region} at {offset:#x}")]
    Mmap {
        region: u32,
        offset: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("DMA mapping of {size:#x} bytes at {iova:#x}")]
    Dma {
        iova: u64,
        size: u64,
        #[source]
        source: vfio_ioctls::VfioError,
    },
    #[error("wiring {kind:?} interrupts")]
    Irq {
        kind: api::IrqKind,
        #[source]
        source: vfio_ioctls::VfioError,
    },
    #[error("only one passed function per VM can have the legacy VGA ranges (vga=on)")]
    SecondVga,
    #[error("the device's display plane: {0}")]
    Plane(String),
    #[error("the device cannot be reset")]
    NoReset,
    #[error("resetting the device")]
    Reset(#[source] std::io::Error),
    #[error("a hot reset would also reset group {0}, which this VM does not hold (pass or bind every function of the bus)")]
    GroupNotHeld(u32),
    #[error("hot reset of the bus")]
    HotReset(#[source] std::io::Error),
    #[error("the ROM file {path}")]
    RomFile {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the device's config space cannot be read")]
    ConfigUnreadable,
    #[error(transparent)]
    Pci(#[from] crate::pci::PciError),
    #[error(transparent)]
    Hypervisor(#[from] crate::hypervisor::HypervisorError),
    #[error("{0}")]
    Host(#[from] vgpu_mdev::vfio_host::VfioHostError),
    #[error("plugging the function into the VM: {0}")]
    Plug(String),
    #[error("an eventfd")]
    EventFd(#[source] std::io::Error),
    #[error("the mock refuses: {0}")]
    Mock(&'static str),
}
