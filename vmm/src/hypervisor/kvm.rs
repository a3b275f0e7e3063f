//! The KVM implementation of the hypervisor traits (kvm-ioctls).

use std::collections::{BTreeMap, HashMap};
use std::os::fd::{AsRawFd, RawFd};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use kvm_bindings::{
    kvm_irq_routing_entry, kvm_msr_entry, kvm_pit_config, kvm_userspace_memory_region, CpuId,
    KvmIrqRouting, Msrs, KVM_IRQCHIP_IOAPIC, KVM_IRQCHIP_PIC_MASTER, KVM_IRQCHIP_PIC_SLAVE,
    KVM_IRQ_ROUTING_IRQCHIP, KVM_IRQ_ROUTING_MSI, KVM_MAX_CPUID_ENTRIES, KVM_PIT_SPEAKER_DUMMY,
};
use kvm_ioctls::{Kvm, NoDatamatch, VcpuFd, VmFd};
use vmm_sys_util::eventfd::EventFd;

use super::{
    Fpu, Hypervisor, HypervisorError, IoEventAddress, Regs, Result, SpecialRegs, Vcpu, VcpuExit, Vm,
};

/// Where KVM puts the three-page TSS real-mode emulation needs on Intel; below the 4 GiB hole.
const TSS_ADDRESS: usize = 0xfffb_d000;
/// IOAPIC pins; GSIs 0..24 route to it (and 0..16 but 2 to the PICs).
const IOAPIC_PINS: u32 = 24;

const CPUID_1_ECX_TSC_DEADLINE: u32 = 1 << 24;
const CPUID_1_ECX_HYPERVISOR: u32 = 1 << 31;

/// KVM through /dev/kvm.
pub struct KvmHypervisor {
    kvm: Kvm,
    cpuid: CpuId,
}

impl KvmHypervisor {
    /// Opens /dev/kvm (or `$VGPU_KVM_DEVICE`); a clear error if it is absent or not accessible.
    pub fn new() -> Result<KvmHypervisor> {
        let path = std::env::var_os("VGPU_KVM_DEVICE").unwrap_or_else(|| "/dev/kvm".into());
        let kvm = Kvm::new_with_path(std::ffi::CString::new(path.as_encoded_bytes()).map_err(
            |_| HypervisorError::NoKvm {
                path: path.to_string_lossy().into_owned(),
                source: std::io::ErrorKind::InvalidInput.into(),
            },
        )?)
        .map_err(|e| HypervisorError::NoKvm {
            path: path.to_string_lossy().into_owned(),
            source: std::io::Error::from_raw_os_error(e.errno()),
        })?;
        let version = kvm.get_api_version();
        if version != 12 {
            return Err(HypervisorError::ApiVersion(version));
        }
        let mut cpuid = kvm
            .get_supported_cpuid(KVM_MAX_CPUID_ENTRIES)
            .map_err(|e| HypervisorError::ioctl("KVM_GET_SUPPORTED_CPUID", e))?;
        let tsc_deadline = kvm.check_extension(kvm_ioctls::Cap::TscDeadlineTimer);
        for entry in cpuid.as_mut_slice().iter_mut().filter(|e| e.function == 1) {
            // Tell the guest it runs on a hypervisor (so Linux uses kvm-clock instead of
            // calibrating the TSC against the PIT) and that the in-kernel LAPIC has the TSC
            // deadline timer, which KVM emulates but does not list as supported.
            entry.ecx |= CPUID_1_ECX_HYPERVISOR;
            if tsc_deadline {
                entry.ecx |= CPUID_1_ECX_TSC_DEADLINE;
            }
        }
        Ok(KvmHypervisor { kvm, cpuid })
    }
}

