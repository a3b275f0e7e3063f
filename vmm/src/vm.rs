//! VM construction shared by raw mode and Linux boot: hypervisor VM, guest memory, buses, the
//! PCI root, legacy devices, vCPUs, and the hooks device code plugs into.
//!
//! Device owners (PCI, virtio-pci) plug in through [`Vm::pci_root`], [`Vm::add_pci_device`],
//! [`Vm::allocate_gsi`], [`Vm::allocate_memory_slot`], [`Vm::add_gpu`], [`Vm::add_vfio`] and
//! [`Vm::add_vhost_user`]; a display device
//! registers itself with [`Vm::set_display`] so `vgpu run --screenshot` can reach it.

use std::sync::{Arc, Mutex};

use gpu_interface::{DisplayMode, Frame, GpuResult};
use virtio_gpu::backend::BackendKind;

use crate::bus::{Bus, BusDevice, BusError};
use crate::hypervisor::{Hypervisor, HypervisorError, Vm as HvVm};
use crate::memory::{Memory, MemoryError};
use crate::pci::{self, MmioAllocator, PciConfigIo, PciConfigMmio, PciDevice, PciError, PciRoot};
use crate::vcpu::{ExitSignal, VmExit};
use crate::vhost_user_frontend::attach::{VhostUserAttachment, VhostUserSpec};

/// First GSI handed out for MSI routes (0..24 are the IOAPIC's pins).
const FIRST_MSI_GSI: u32 = 24;
/// The i8042 controller's command port: writing 0xfe pulses the CPU reset line.
pub const I8042_COMMAND_PORT: u64 = 0x64;
const I8042_RESET: u8 = 0xfe;

