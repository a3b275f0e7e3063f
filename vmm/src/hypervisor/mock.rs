//! A recording hypervisor for tests without /dev/kvm.
//!
//! [`MockVm`] records memory slots, irqfds, ioeventfds and MSI routes in a [`MockVmState`] that
//! tests inspect (and whose irqfds they can read to see whether an interrupt was raised).
//! [`MockVcpu`] replays a scripted list of exits and records what the VMM answered to reads.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::{
    Fpu, Hypervisor, HypervisorError, IoEventAddress, Regs, Result, SpecialRegs, Vcpu, VcpuExit, Vm,
};

/// One scripted vCPU exit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MockExit {
    IoIn { port: u16, len: usize },
    IoOut { port: u16, data: Vec<u8> },
    MmioRead { addr: u64, len: usize },
    MmioWrite { addr: u64, data: Vec<u8> },
    Hlt,
    Shutdown,
}

/// Everything a [`MockVm`] was told, for tests to inspect.
#[derive(Default)]
pub struct MockVmState {
    /// slot -> (guest address, size, host address).
    pub memory_slots: BTreeMap<u32, (u64, u64, u64)>,
    pub irqchip: bool,
    /// (gsi, a clone of the registered eventfd).
    pub irqfds: Vec<(u32, EventFd)>,
    /// (gsi, the resample eventfd) of level-triggered irqfds.
    pub resample_irqfds: Vec<(u32, EventFd)>,
    /// (address, datamatch, a clone of the registered eventfd).
    pub ioeventfds: Vec<(IoEventAddress, Option<u64>, EventFd)>,
    /// gsi -> (MSI address, data).
    pub msi_routes: BTreeMap<u32, (u64, u32)>,
    /// Scripts handed to vCPUs by id when they are created.
    pub vcpu_scripts: BTreeMap<u8, Vec<MockExit>>,
    /// Data the VMM filled in for each scripted read, in order, per vCPU.
    pub read_results: BTreeMap<u8, Vec<Vec<u8>>>,
    pub regs: BTreeMap<u8, Regs>,
    pub sregs: BTreeMap<u8, SpecialRegs>,
    pub msrs: BTreeMap<u8, Vec<(u32, u64)>>,
    /// vCPUs that report being halted for good (see `Vcpu::stopped_for_good`).
    pub stopped_for_good: Vec<u8>,
    /// vCPUs whose script ran out idle (report `Interrupted`) instead of shutting down.
    pub idle_when_done: bool,
    /// Slots ending above this guest address are refused, as KVM refuses addresses beyond the
    /// CPU's physical address width.
    pub max_gpa: Option<u64>,
}

impl MockVmState {
    /// The irqfd registered for `gsi`, if any.
    pub fn irqfd(&self, gsi: u32) -> Option<&EventFd> {
        self.irqfds
            .iter()
            .find(|(g, _)| *g == gsi)
            .map(|(_, fd)| fd)
    }

    /// The ioeventfd registered at `addr`, if any.
    pub fn ioeventfd(&self, addr: IoEventAddress) -> Option<&EventFd> {
        self.ioeventfds
            .iter()
            .find(|(a, _, _)| *a == addr)
            .map(|(_, _, fd)| fd)
    }
}

/// Makes [`MockVm`]s that all share one state.
#[derive(Default, Clone)]
pub struct MockHypervisor {
    pub state: Arc<Mutex<MockVmState>>,
}

impl MockHypervisor {
    pub fn new() -> MockHypervisor {
        MockHypervisor::default()
    }
}

impl Hypervisor for MockHypervisor {
    fn create_vm(&self) -> Result<Box<dyn Vm>> {
        Ok(Box::new(MockVm {
            state: self.state.clone(),
        }))
    }
}

fn clone_fd(fd: &EventFd) -> Result<EventFd> {
    fd.try_clone().map_err(|e| HypervisorError::Ioctl {
        op: "dup eventfd",
        source: e,
    })
}

/// A VM that records what it is told.
pub struct MockVm {
    pub state: Arc<Mutex<MockVmState>>,
}

impl MockVm {
    fn state(&self) -> std::sync::MutexGuard<'_, MockVmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn same_fd(a: &EventFd, b: &EventFd) -> bool {
    use std::os::fd::AsRawFd;
    use std::os::unix::fs::MetadataExt;
    let ino = |fd: &EventFd| {
        std::fs::metadata(format!("/proc/self/fd/{}", fd.as_raw_fd()))
            .map(|m| m.ino())
            .ok()
    };
    a.as_raw_fd() == b.as_raw_fd() || (ino(a).is_some() && ino(a) == ino(b))
}