impl Hypervisor for KvmHypervisor {
    fn create_vm(&self) -> Result<Box<dyn Vm>> {
        let fd = self
            .kvm
            .create_vm()
            .map_err(|e| HypervisorError::ioctl("KVM_CREATE_VM", e))?;
        Ok(Box::new(KvmVm {
            fd,
            cpuid: self.cpuid.clone(),
            irqchip: AtomicBool::new(false),
            msi_routes: Mutex::new(BTreeMap::new()),
            ioevents: Mutex::new(HashMap::new()),
        }))
    }
}

/// A KVM VM. KVM_SET_GSI_ROUTING replaces the whole table, so the MSI routes are kept here and
/// the table is rebuilt (legacy pins first) on every change.
pub struct KvmVm {
    fd: VmFd,
    cpuid: CpuId,
    irqchip: AtomicBool,
    msi_routes: Mutex<BTreeMap<u32, (u64, u32)>>,
    /// Datamatch of each registered ioeventfd: KVM only deassigns with the same one.
    ioevents: Mutex<HashMap<(RawFd, IoEventAddress), Option<u64>>>,
}

impl KvmVm {
    fn legacy_routes() -> Vec<kvm_irq_routing_entry> {
        let mut entries = Vec::new();
        for pin in 0..IOAPIC_PINS {
            let mut e = kvm_irq_routing_entry {
                gsi: pin,
                type_: KVM_IRQ_ROUTING_IRQCHIP,
                ..Default::default()
            };
            e.u.irqchip.irqchip = KVM_IRQCHIP_IOAPIC;
            e.u.irqchip.pin = pin;
            entries.push(e);
            if pin < 16 && pin != 2 {
                let mut e = e;
                let (chip, chip_pin) = if pin < 8 {
                    (KVM_IRQCHIP_PIC_MASTER, pin)
                } else {
                    (KVM_IRQCHIP_PIC_SLAVE, pin - 8)
                };
                e.u.irqchip.irqchip = chip;
                e.u.irqchip.pin = chip_pin;
                entries.push(e);
            }
        }
        entries
    }

    fn commit_routes(&self, msi: &BTreeMap<u32, (u64, u32)>) -> Result<()> {
        if !self.irqchip.load(Ordering::Acquire) {
            return Err(HypervisorError::Unsupported(
                "MSI routing without the in-kernel irqchip",
            ));
        }
        let mut entries = Self::legacy_routes();
        for (&gsi, &(address, data)) in msi {
            let mut e = kvm_irq_routing_entry {
                gsi,
                type_: KVM_IRQ_ROUTING_MSI,
                ..Default::default()
            };
            e.u.msi.address_lo = address as u32;
            e.u.msi.address_hi = (address >> 32) as u32;
            e.u.msi.data = data;
            entries.push(e);
        }
        let routing = KvmIrqRouting::from_entries(&entries)
            .map_err(|_| HypervisorError::Unsupported("that many GSI routes"))?;
        self.fd
            .set_gsi_routing(&routing)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_GSI_ROUTING", e))
    }
}

fn kvm_ioevent_addr(addr: IoEventAddress) -> kvm_ioctls::IoEventAddress {
    match addr {
        IoEventAddress::Pio(a) => kvm_ioctls::IoEventAddress::Pio(a),
        IoEventAddress::Mmio(a) => kvm_ioctls::IoEventAddress::Mmio(a),
    }
}

impl Vm for KvmVm {
    fn set_user_memory_region(
        &self,
        slot: u32,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
    ) -> Result<()> {
        let region = kvm_userspace_memory_region {
            slot,
            flags: 0,
            guest_phys_addr: guest_addr,
            memory_size: size,
            userspace_addr: host_addr,
        };
        // SAFETY: the trait's contract makes the caller keep [host_addr, host_addr + size) mapped
        // for as long as the slot exists; KVM only touches guest memory through that mapping.
        unsafe { self.fd.set_user_memory_region(region) }
            .map_err(|e| HypervisorError::ioctl("KVM_SET_USER_MEMORY_REGION", e))
    }

