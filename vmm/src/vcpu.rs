//! vCPU threads: each runs its vCPU and dispatches port-I/O and MMIO exits to the buses until the
//! VM stops (HLT in raw mode, reset, power-off, or an error), then wakes the others.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use vmm_sys_util::signal::{register_signal_handler, Killable, SIGRTMIN};

use crate::bus::Bus;
use crate::hypervisor::{Vcpu, VcpuExit};

/// Why a VM stopped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VmExit {
    /// A vCPU halted with nothing to wake it (raw mode treats HLT as the end).
    Halted,
    /// The guest asked for a reset (i8042 pulse, triple fault, system event).
    Reset,
    /// The guest asked to power off.
    PowerOff,
    /// The host stopped the VM (e.g. a screenshot was taken and the run is over).
    Stopped,
    /// A vCPU hit something it cannot go on from.
    Error(String),
}

/// Why vCPU threads could not start.
#[derive(Debug, thiserror::Error)]
pub enum VcpuError {
    #[error("registering the vCPU kick signal handler failed")]
    Signal(#[source] vmm_sys_util::errno::Error),
    #[error("spawning a vCPU thread failed")]
    Spawn(#[source] std::io::Error),
}

/// The first stop reason wins; everyone waiting learns it.
#[derive(Default)]
pub struct ExitSignal {
    reason: Mutex<Option<VmExit>>,
    cond: Condvar,
}

impl ExitSignal {
    pub fn new() -> Arc<ExitSignal> {
        Arc::new(ExitSignal::default())
    }

    /// Records `reason` unless the VM is already stopping.
    pub fn request(&self, reason: VmExit) {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        if r.is_none() {
            *r = Some(reason);
            self.cond.notify_all();
        }
    }

    pub fn requested(&self) -> Option<VmExit> {
        self.reason
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Waits up to `timeout` for a stop request.
    pub fn wait_timeout(&self, timeout: Duration) -> Option<VmExit> {
        let r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        let (r, _) = self
            .cond
            .wait_timeout_while(r, timeout, |r| r.is_none())
            .unwrap_or_else(|e| e.into_inner());
        r.clone()
    }

    /// Blocks until some thread requests a stop.
    pub fn wait(&self) -> VmExit {
        let mut r = self.reason.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(reason) = r.clone() {
                return reason;
            }
            r = self.cond.wait(r).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// A vCPU with what it dispatches exits to.
pub struct VcpuRunner {
    pub vcpu: Box<dyn Vcpu>,
    pub id: u8,
    pub pio: Arc<Bus>,
    pub mmio: Arc<Bus>,
    /// HLT stops the VM (raw mode, no interrupt controller); otherwise it is logged and resumed.
    pub hlt_stops: bool,
    pub exit: Arc<ExitSignal>,
}

impl VcpuRunner {
    /// Runs until the VM stops; returns the reason this vCPU saw (or that another one set).
    pub fn run(&mut self) -> VmExit {
        self.run_reporting(None)
    }

    /// [`Self::run`], also keeping `stopped` telling whether the vCPU was stopped for good when
    /// last kicked (see [`Vcpu::stopped_for_good`]).
    fn run_reporting(&mut self, stopped: Option<&AtomicBool>) -> VmExit {
        loop {
            if let Some(reason) = self.exit.requested() {
                return reason;
            }
            match self.step(stopped) {
                Some(reason) => {
                    self.exit.request(reason.clone());
                    return reason;
                }
                None => continue,
            }
        }
    }

    /// Where the vCPU is, for error messages.
    fn where_now(&self) -> String {
        match (self.vcpu.regs(), self.vcpu.sregs()) {
            (Ok(r), Ok(s)) => format!(
                "rip {:#x} rsp {:#x} cr0 {:#x} cr3 {:#x} cr4 {:#x} efer {:#x}",
                r.rip, r.rsp, s.cr0, s.cr3, s.cr4, s.efer
            ),
            _ => "an unknown place".into(),
        }
    }

    /// Runs the vCPU once and serves its exit; `Some` when the VM must stop.
    fn step(&mut self, stopped: Option<&AtomicBool>) -> Option<VmExit> {
        let exit = match self.vcpu.run() {
            Ok(exit) => exit,
            Err(e) => return Some(VmExit::Error(format!("vCPU {}: {e}", self.id))),
        };
        if let Some(flag) = stopped {
            if !matches!(exit, VcpuExit::Interrupted) {
                flag.store(false, Ordering::Release);
            }
        }
        match exit {
            VcpuExit::IoIn(port, data) => {
                if !self.pio.read(port.into(), data) {
                    data.fill(0xff);
                    tracing::trace!("unhandled port read {port:#x}");
                }
            }
            VcpuExit::IoOut(port, data) => {
                if !self.pio.write(port.into(), data) {
                    tracing::trace!("unhandled port write {port:#x} <- {data:x?}");
                }
            }
            VcpuExit::MmioRead(addr, data) => {
                if !self.mmio.read(addr, data) {
                    data.fill(0xff);
                    tracing::debug!("unhandled MMIO read {addr:#x}");
                }
            }
            VcpuExit::MmioWrite(addr, data) => {
                if !self.mmio.write(addr, data) {
                    tracing::debug!("unhandled MMIO write {addr:#x} <- {data:x?}");
                }
            }
            VcpuExit::Hlt if self.hlt_stops => return Some(VmExit::Halted),
            VcpuExit::Hlt => tracing::debug!("vCPU {} halted", self.id),
            VcpuExit::Interrupted => {
                if let Some(flag) = stopped {
                    let dead = self.vcpu.stopped_for_good().unwrap_or(false);
                    flag.store(dead, Ordering::Release);
                }
            }
            VcpuExit::Shutdown | VcpuExit::SystemReset => return Some(VmExit::Reset),
            VcpuExit::SystemShutdown => return Some(VmExit::PowerOff),
            VcpuExit::FailEntry(reason) => {
                return Some(VmExit::Error(format!(
                    "vCPU {}: entry failed, hardware reason {reason:#x}",
                    self.id
                )))
            }
            VcpuExit::InternalError => {
                return Some(VmExit::Error(format!(
                    "vCPU {}: hypervisor internal error (emulation failure?) at {}",
                    self.id,
                    self.where_now()
                )))
            }
            VcpuExit::Unhandled(what) => {
                return Some(VmExit::Error(format!(
                    "vCPU {}: unhandled exit {what}",
                    self.id
                )))
            }
        }
        None
    }
}

extern "C" fn kick_handler(_: libc::c_int, _: *mut libc::siginfo_t, _: *mut libc::c_void) {}

/// The signal that kicks a vCPU thread out of KVM_RUN.
fn kick_signal() -> libc::c_int {
    SIGRTMIN()
}

/// How often a waiting VMM checks whether the guest halted every vCPU for good.
const HALT_CHECK_PERIOD: Duration = Duration::from_millis(500);

/// Running vCPU threads.
pub struct VcpuThreads {
    handles: Vec<JoinHandle<VmExit>>,
    /// Per vCPU: stopped for good when last kicked.
    stopped: Vec<Arc<AtomicBool>>,
    exit: Arc<ExitSignal>,
}

impl VcpuThreads {
    /// Starts one thread per runner.
    pub fn spawn(runners: Vec<VcpuRunner>, exit: Arc<ExitSignal>) -> Result<Self, VcpuError> {
        register_signal_handler(kick_signal(), kick_handler).map_err(VcpuError::Signal)?;
        let mut handles = Vec::new();
        let mut stopped = Vec::new();
        for mut runner in runners {
            let flag = Arc::new(AtomicBool::new(false));
            stopped.push(flag.clone());
            let handle = std::thread::Builder::new()
                .name(format!("vcpu{}", runner.id))
                .spawn(move || runner.run_reporting(Some(&flag)))
                .map_err(VcpuError::Spawn)?;
            handles.push(handle);
        }
        Ok(VcpuThreads {
            handles,
            stopped,
            exit,
        })
    }

    /// Waits for the VM to stop, then stops every vCPU thread and joins them. A guest that
    /// halts every vCPU with interrupts off (Linux's power-off without ACPI) counts as powered
    /// off once two checks in a row see it so.
    pub fn wait(self) -> VmExit {
        self.wait_with(|_| {})
    }

    /// [`Self::wait`], calling `tick` about every half second while the guest runs (for host
    /// work such as timed or requested screenshots; it may request a stop).
    pub fn wait_with(self, mut tick: impl FnMut(&ExitSignal)) -> VmExit {
        let mut dead_checks = 0;
        let reason = loop {
            if let Some(reason) = self.exit.wait_timeout(HALT_CHECK_PERIOD) {
                break reason;
            }
            tick(&self.exit);
            if self.stopped.iter().all(|f| f.load(Ordering::Acquire)) {
                dead_checks += 1;
            } else {
                dead_checks = 0;
            }
            if dead_checks >= 2 {
                tracing::info!("every vCPU halted with interrupts disabled: the guest powered off");
                self.exit.request(VmExit::PowerOff);
                continue;
            }
            // Kicked vCPUs report whether they are stopped for good.
            for handle in &self.handles {
                let _ = handle.kill(kick_signal());
            }
        };
        self.stop();
        reason
    }

    /// Makes every vCPU leave the guest and joins the threads.
    pub fn stop(self) {
        self.exit.request(VmExit::Stopped);
        for handle in self.handles {
            // A kick that lands before the thread enters KVM_RUN is lost, so repeat until it ends.
            while !handle.is_finished() {
                let _ = handle.kill(kick_signal());
                std::thread::sleep(Duration::from_millis(2));
            }
            if handle.join().is_err() {
                tracing::error!("a vCPU thread panicked");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bus::BusDevice;
    use crate::hypervisor::mock::{MockExit, MockHypervisor};
    use crate::hypervisor::Hypervisor;

    #[derive(Default)]
    struct Port(Vec<u8>);
    impl BusDevice for Port {
        fn read(&mut self, _: u64, offset: u64, data: &mut [u8]) {
            data.fill(0x40 + offset as u8);
        }
        fn write(&mut self, _: u64, _: u64, data: &[u8]) {
            self.0.extend_from_slice(data);
        }
    }

    fn runner(script: Vec<MockExit>, hlt_stops: bool) -> (VcpuRunner, MockHypervisor) {
        let hv = MockHypervisor::new();
        hv.state.lock().unwrap().vcpu_scripts.insert(0, script);
        let vm = hv.create_vm().unwrap();
        let runner = VcpuRunner {
            vcpu: vm.create_vcpu(0).unwrap(),
            id: 0,
            pio: Arc::new(Bus::new()),
            mmio: Arc::new(Bus::new()),
            hlt_stops,
            exit: ExitSignal::new(),
        };
        (runner, hv)
    }

    #[test]
    fn dispatches_io_to_the_buses_until_hlt() {
        let (mut r, hv) = runner(
            vec![
                MockExit::IoOut {
                    port: 0xf1,
                    data: b"hi".to_vec(),
                },
                MockExit::IoIn { port: 0xf2, len: 1 },
                MockExit::IoIn { port: 0x99, len: 2 },
                MockExit::MmioWrite {
                    addr: 0xd000_0004,
                    data: vec![1, 2, 3, 4],
                },
                MockExit::MmioRead {
                    addr: 0xd000_0000,
                    len: 4,
                },
                MockExit::Hlt,
                MockExit::IoOut {
                    port: 0xf1,
                    data: b"never".to_vec(),
                },
            ],
            true,
        );
        let port = Arc::new(Mutex::new(Port::default()));
        let mmio = Arc::new(Mutex::new(Port::default()));
        r.pio.insert(port.clone(), 0xf1, 2).unwrap();
        r.mmio.insert(mmio.clone(), 0xd000_0000, 0x1000).unwrap();
        assert_eq!(r.run(), VmExit::Halted);
        assert_eq!(port.lock().unwrap().0, b"hi");
        assert_eq!(mmio.lock().unwrap().0, [1, 2, 3, 4]);
        let reads = hv.state.lock().unwrap().read_results[&0].clone();
        // Port 0xf2 is offset 1 of the device; port 0x99 has nothing and reads as all ones.
        assert_eq!(reads, vec![vec![0x41], vec![0xff, 0xff], vec![0x40; 4]]);
        assert_eq!(r.exit.requested(), Some(VmExit::Halted));
    }

    #[test]
    fn hlt_resumes_with_an_interrupt_controller_and_shutdown_is_a_reset() {
        let (mut r, _hv) = runner(vec![MockExit::Hlt, MockExit::Shutdown], false);
        assert_eq!(r.run(), VmExit::Reset);
    }

    /// `count` vCPUs that idle once their scripts end; those in `stopped_for_good` report that
    /// they are halted for good.
    fn idle_vcpus(
        count: u8,
        stopped_for_good: Vec<u8>,
    ) -> (Vec<VcpuRunner>, Arc<ExitSignal>, MockHypervisor) {
        let hv = MockHypervisor::new();
        {
            let mut s = hv.state.lock().unwrap();
            s.idle_when_done = true;
            s.stopped_for_good = stopped_for_good;
        }
        let vm = hv.create_vm().unwrap();
        let exit = ExitSignal::new();
        let runners = (0..count)
            .map(|id| VcpuRunner {
                vcpu: vm.create_vcpu(id).unwrap(),
                id,
                pio: Arc::new(Bus::new()),
                mmio: Arc::new(Bus::new()),
                hlt_stops: false,
                exit: exit.clone(),
            })
            .collect();
        (runners, exit, hv)
    }

    #[test]
    fn a_guest_halted_for_good_on_every_vcpu_is_powered_off() {
        let (runners, exit, _hv) = idle_vcpus(2, vec![0, 1]);
        let threads = VcpuThreads::spawn(runners, exit).unwrap();
        assert_eq!(threads.wait(), VmExit::PowerOff);
    }

    #[test]
    fn one_live_vcpu_keeps_the_guest_running() {
        let (runners, exit, _hv) = idle_vcpus(2, vec![0]);
        let threads = VcpuThreads::spawn(runners, exit.clone()).unwrap();
        // Several halt checks pass without a power-off; then the host stops the VM.
        assert_eq!(exit.wait_timeout(HALT_CHECK_PERIOD * 4), None);
        exit.request(VmExit::Stopped);
        assert_eq!(threads.wait(), VmExit::Stopped);
    }

    #[test]
    fn threads_stop_when_one_vcpu_stops() {
        let (r, _hv) = runner(vec![MockExit::Hlt], true);
        let exit = r.exit.clone();
        let threads = VcpuThreads::spawn(vec![r], exit).unwrap();
        assert_eq!(threads.wait(), VmExit::Halted);
    }
}