/// Why a VM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(transparent)]
    Memory(#[from] MemoryError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error(transparent)]
    Pci(#[from] PciError),
    #[error("the virtio-gpu device could not be created: {0}")]
    Gpu(String),
    #[error(transparent)]
    VhostUser(#[from] crate::vhost_user_frontend::attach::AttachError),
    #[error(transparent)]
    Vfio(#[from] crate::vfio::VfioError),
}

/// `--gpu virtio[,backend=B][,width=W][,height=H][,scanouts=N][,edid=on|off]` or
/// `--gpu vhost-user,socket=S[,width=W][,height=H][,scanouts=N]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GpuSpec {
    /// Served in the VMM by this backend, unless `vhost_user` is set.
    pub backend: BackendKind,
    /// Served by the vhost-user GPU backend listening on this socket.
    pub vhost_user: Option<std::path::PathBuf>,
    /// Every scanout starts with this mode.
    pub scanouts: Vec<DisplayMode>,
    pub edid: bool,
}

/// Something with scanouts the host can capture (the virtio-gpu device).
pub trait Display: Send {
    fn screenshot(&mut self, scanout: u32) -> GpuResult<Frame>;
}

/// A VM being assembled or run.
pub struct Vm {
    pub hv: Arc<dyn HvVm>,
    pub memory: Memory,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    pub exit: Arc<ExitSignal>,
    /// Whether the in-kernel interrupt controllers exist (Linux mode); raw mode has none, so
    /// devices there must work without interrupts (MSI routes fail with `Unsupported`).
    pub irqchip: bool,
    /// The IOMMU address space of passed-through functions (all guest RAM mapped), once one
    /// is. Before `pci`: fields drop in order, and DMA is unmapped while the functions are
    /// still open.
    vfio_dma: Option<crate::vfio::attach::DmaSpace>,
    pci: Option<Arc<Mutex<PciRoot>>>,
    mmio_allocator: MmioAllocator,
    display: Option<Arc<Mutex<dyn Display>>>,
    /// Devices served by vhost-user backends, kept running as long as the VM.
    vhost_user: Vec<VhostUserAttachment>,
    vfio_functions: usize,
    /// Whether a passed VGA function has the legacy VGA ranges (`vga=on`).
    legacy_vga: bool,
    next_gsi: u32,
    next_slot: u32,
}

impl Vm {
    /// A VM with `memory_size` bytes of RAM registered; `irqchip` creates PIC/IOAPIC/LAPIC/PIT.
    pub fn new(hv: &dyn Hypervisor, memory_size: u64, irqchip: bool) -> Result<Vm, VmError> {
        let hv_vm: Arc<dyn HvVm> = Arc::from(hv.create_vm()?);
        if irqchip {
            hv_vm.create_irq_chip()?;
        }
        let memory = Memory::new(memory_size)?;
        let next_slot = memory.register(hv_vm.as_ref())?;
        Ok(Vm {
            hv: hv_vm,
            memory,
            pio: Arc::new(Bus::new()),
            mmio: Arc::new(Bus::new()),
            exit: ExitSignal::new(),
            irqchip,
            pci: None,
            mmio_allocator: MmioAllocator::new(pci::MMIO32_START, pci::MMIO32_SIZE)
                .with_high_window(pci::MMIO64_START, pci::MMIO64_SIZE),
            display: None,
            vhost_user: Vec::new(),
            vfio_dma: None,
            vfio_functions: 0,
            legacy_vga: false,
            next_gsi: FIRST_MSI_GSI,
            next_slot,
        })
    }

    /// A fresh GSI for an MSI route.
    pub fn allocate_gsi(&mut self) -> u32 {
        let gsi = self.next_gsi;
        self.next_gsi += 1;
        gsi
    }

    /// A fresh memory slot (e.g. for a device's host-visible shared memory region).
    pub fn allocate_memory_slot(&mut self) -> u32 {
        let slot = self.next_slot;
        self.next_slot += 1;
        slot
    }

    /// The PCI root, created on first use with its config ports (0xCF8) and ECAM window.
    pub fn pci_root(&mut self) -> Result<Arc<Mutex<PciRoot>>, VmError> {
        if let Some(root) = &self.pci {
            return Ok(root.clone());
        }
        let root = Arc::new(Mutex::new(PciRoot::new(self.mmio.clone())));
        self.pio.insert(
            Arc::new(Mutex::new(PciConfigIo::new(root.clone()))),
            pci::CONFIG_IO_PORT,
            pci::CONFIG_IO_LEN,
        )?;
        self.mmio.insert(
            Arc::new(Mutex::new(PciConfigMmio::new(root.clone()))),
            pci::ECAM_START,
            pci::ECAM_SIZE,
        )?;
        self.pci = Some(root.clone());
        Ok(root)
    }

    /// Plugs a device into bus 0 with its BARs assigned; returns its slot.
    pub fn add_pci_device(&mut self, device: Arc<Mutex<dyn PciDevice>>) -> Result<u8, VmError> {
        let root = self.pci_root()?;
        let mut root = root.lock().unwrap_or_else(|e| e.into_inner());
        Ok(root.add_device(device, &mut self.mmio_allocator)?)
    }

    /// Adds the virtio-gpu PCI device `spec` describes (served here, or by a vhost-user GPU
    /// backend) and makes it the display `--screenshot` captures.
    pub fn add_gpu(&mut self, spec: &GpuSpec) -> Result<(), VmError> {
        if let Some(socket) = &spec.vhost_user {
            let (device, display) = crate::vhost_user_frontend::attach::attach_gpu(
                self,
                socket,
                spec.scanouts.clone(),
            )?;
            self.vhost_user.push(device);
            self.set_display(Arc::new(Mutex::new(display)));
            return Ok(());
        }
        let gpu =
            crate::virtio_pci::gpu::attach(self, spec).map_err(|e| VmError::Gpu(e.to_string()))?;
        self.set_display(Arc::new(Mutex::new(gpu)));
        Ok(())
    }

    /// Adds the device a `--disk` or `--fs` describes, starting its backend where the VMM
    /// runs it itself.
    pub fn add_vhost_user(&mut self, spec: &VhostUserSpec) -> Result<(), VmError> {
        let index = self.vhost_user.len();
        let device = crate::vhost_user_frontend::attach::attach(self, spec, index)?;
        self.vhost_user.push(device);
        Ok(())
    }

    /// Passes the host function `spec` names through to the guest (`--gpu vfio,...`).
    pub fn add_vfio(&mut self, spec: &crate::vfio::VfioSpec) -> Result<u8, VmError> {
        let mut dma = self.vfio_dma.take();
        let result = crate::vfio::attach::attach(self, spec, &mut dma, self.vfio_functions);
        self.vfio_dma = dma;
        self.vfio_functions += 1;
        Ok(result?)
    }

    /// Gives the guest's legacy VGA window (0xa0000-0xbffff) to `device`, a passed VGA function,
    /// and its VGA ports with it; one function per VM may have them, as on a PC.
    pub fn add_legacy_vga(
        &mut self,
        device: Arc<dyn crate::vfio::api::VfioDeviceApi>,
    ) -> Result<(), VmError> {
        use crate::vfio::quirks::vga::{
            VgaLegacy, MEMORY_LEN, MEMORY_START, PORTS_LEN, PORTS_START,
        };
        use crate::vfio::{api::VGA_REGION, VfioError};
        if self.legacy_vga {
            return Err(VfioError::SecondVga.into());
        }
        let no_region = || VmError::from(VfioError::NoRegion(VGA_REGION));
        let ports = VgaLegacy::ports(device.clone()).ok_or_else(no_region)?;
        let memory = VgaLegacy::memory(device).ok_or_else(no_region)?;
        let slot = self.allocate_memory_slot();
        self.memory
            .open_window(self.hv.as_ref(), MEMORY_START, MEMORY_LEN, slot)?;
        self.pio
            .insert(Arc::new(Mutex::new(ports)), PORTS_START, PORTS_LEN)?;
        self.mmio
            .insert(Arc::new(Mutex::new(memory)), MEMORY_START, MEMORY_LEN)?;
        self.legacy_vga = true;
        Ok(())
    }

    /// Registers the display `vgpu run --screenshot` captures.
    pub fn set_display(&mut self, display: Arc<Mutex<dyn Display>>) {
        self.display = Some(display);
    }

    pub fn display(&self) -> Option<Arc<Mutex<dyn Display>>> {
        self.display.clone()
    }

    /// Adds the i8042 reset line (Linux's `reboot=k` path, our power-off in practice).
    pub fn add_reset_device(&mut self) -> Result<(), VmError> {
        let dev = Arc::new(Mutex::new(I8042 {
            exit: self.exit.clone(),
        }));
        self.pio.insert(dev, I8042_COMMAND_PORT, 1)?;
        Ok(())
    }
}

/// Just the i8042's reset line. The status always says "output full, input empty": Linux's
/// driver cannot drain the output buffer and gives up at once ("No controller found") instead
/// of timing out on every command, and its reset path (`reboot=k`), which waits for "input
/// empty" before the pulse, goes straight to it. (All ones, an absent controller's status,
/// makes that wait spin 65536 port reads: tens of seconds under nested virtualization.)
struct I8042 {
    exit: Arc<ExitSignal>,
}

const I8042_STATUS_OUTPUT_FULL: u8 = 0x01;

impl BusDevice for I8042 {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let Some(status) = data.first_mut() {
            *status = I8042_STATUS_OUTPUT_FULL;
        }
    }
    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        if data.first() == Some(&I8042_RESET) {
            tracing::info!("guest reset through the i8042");
            self.exit.request(VmExit::Reset);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::mock::MockHypervisor;

    #[test]
    fn builds_memory_irqchip_pci_root_and_reset_line() {
        let hv = MockHypervisor::new();
        let mut vm = Vm::new(&hv, 16 << 20, true).unwrap();
        assert!(hv.state.lock().unwrap().irqchip);
        assert_eq!(hv.state.lock().unwrap().memory_slots.len(), 1);
        assert_eq!(vm.allocate_memory_slot(), 1);
        assert_eq!((vm.allocate_gsi(), vm.allocate_gsi()), (24, 25));

        // The host bridge answers at 00.0 through port 0xCF8/0xCFC.
        vm.pci_root().unwrap();
        assert!(vm.pio.write(0xcf8, &0x8000_0000u32.to_le_bytes()));
        let mut id = [0u8; 4];
        assert!(vm.pio.read(0xcfc, &mut id));
        assert_eq!(u16::from_le_bytes([id[0], id[1]]), 0x8086);
        // A second call reuses the root instead of clashing on the bus.
        vm.pci_root().unwrap();
        assert!(vm.mmio.read(pci::ECAM_START, &mut id));

        vm.add_reset_device().unwrap();
        // Output full (the driver gives up at once), input empty (the reset path does not wait).
        let mut status = [0u8];
        assert!(vm.pio.read(I8042_COMMAND_PORT, &mut status));
        assert_eq!(status, [0x01]);
        vm.pio.write(I8042_COMMAND_PORT, &[0x01]);
        assert_eq!(vm.exit.requested(), None);
        vm.pio.write(I8042_COMMAND_PORT, &[I8042_RESET]);
        assert_eq!(vm.exit.requested(), Some(VmExit::Reset));
    }
}
