//! The narrow face of a VFIO PCI device that the passthrough code uses, so config
//! virtualisation, BAR mapping, IRQ wiring, DMA mapping, reset and quirks are tested against
//! [`super::mock`] without /dev/vfio. [`super::real`] implements it over vfio-ioctls.

use std::sync::Arc;

use vmm_sys_util::eventfd::EventFd;

use super::VfioError;

/// Region indices of vfio-pci (linux/vfio.h `VFIO_PCI_*_REGION_INDEX`).
pub const BAR0_REGION: u32 = 0;
pub const ROM_REGION: u32 = 6;
pub const CONFIG_REGION: u32 = 7;
pub const VGA_REGION: u32 = 8;

/// Interrupt indices of vfio-pci (`VFIO_PCI_*_IRQ_INDEX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum IrqKind {
    Intx = 0,
    Msi = 1,
    Msix = 2,
}

/// Region flags (`VFIO_REGION_INFO_FLAG_*`).
pub const REGION_READ: u32 = 1;
pub const REGION_WRITE: u32 = 2;
pub const REGION_MMAP: u32 = 4;

/// One region as VFIO_DEVICE_GET_REGION_INFO describes it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegionInfo {
    pub flags: u32,
    pub size: u64,
    /// Where the region starts in the device file (for pread/pwrite/mmap).
    pub offset: u64,
    /// The sparse-mmap capability's areas (offset, size inside the region), if it has one: only
    /// these may be mapped (the kernel leaves out the MSI-X table and PBA this way).
    pub sparse: Option<Vec<(u64, u64)>>,
    /// The MSIX_MAPPABLE capability: the table's page may be mapped too (we still trap it).
    pub msix_mappable: bool,
}

impl RegionInfo {
    /// The areas of this region the VMM may mmap: the sparse areas, or the whole region when
    /// it is mappable without that capability.
    pub fn mappable_areas(&self) -> Vec<(u64, u64)> {
        if self.flags & REGION_MMAP == 0 {
            return Vec::new();
        }
        match &self.sparse {
            Some(areas) => areas.clone(),
            None => vec![(0, self.size)],
        }
    }
}

/// A function that a hot reset of a device resets with it (VFIO_DEVICE_GET_PCI_HOT_RESET_INFO's
/// `vfio_pci_dependent_device`): everything on the bus below the same bridge, such as a GPU's
/// audio function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResetPeer {
    pub group: u32,
    pub segment: u16,
    pub bus: u8,
    pub devfn: u8,
}

impl std::fmt::Display for ResetPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:04x}:{:02x}:{:02x}.{} (group {})",
            self.segment,
            self.bus,
            self.devfn >> 3,
            self.devfn & 7,
            self.group
        )
    }
}

/// Where a mediated device's plane lives (VFIO_GFX_PLANE_TYPE_*).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaneSource {
    /// A dma-buf the device exports by this id (VFIO_DEVICE_GET_GFX_DMABUF): mbochs, GVT-g.
    DmaBuf(u32),
    /// A device region by index, from its start: mdpy.
    Region(u32),
}

/// The guest's primary plane as the vendor driver describes it (VFIO_DEVICE_QUERY_GFX_PLANE).
/// The driver derives these from what the guest programmed: they are checked before use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PlaneInfo {
    pub source: PlaneSource,
    /// DRM fourcc.
    pub drm_format: u32,
    pub drm_format_mod: u64,
    pub width: u32,
    pub height: u32,
    pub stride: u32,
    pub size: u32,
}

/// A piece of a device region mapped into this process; unmapped on drop.
pub trait HostMapping: Send + Sync {
    fn host_addr(&self) -> u64;
    fn size(&self) -> u64;
}

/// A VFIO PCI device: regions, interrupts and reset (VFIO_DEVICE_* ioctls).
pub trait VfioDeviceApi: Send + Sync {
    /// `None` where the device has no such region (or it is empty).
    fn region(&self, index: u32) -> Option<RegionInfo>;
    /// How many vectors the interrupt index has (0: none).
    fn irq_count(&self, kind: IrqKind) -> u32;
    /// Reads `data.len()` bytes at `offset` of region `index`; false if outside it or refused.
    fn read(&self, index: u32, offset: u64, data: &mut [u8]) -> bool;
    fn write(&self, index: u32, offset: u64, data: &[u8]) -> bool;
    /// Maps `[offset, offset + len)` of region `index` into this process, shared.
    fn mmap(&self, index: u32, offset: u64, len: u64) -> Result<Arc<dyn HostMapping>, VfioError>;
    /// Wires vectors `0..fds.len()` of `kind` to `fds` (VFIO_IRQ_SET_ACTION_TRIGGER).
    fn enable_irq(&self, kind: IrqKind, fds: &[&EventFd]) -> Result<(), VfioError>;
    fn disable_irq(&self, kind: IrqKind) -> Result<(), VfioError>;
    /// INTx is level triggered: signalling `fd` unmasks it again (VFIO_IRQ_SET_ACTION_UNMASK),
    /// as KVM's resample eventfd does when the guest EOIs.
    fn set_intx_unmask_fd(&self, fd: &EventFd) -> Result<(), VfioError>;
    /// Whether the device can be reset (FLR, PM, or a bus reset the kernel may do).
    fn can_reset(&self) -> bool;
    fn reset(&self) -> Result<(), VfioError>;
    /// The functions a hot reset (of the bus or slot below the device's bridge) resets along
    /// with this one, itself included; `None` where the device cannot be hot reset.
    fn hot_reset_peers(&self) -> Option<Vec<ResetPeer>>;
    /// VFIO_DEVICE_PCI_HOT_RESET: the kernel resets the bus only when it is handed every group
    /// of `groups` (each must be open in this VM's container), proof that the VM owns them all.
    fn hot_reset(&self, groups: &[u32]) -> Result<(), VfioError>;
    /// Which kind of plane the device can describe (the PROBE of VFIO_DEVICE_QUERY_GFX_PLANE):
    /// `Some(true)` dma-bufs, `Some(false)` a region, `None` no display (a whole function).
    fn plane_kind(&self) -> Option<bool>;
    /// The primary plane now; `None` while the guest shows nothing.
    fn query_plane(&self, dmabuf: bool) -> Result<Option<PlaneInfo>, VfioError>;
    /// The first `len` bytes of a plane's pixels.
    fn read_plane(&self, source: PlaneSource, len: usize) -> Result<Vec<u8>, VfioError>;
}

/// An IOMMU address space (the container): what the device may DMA to.
pub trait DmaMapper: Send + Sync {
    /// Lets the device reach `[host, host + size)` at bus address `iova`.
    ///
    /// # Safety
    /// The host range must stay mapped until [`DmaMapper::unmap`] of the same range, and nothing
    /// may hold Rust references into it: the device writes it at any time.
    unsafe fn map(&self, iova: u64, size: u64, host: u64) -> Result<(), VfioError>;
    fn unmap(&self, iova: u64, size: u64) -> Result<(), VfioError>;
}