impl Vm for MockVm {
    fn set_user_memory_region(&self, slot: u32, guest: u64, size: u64, host: u64) -> Result<()> {
        let mut s = self.state();
        if s.max_gpa
            .is_some_and(|max| guest.saturating_add(size) > max)
        {
            return Err(HypervisorError::Unsupported(
                "a slot beyond the physical address width",
            ));
        }
        if size == 0 {
            s.memory_slots.remove(&slot);
        } else {
            s.memory_slots.insert(slot, (guest, size, host));
        }
        Ok(())
    }

    fn create_irq_chip(&self) -> Result<()> {
        self.state().irqchip = true;
        Ok(())
    }

    fn register_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        let fd = clone_fd(fd)?;
        self.state().irqfds.push((gsi, fd));
        Ok(())
    }

    fn register_resample_irqfd(&self, fd: &EventFd, resample: &EventFd, gsi: u32) -> Result<()> {
        let (fd, resample) = (clone_fd(fd)?, clone_fd(resample)?);
        let mut s = self.state();
        s.resample_irqfds.push((gsi, resample));
        s.irqfds.push((gsi, fd));
        Ok(())
    }

    fn create_vfio_device(&self) -> Result<vfio_ioctls::VfioDeviceFd> {
        Err(HypervisorError::Unsupported(
            "a VFIO device (mock hypervisor)",
        ))
    }

    fn unregister_irqfd(&self, fd: &EventFd, gsi: u32) -> Result<()> {
        let mut s = self.state();
        let before = s.irqfds.len();
        s.irqfds.retain(|(g, f)| !(*g == gsi && same_fd(f, fd)));
        if s.irqfds.len() == before {
            return Err(HypervisorError::NotRegistered {
                what: "irqfd",
                key: gsi.into(),
            });
        }
        Ok(())
    }

    fn register_ioeventfd(
        &self,
        fd: &EventFd,
        addr: IoEventAddress,
        datamatch: Option<u64>,
    ) -> Result<()> {
        let fd = clone_fd(fd)?;
        self.state().ioeventfds.push((addr, datamatch, fd));
        Ok(())
    }

    fn unregister_ioeventfd(&self, fd: &EventFd, addr: IoEventAddress) -> Result<()> {
        let mut s = self.state();
        let before = s.ioeventfds.len();
        s.ioeventfds
            .retain(|(a, _, f)| !(*a == addr && same_fd(f, fd)));
        if s.ioeventfds.len() == before {
            let (IoEventAddress::Pio(key) | IoEventAddress::Mmio(key)) = addr;
            return Err(HypervisorError::NotRegistered {
                what: "ioeventfd",
                key,
            });
        }
        Ok(())
    }

    fn set_msi_route(&self, gsi: u32, address: u64, data: u32) -> Result<()> {
        if gsi < 24 {
            return Err(HypervisorError::Unsupported(
                "MSI routes on IOAPIC GSIs (0..24)",
            ));
        }
        self.state().msi_routes.insert(gsi, (address, data));
        Ok(())
    }

    fn remove_msi_route(&self, gsi: u32) -> Result<()> {
        self.state()
            .msi_routes
            .remove(&gsi)
            .map(|_| ())
            .ok_or(HypervisorError::NotRegistered {
                what: "MSI route",
                key: gsi.into(),
            })
    }

    fn create_vcpu(&self, id: u8) -> Result<Box<dyn Vcpu>> {
        let script = self.state().vcpu_scripts.remove(&id).unwrap_or_default();
        Ok(Box::new(MockVcpu {
            id,
            state: self.state.clone(),
            script: script.into(),
            pending_read: None,
            buffer: Vec::new(),
        }))
    }
}

/// A vCPU replaying a script; once the script is exhausted it reports `Shutdown` (or idles,
/// see [`MockVmState::idle_when_done`]).
pub struct MockVcpu {
    id: u8,
    state: Arc<Mutex<MockVmState>>,
    script: VecDeque<MockExit>,
    /// The last exit was a read whose answer is in `buffer`.
    pending_read: Option<()>,
    buffer: Vec<u8>,
}