    fn create_irq_chip(&self) -> Result<()> {
        self.fd
            .set_tss_address(TSS_ADDRESS)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_TSS_ADDR", e))?;
        self.fd
            .create_irq_chip()
            .map_err(|e| HypervisorError::ioctl("KVM_CREATE_IRQCHIP", e))?;
        let pit = kvm_pit_config {
            flags: KVM_PIT_SPEAKER_DUMMY,
            ..Default::default()
        };
        self.fd
            .create_pit2(pit)
            .map_err(|e| HypervisorError::ioctl("KVM_CREATE_PIT2", e))?;
        self.irqchip.store(true, Ordering::Release);
        Ok(())
    }

    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .register_irqfd(fd, gsi)
            .map_err(|e| HypervisorError::ioctl("KVM_IRQFD", e))
    }

    fn register_resample_irqfd(&self, fd: &EventFd, resample: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .register_irqfd_with_resample(fd, resample, gsi)
            .map_err(|e| HypervisorError::ioctl("KVM_IRQFD (resample)", e))
    }

    fn create_vfio_device(&self) -> Result<vfio_ioctls::VfioDeviceFd> {
        let mut device = kvm_bindings::kvm_create_device {
            type_: kvm_bindings::kvm_device_type_KVM_DEV_TYPE_VFIO,
            fd: 0,
            flags: 0,
        };
        let fd = self
            .fd
            .create_device(&mut device)
            .map_err(|e| HypervisorError::ioctl("KVM_CREATE_DEVICE (VFIO)", e))?;
        Ok(vfio_ioctls::VfioDeviceFd::new_from_kvm(fd))
    }

    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        self.fd
            .unregister_irqfd(fd, gsi)
            .map_err(|e| HypervisorError::ioctl("KVM_IRQFD (deassign)", e))
    }

    fn register_ioeventfd(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        datamatch: Option<u64>,
    ) -> Result<()> {
        let kaddr = kvm_ioevent_addr(addr);
        let r = match datamatch {
            None => self.fd.register_ioevent(fd, &kaddr, NoDatamatch),
            Some(v) if v <= u16::MAX as u64 => self.fd.register_ioevent(fd, &kaddr, v as u16),
            Some(v) if v <= u32::MAX as u64 => self.fd.register_ioevent(fd, &kaddr, v as u32),
            Some(v) => self.fd.register_ioevent(fd, &kaddr, v),
        };
        r.map_err(|e| HypervisorError::ioctl("KVM_IOEVENTFD", e))?;
        let mut ioevents = self.ioevents.lock().unwrap_or_else(|e| e.into_inner());
        ioevents.insert((fd.as_raw_fd(), addr), datamatch);
        Ok(())
    }

    fn unregister_ioeventfd(&self, fd: &EventFd, addr: IoEventAddress) -> Result<()> {
        let mut ioevents = self.ioevents.lock().unwrap_or_else(|e| e.into_inner());
        let key = (fd.as_raw_fd(), addr);
        let datamatch = *ioevents.get(&key).ok_or(HypervisorError::NotRegistered {
            what: "ioeventfd",
            key: match addr {
                IoEventAddress::Pio(a) | IoEventAddress::Mmio(a) => a,
            },
        })?;
        let kaddr = kvm_ioevent_addr(addr);
        let r = match datamatch {
            None => self.fd.unregister_ioevent(fd, &kaddr, NoDatamatch),
            Some(v) if v <= u16::MAX as u64 => self.fd.unregister_ioevent(fd, &kaddr, v as u16),
            Some(v) if v <= u32::MAX as u64 => self.fd.unregister_ioevent(fd, &kaddr, v as u32),
            Some(v) => self.fd.unregister_ioevent(fd, &kaddr, v),
        };
        r.map_err(|e| HypervisorError::ioctl("KVM_IOEVENTFD (deassign)", e))?;
        ioevents.remove(&key);
        Ok(())
    }

    fn set_msi_route(&self, gsi: u32, address: u64, data: u32) -> Result<()> {
        if gsi < IOAPIC_PINS {
            return Err(HypervisorError::Unsupported(
                "MSI routes on IOAPIC GSIs (0..24)",
            ));
        }
        let mut routes = self.msi_routes.lock().unwrap_or_else(|e| e.into_inner());
        let previous = routes.insert(gsi, (address, data));
        if let Err(e) = self.commit_routes(&routes) {
            match previous {
                Some(p) => routes.insert(gsi, p),
                None => routes.remove(&gsi),
            };
            return Err(e);
        }
        Ok(())
    }

    fn remove_msi_route(&self, gsi: u32) -> Result<()> {
        let mut routes = self.msi_routes.lock().unwrap_or_else(|e| e.into_inner());
        if routes.remove(&gsi).is_none() {
            return Err(HypervisorError::NotRegistered {
                what: "MSI route",
                key: gsi.into(),
            });
        }
        self.commit_routes(&routes)
    }

    fn create_vcpu(&self, id: u8) -> Result<Box<dyn Vcpu>> {
        let fd = self
            .fd
            .create_vcpu(id.into())
            .map_err(|e| HypervisorError::ioctl("KVM_CREATE_VCPU", e))?;
        Ok(Box::new(KvmVcpu {
            fd,
            id,
            cpuid: self.cpuid.clone(),
        }))
    }
}

