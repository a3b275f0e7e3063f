//! The hypervisor behind a small trait, so that buses, devices and the vCPU loop are tested
//! without /dev/kvm. [`kvm`] is the real implementation, [`mock`] a recording one for tests.
//!
//! x86 register state uses the kvm-bindings structs directly (re-exported here under plain
//! names): they are plain data and every x86 hypervisor API has the same fields.

use vmm_sys_util::eventfd::EventFd;

pub mod kvm;
pub mod mock;

pub use kvm_bindings::{
    kvm_fpu as Fpu, kvm_regs as Regs, kvm_segment as Segment, kvm_sregs as SpecialRegs,
};

/// Why a hypervisor call failed.
#[derive(Debug, thiserror::Error)]
pub enum HypervisorError {
    #[error("{path} is missing or cannot be opened (is KVM enabled and may this user use it?)")]
    NoKvm {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("KVM API version {0} is not the supported version 12")]
    ApiVersion(i32),
    #[error("{op} failed")]
    Ioctl {
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("the hypervisor lacks {0}")]
    Unsupported(&'static str),
    #[error("no registered {what} matches gsi/address {key:#x}")]
    NotRegistered { what: &'static str, key: u64 },
}

impl HypervisorError {
    /// Wraps a kvm-ioctls error for the ioctl named `op`.
    pub(crate) fn ioctl(op: &'static str, err: vmm_sys_util::errno::Error) -> HypervisorError {
        HypervisorError::Ioctl {
            op,
            source: std::io::Error::from_raw_os_error(err.errno()),
        }
    }
}

pub type Result<T> = std::result::Result<T, HypervisorError>;

/// Where a guest write signals an ioeventfd.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IoEventAddress {
    Pio(u64),
    Mmio(u64),
}

/// A hypervisor: makes VMs.
pub trait Hypervisor: Send + Sync {
    fn create_vm(&self) -> Result<Box<dyn Vm>>;
}

/// A VM: guest memory slots, interrupt routing and vCPUs.
pub trait Vm: Send + Sync {
    /// Maps host memory `[host_addr, host_addr + size)` at guest physical `guest_addr`. The caller
    /// keeps that host memory mapped for the VM's life (or until the slot is removed with size 0).
    fn set_user_memory_region(
        &self,
        slot: u32,
        guest_addr: u64,
        size: u64,
        host_addr: u64,
    ) -> Result<()>;
    /// Creates the in-kernel interrupt controllers (PIC, IOAPIC, local APICs) and the PIT.
    /// Must run before vCPUs are created.
    fn create_irq_chip(&self) -> Result<()>;
    /// Signalling `fd` raises `gsi` (edge): legacy IRQs 0..24 or an MSI route.
    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()>;
    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()>;
    /// A level-triggered line: signalling `fd` asserts `gsi` until the guest's EOI, which
    /// de-asserts it and signals `resample` (a passed-through function's INTx, unmasked then).
    fn register_resample_irqfd(&self, fd: &EventFd, resample: &EventFd, gsi: u32) -> Result<()>;
    /// KVM's VFIO pseudo-device, to which passed-through groups are added.
    fn create_vfio_device(&self) -> Result<vfio_ioctls::VfioDeviceFd>;
    /// A guest write to `addr` signals `fd` without a vCPU exit. Without `datamatch` every write
    /// to `addr` matches. With it, only writes of that value match, and KVM also compares the
    /// write's width: 2-byte writes if the value fits in u16 (virtio queue indices), else 4-byte
    /// writes if it fits in u32, else 8-byte writes.
    fn register_ioeventfd(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        datamatch: Option<u64>,
    ) -> Result<()>;
    fn unregister_ioeventfd(&self, fd: &EventFd, addr: IoEventAddress) -> Result<()>;
    /// Routes `gsi` to an MSI message (address, data); used for MSI-X vectors through irqfd.
    /// GSIs below 24 belong to the IOAPIC; use 24 and above for MSI routes.
    fn set_msi_route(&self, gsi: u32, address: u64, data: u32) -> Result<()>;
    /// Removes an MSI route set by `set_msi_route` (a masked or disabled vector).
    fn remove_msi_route(&self, gsi: u32) -> Result<()>;
    fn create_vcpu(&self, id: u8) -> Result<Box<dyn Vcpu>>;
}

/// Why [`Vcpu::run`] returned. Data slices point into the vCPU's run area: fill the `In`/`Read`
/// ones before the next `run`.
#[derive(Debug)]
pub enum VcpuExit<'a> {
    IoIn(u16, &'a mut [u8]),
    IoOut(u16, &'a [u8]),
    MmioRead(u64, &'a mut [u8]),
    MmioWrite(u64, &'a [u8]),
    /// The guest ran HLT with interrupts the VMM does not deliver (no in-kernel LAPIC halts).
    Hlt,
    /// Triple fault or similar: the guest wants a reset.
    Shutdown,
    /// A PSCI/ACPI style system event; `Reset` or `Shutdown` as the guest asked.
    SystemReset,
    SystemShutdown,
    /// `run` was interrupted by a signal (a kick from another thread); just check and rerun.
    Interrupted,
    /// The hypervisor could not enter the guest; hardware reason attached.
    FailEntry(u64),
    InternalError,
    /// Anything else, with a description for the log.
    Unhandled(String),
}

/// One virtual CPU. Register calls use x86 state.
pub trait Vcpu: Send {
    fn run(&mut self) -> Result<VcpuExit<'_>>;
    fn regs(&self) -> Result<Regs>;
    fn set_regs(&self, regs: &Regs) -> Result<()>;
    fn sregs(&self) -> Result<SpecialRegs>;
    fn set_sregs(&self, sregs: &SpecialRegs) -> Result<()>;
    fn set_fpu(&self, fpu: &Fpu) -> Result<()>;
    /// Gives the vCPU the host's supported CPUID, with its APIC id and the CPU count filled in.
    fn setup_cpuid(&self, cpu_count: u8) -> Result<()>;
    /// Writes model-specific registers (index, value).
    fn set_msrs(&self, msrs: &[(u32, u64)]) -> Result<()>;
    /// Configures the local APIC's LINT0 as ExtINT and LINT1 as NMI, as firmware would.
    fn setup_lapic(&self) -> Result<()>;
    /// Whether this vCPU can never run again on its own: halted with interrupts disabled, or
    /// an application processor still waiting for its start-up IPI. Linux's halt (its power-off
    /// without ACPI) leaves every vCPU like this; the in-kernel LAPIC never reports that HLT.
    fn stopped_for_good(&self) -> Result<bool>;
}