impl MockVcpu {
    fn state(&self) -> std::sync::MutexGuard<'_, MockVmState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Vcpu for MockVcpu {
    fn run(&mut self) -> Result<VcpuExit<'_>> {
        if self.pending_read.take().is_some() {
            let answer = self.buffer.clone();
            let id = self.id;
            self.state()
                .read_results
                .entry(id)
                .or_default()
                .push(answer);
        }
        let Some(exit) = self.script.pop_front() else {
            if self.state().idle_when_done {
                // Like a halted vCPU that a signal kicked out of the hypervisor.
                std::thread::sleep(std::time::Duration::from_millis(1));
                return Ok(VcpuExit::Interrupted);
            }
            return Ok(VcpuExit::Shutdown);
        };
        Ok(match exit {
            MockExit::IoIn { port, len } => {
                self.buffer = vec![0; len];
                self.pending_read = Some(());
                VcpuExit::IoIn(port, &mut self.buffer)
            }
            MockExit::IoOut { port, data } => {
                self.buffer = data;
                VcpuExit::IoOut(port, &self.buffer)
            }
            MockExit::MmioRead { addr, len } => {
                self.buffer = vec![0; len];
                self.pending_read = Some(());
                VcpuExit::MmioRead(addr, &mut self.buffer)
            }
            MockExit::MmioWrite { addr, data } => {
                self.buffer = data;
                VcpuExit::MmioWrite(addr, &self.buffer)
            }
            MockExit::Hlt => VcpuExit::Hlt,
            MockExit::Shutdown => VcpuExit::Shutdown,
        })
    }

    fn regs(&self) -> Result<Regs> {
        Ok(self.state().regs.get(&self.id).copied().unwrap_or_default())
    }

    fn set_regs(&self, regs: &Regs) -> Result<()> {
        let id = self.id;
        self.state().regs.insert(id, *regs);
        Ok(())
    }

    fn sregs(&self) -> Result<SpecialRegs> {
        Ok(self
            .state()
            .sregs
            .get(&self.id)
            .copied()
            .unwrap_or_default())
    }

    fn set_sregs(&self, sregs: &SpecialRegs) -> Result<()> {
        let id = self.id;
        self.state().sregs.insert(id, *sregs);
        Ok(())
    }

    fn set_fpu(&self, _fpu: &Fpu) -> Result<()> {
        Ok(())
    }

    fn setup_cpuid(&self, _cpu_count: u8) -> Result<()> {
        Ok(())
    }

    fn set_msrs(&self, msrs: &[(u32, u64)]) -> Result<()> {
        let id = self.id;
        self.state()
            .msrs
            .entry(id)
            .or_default()
            .extend_from_slice(msrs);
        Ok(())
    }

    fn setup_lapic(&self) -> Result<()> {
        Ok(())
    }

    fn stopped_for_good(&self) -> Result<bool> {
        Ok(self.state().stopped_for_good.contains(&self.id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_interrupt_plumbing_and_rejects_unknown_removals() {
        let hv = MockHypervisor::new();
        let vm = hv.create_vm().unwrap();
        let irq = EventFd::new(0).unwrap();
        vm.register_irqfd(&irq, 30).unwrap();
        vm.set_msi_route(30, 0xfee0_0000, 0x41).unwrap();
        assert!(vm.set_msi_route(5, 0xfee0_0000, 0x41).is_err());
        irq.write(1).unwrap();
        {
            let s = hv.state.lock().unwrap();
            assert_eq!(s.irqfd(30).unwrap().read().unwrap(), 1);
            assert_eq!(s.msi_routes[&30], (0xfee0_0000, 0x41));
        }
        vm.unregister_irqfd(&irq, 30).unwrap();
        assert!(vm.unregister_irqfd(&irq, 30).is_err());
        assert!(vm.remove_msi_route(31).is_err());

        let notify = EventFd::new(0).unwrap();
        let addr = IoEventAddress::Mmio(0xe000_0000);
        vm.register_ioeventfd(&notify, addr, None).unwrap();
        assert!(hv.state.lock().unwrap().ioeventfd(addr).is_some());
        vm.unregister_ioeventfd(&notify, addr).unwrap();
        assert!(hv.state.lock().unwrap().ioeventfd(addr).is_none());
    }

    #[test]
    fn vcpu_replays_its_script_and_records_read_answers() {
        let hv = MockHypervisor::new();
        hv.state.lock().unwrap().vcpu_scripts.insert(
            0,
            vec![
                MockExit::IoIn { port: 0x60, len: 1 },
                MockExit::IoOut {
                    port: 0xf1,
                    data: vec![b'x'],
                },
            ],
        );
        let vm = hv.create_vm().unwrap();
        let mut vcpu = vm.create_vcpu(0).unwrap();
        match vcpu.run().unwrap() {
            VcpuExit::IoIn(0x60, data) => data[0] = 0x5a,
            other => panic!("unexpected {other:?}"),
        }
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::IoOut(0xf1, b"x")));
        assert!(matches!(vcpu.run().unwrap(), VcpuExit::Shutdown));
        assert_eq!(hv.state.lock().unwrap().read_results[&0], vec![vec![0x5a]]);
    }
}