/// A KVM vCPU.
pub struct KvmVcpu {
    fd: VcpuFd,
    id: u8,
    cpuid: CpuId,
}

/// Local APIC register offsets and delivery modes (Intel SDM vol. 3, 10.5.1).
const APIC_LVT_LINT0: usize = 0x350;
const APIC_LVT_LINT1: usize = 0x360;
const APIC_MODE_NMI: u32 = 0x4;
const APIC_MODE_EXTINT: u32 = 0x7;
/// The interrupt-enable flag.
const RFLAGS_IF: u64 = 1 << 9;

impl Vcpu for KvmVcpu {
    fn run(&mut self) -> Result<VcpuExit<'_>> {
        use kvm_ioctls::VcpuExit as K;
        let exit = match self.fd.run() {
            Ok(exit) => exit,
            Err(e) if e.errno() == libc::EINTR || e.errno() == libc::EAGAIN => {
                return Ok(VcpuExit::Interrupted)
            }
            Err(e) => return Err(HypervisorError::ioctl("KVM_RUN", e)),
        };
        Ok(match exit {
            K::IoIn(port, data) => VcpuExit::IoIn(port, data),
            K::IoOut(port, data) => VcpuExit::IoOut(port, data),
            K::MmioRead(addr, data) => VcpuExit::MmioRead(addr, data),
            K::MmioWrite(addr, data) => VcpuExit::MmioWrite(addr, data),
            K::Hlt => VcpuExit::Hlt,
            K::Shutdown => VcpuExit::Shutdown,
            K::Intr => VcpuExit::Interrupted,
            K::FailEntry(reason, _) => VcpuExit::FailEntry(reason),
            K::InternalError => VcpuExit::InternalError,
            K::SystemEvent(kind, _) => match kind {
                kvm_bindings::KVM_SYSTEM_EVENT_RESET => VcpuExit::SystemReset,
                kvm_bindings::KVM_SYSTEM_EVENT_SHUTDOWN => VcpuExit::SystemShutdown,
                other => VcpuExit::Unhandled(format!("system event {other}")),
            },
            other => VcpuExit::Unhandled(format!("{other:?}")),
        })
    }

    fn regs(&self) -> Result<Regs> {
        self.fd
            .get_regs()
            .map_err(|e| HypervisorError::ioctl("KVM_GET_REGS", e))
    }

    fn set_regs(&self, regs: &Regs) -> Result<()> {
        self.fd
            .set_regs(regs)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_REGS", e))
    }

    fn sregs(&self) -> Result<SpecialRegs> {
        self.fd
            .get_sregs()
            .map_err(|e| HypervisorError::ioctl("KVM_GET_SREGS", e))
    }

    fn set_sregs(&self, sregs: &SpecialRegs) -> Result<()> {
        self.fd
            .set_sregs(sregs)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_SREGS", e))
    }

    fn set_fpu(&self, fpu: &Fpu) -> Result<()> {
        self.fd
            .set_fpu(fpu)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_FPU", e))
    }

    fn setup_cpuid(&self, cpu_count: u8) -> Result<()> {
        let mut cpuid = self.cpuid.clone();
        for entry in cpuid.as_mut_slice() {
            match entry.function {
                1 => {
                    // Initial APIC id, logical processor count, and HTT when there are several.
                    entry.ebx = (entry.ebx & 0x0000_ffff)
                        | (u32::from(self.id) << 24)
                        | (u32::from(cpu_count) << 16);
                    if cpu_count > 1 {
                        entry.edx |= 1 << 28;
                    }
                }
                0xb | 0x1f => entry.edx = self.id.into(),
                _ => {}
            }
        }
        self.fd
            .set_cpuid2(&cpuid)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_CPUID2", e))
    }

    fn set_msrs(&self, msrs: &[(u32, u64)]) -> Result<()> {
        let entries: Vec<kvm_msr_entry> = msrs
            .iter()
            .map(|&(index, data)| kvm_msr_entry {
                index,
                data,
                ..Default::default()
            })
            .collect();
        let wrapper = Msrs::from_entries(&entries)
            .map_err(|_| HypervisorError::Unsupported("that many MSRs at once"))?;
        let written = self
            .fd
            .set_msrs(&wrapper)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_MSRS", e))?;
        if written != entries.len() {
            return Err(HypervisorError::Unsupported("one of the requested MSRs"));
        }
        Ok(())
    }

    fn stopped_for_good(&self) -> Result<bool> {
        let mp = self
            .fd
            .get_mp_state()
            .map_err(|e| HypervisorError::ioctl("KVM_GET_MP_STATE", e))?;
        Ok(match mp.mp_state {
            kvm_bindings::KVM_MP_STATE_UNINITIALIZED | kvm_bindings::KVM_MP_STATE_INIT_RECEIVED => {
                true
            }
            kvm_bindings::KVM_MP_STATE_HALTED => self.regs()?.rflags & RFLAGS_IF == 0,
            _ => false,
        })
    }

    fn setup_lapic(&self) -> Result<()> {
        let mut lapic = self
            .fd
            .get_lapic()
            .map_err(|e| HypervisorError::ioctl("KVM_GET_LAPIC", e))?;
        for (offset, mode) in [
            (APIC_LVT_LINT0, APIC_MODE_EXTINT),
            (APIC_LVT_LINT1, APIC_MODE_NMI),
        ] {
            let bytes = &mut lapic.regs[offset..offset + 4];
            let mut value = u32::from_le_bytes([
                bytes[0] as u8,
                bytes[1] as u8,
                bytes[2] as u8,
                bytes[3] as u8,
            ]);
            value = (value & !0x700) | (mode << 8);
            for (dst, src) in bytes.iter_mut().zip(value.to_le_bytes()) {
                *dst = src as _;
            }
        }
        self.fd
            .set_lapic(&lapic)
            .map_err(|e| HypervisorError::ioctl("KVM_SET_LAPIC", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn legacy_routes_cover_ioapic_and_pic_pins() {
        let routes = KvmVm::legacy_routes();
        // 24 IOAPIC pins plus 15 PIC pins (IRQ 2 is the cascade).
        assert_eq!(routes.len(), 24 + 15);
        assert!(routes.iter().all(|r| r.type_ == KVM_IRQ_ROUTING_IRQCHIP));
        assert_eq!(routes.iter().filter(|r| r.gsi == 2).count(), 1);
    }
}
