//! `--gpu vfio,host=BDF[,rom=FILE|rombar=off]` and `--gpu vfio,sysfsdev=PATH`: opening the host
//! function, the VM's IOMMU address space (all guest RAM mapped for the device's DMA, once per
//! VM), and plugging the function into the guest's PCI bus.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing::{info, warn};
use vgpu_mdev::sysfs::Sysfs;
use vgpu_mdev::vfio_host::VfioHost;
use vm_memory::{GuestMemoryBackend, GuestMemoryRegion};

use super::api::DmaMapper;
use super::config::RomSource;
use super::display::PlaneDisplay;
use super::real::{RealContainer, RealDevice};
use super::{FunctionOptions, VfioError, VfioPciDevice};
use crate::vm::Vm;

/// Legacy lines for functions that use INTx, in the order devices get them.
const INTX_LINES: [u32; 4] = [10, 11, 5, 9];

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VfioTarget {
    /// A PCI function by its address (`0000:01:00.0`).
    Host(String),
    /// A device directory in sysfs (an mdev: `/sys/bus/mdev/devices/UUID`).
    Sysfs(PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RomChoice {
    Device,
    File(PathBuf),
    Off,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VfioSpec {
    pub target: VfioTarget,
    pub rom: RomChoice,
    /// BARs whose accesses are all trapped instead of mapped into the guest: `mmap=off` (all)
    /// or `mmap=off:2+4` (those).
    pub unmapped_bars: Vec<usize>,
    /// `vga=on`: the function's legacy VGA I/O ports and memory window are passed too (QEMU's
    /// x-vga=on).
    pub vga: bool,
}

/// Parses what follows `vfio,` in `--gpu vfio,...`.
pub fn parse_vfio_spec(options: &str) -> Result<VfioSpec, String> {
    let mut target = None;
    let mut rom = RomChoice::Device;
    let mut unmapped_bars = Vec::new();
    let mut vga = false;
    for opt in options.split(',').filter(|o| !o.is_empty()) {
        let (key, value) = opt
            .split_once('=')
            .ok_or_else(|| format!("vfio option {opt:?} is not key=value"))?;
        match key {
            "host" => {
                let ok = value.len() == 12
                    && value.char_indices().all(|(i, c)| match i {
                        4 | 7 => c == ':',
                        10 => c == '.',
                        _ => c.is_ascii_hexdigit(),
                    });
                if !ok {
                    return Err(format!(
                        "host={value}: a PCI address is DDDD:BB:SS.F (0000:01:00.0)"
                    ));
                }
                target = Some(VfioTarget::Host(value.to_ascii_lowercase()));
            }
            "sysfsdev" => target = Some(VfioTarget::Sysfs(PathBuf::from(value))),
            "rom" => rom = RomChoice::File(PathBuf::from(value)),
            "rombar" => match value {
                "off" | "0" => rom = RomChoice::Off,
                "on" | "1" => {}
                _ => return Err(format!("rombar={value}: on or off")),
            },
            "mmap" => {
                unmapped_bars = match value.split_once(':') {
                    None if matches!(value, "off" | "0") => (0..6).collect(),
                    None if matches!(value, "on" | "1") => Vec::new(),
                    Some(("off", list)) => list
                        .split('+')
                        .map(|b| b.parse().ok().filter(|&b: &usize| b < 6))
                        .collect::<Option<Vec<_>>>()
                        .ok_or_else(|| format!("mmap={value}: BARs are 0 to 5"))?,
                    _ => return Err(format!("mmap={value}: on, off, or off:BAR+BAR")),
                }
            }
            "vga" => vga = crate::vhost_user_frontend::attach::on_off(key, value)?,
            _ => {
                return Err(format!(
                    "unknown vfio option {key:?} (host, sysfsdev, rom, rombar, mmap, vga)"
                ))
            }
        }
    }
    let target = target.ok_or("vfio needs host=BDF or sysfsdev=PATH")?;
    Ok(VfioSpec {
        target,
        rom,
        unmapped_bars,
        vga,
    })
}

/// The VM's IOMMU address space: every RAM region mapped at its guest physical address.
pub struct DmaSpace {
    pub(super) container: Arc<RealContainer>,
    mapped: Vec<(u64, u64)>,
}

impl DmaSpace {
    fn new(vm: &Vm) -> Result<DmaSpace, VfioError> {
        let kvm_vfio = match vm.hv.create_vfio_device() {
            Ok(fd) => Some(fd),
            Err(err) => {
                warn!(%err, "vfio: no KVM VFIO device; DMA coherency is not tracked by KVM");
                None
            }
        };
        Ok(DmaSpace {
            container: Arc::new(RealContainer::open(kvm_vfio)?),
            mapped: Vec::new(),
        })
    }

    /// Maps all guest RAM; done after the first group joined the container (before that the
    /// container has no IOMMU type).
    fn map_guest_ram(&mut self, vm: &Vm) -> Result<(), VfioError> {
        if !self.mapped.is_empty() {
            return Ok(());
        }
        map_ram(self.container.as_ref(), vm, &mut self.mapped)
    }
}

/// Maps every RAM region of `vm` in `dma`, recording what it mapped.
pub fn map_ram(
    dma: &dyn DmaMapper,
    vm: &Vm,
    mapped: &mut Vec<(u64, u64)>,
) -> Result<(), VfioError> {
    for region in vm.memory.ram.iter() {
        let (iova, size, host) = (region.start_addr().0, region.len(), region.as_ptr() as u64);
        // SAFETY: guest RAM stays mapped for the VM's life, longer than the container (dropped
        // with the VM's devices); the VMM reaches it only through vm-memory's volatile
        // accessors, never through references, so DMA writes race with nothing Rust assumes.
        unsafe { dma.map(iova, size, host)? };
        mapped.push((iova, size));
    }
    info!(regions = mapped.len(), "vfio: guest RAM mapped for DMA");
    Ok(())
}

impl Drop for DmaSpace {
    fn drop(&mut self) {
        for &(iova, size) in &self.mapped {
            if let Err(err) = self.container.unmap(iova, size) {
                warn!(%err, iova, "vfio: DMA unmap at release");
            }
        }
    }
}

/// Opens `spec`'s function and plugs it into the VM; returns its PCI slot.
pub fn attach(
    vm: &mut Vm,
    spec: &VfioSpec,
    dma: &mut Option<DmaSpace>,
    index: usize,
) -> Result<u8, VfioError> {
    let host = VfioHost::new(Sysfs::default());
    let (path, name) = match &spec.target {
        VfioTarget::Host(bdf) => {
            host.check_viable(bdf)?;
            (host.sysfs_path(bdf)?, bdf.clone())
        }
        VfioTarget::Sysfs(path) => (path.clone(), path.display().to_string()),
    };
    let rom = match &spec.rom {
        RomChoice::Device => RomSource::Device,
        RomChoice::Off => RomSource::Off,
        RomChoice::File(file) => {
            RomSource::File(std::fs::read(file).map_err(|e| VfioError::RomFile {
                path: file.display().to_string(),
                source: e,
            })?)
        }
    };
    let space = match dma {
        Some(space) => space,
        None => dma.insert(DmaSpace::new(vm)?),
    };
    let device = RealDevice::open(&path, &space.container)?;
    space.map_guest_ram(vm)?;
    let line = INTX_LINES[index % INTX_LINES.len()];
    let options = FunctionOptions {
        unmapped_bars: spec.unmapped_bars.clone(),
        ..FunctionOptions::new(rom, line)
    };
    let device: Arc<dyn super::api::VfioDeviceApi> = Arc::new(device);
    if spec.vga {
        vm.add_legacy_vga(device.clone())
            .map_err(|e| VfioError::Plug(e.to_string()))?;
    }
    // A mediated device's display is the VM's screenshot source unless another display is.
    if vm.display().is_none() {
        if let Some(screen) = PlaneDisplay::probe(device.clone(), &name) {
            let dmabuf = screen.uses_dmabuf();
            info!(device = %name, dmabuf, "vfio: the device's display is scanout 0");
            vm.set_display(Arc::new(Mutex::new(screen)));
        }
    }
    let function = VfioPciDevice::new(vm, &name, device, options)?;
    let slot = vm
        .add_pci_device(Arc::new(Mutex::new(function)))
        .map_err(|e| VfioError::Plug(e.to_string()))?;
    info!(device = %name, slot, "vfio: passed through");
    Ok(slot)
}
