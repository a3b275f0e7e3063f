//! Raw mode, the seed's minimal VMM: a flat binary at guest address 0 in real mode, one vCPU,
//! no interrupt controller. Bytes the guest writes to port 0xf1 go to the output; HLT ends the
//! run.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_memory::{Bytes, GuestAddress};

use crate::bus::{BusDevice, BusError};
use crate::hypervisor::{Hypervisor, HypervisorError};
use crate::vcpu::{VcpuRunner, VmExit};
use crate::vm::{Vm, VmError};

/// The port whose writes are the guest's output.
pub const OUTPUT_PORT: u64 = 0xf1;
/// Guest RAM in raw mode unless asked otherwise: a real-mode guest addresses 1 MiB.
pub const DEFAULT_MEMORY: u64 = 2 << 20;

/// Why a raw run failed.
#[derive(Debug, thiserror::Error)]
pub enum RawError {
    #[error("the image is {image} bytes; guest memory is only {memory}")]
    TooBig { image: usize, memory: u64 },
    #[error("the image is empty")]
    Empty,
    #[error(transparent)]
    Vm(#[from] VmError),
    #[error(transparent)]
    Hypervisor(#[from] HypervisorError),
    #[error(transparent)]
    Bus(#[from] BusError),
    #[error("writing the image into guest memory failed")]
    Load(#[source] vm_memory::GuestMemoryError),
}

/// Writes every byte the guest sends to the port to `out`.
pub struct OutputPort(pub Box<dyn Write + Send>);

impl BusDevice for OutputPort {
    fn read(&mut self, _base: u64, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write(&mut self, _base: u64, _offset: u64, data: &[u8]) {
        if let Err(e) = self.0.write_all(data) {
            tracing::warn!("guest output lost: {e}");
        }
    }
}

/// Builds a raw-mode VM: `image` at address 0, port 0xf1 to `out`, no interrupt controller.
/// Devices (e.g. `--gpu`) may be added to the returned VM before [`run_raw_vm`].
pub fn build_raw_vm(
    hv: &dyn Hypervisor,
    image: &[u8],
    memory_size: u64,
    out: Box<dyn Write + Send>,
) -> Result<(Vm, Arc<Mutex<OutputPort>>), RawError> {
    if image.is_empty() {
        return Err(RawError::Empty);
    }
    if image.len() as u64 > memory_size {
        return Err(RawError::TooBig {
            image: image.len(),
            memory: memory_size,
        });
    }
    let vm = Vm::new(hv, memory_size, false)?;
    vm.memory
        .ram
        .write_slice(image, GuestAddress(0))
        .map_err(RawError::Load)?;
    let output = Arc::new(Mutex::new(OutputPort(out)));
    vm.pio.insert(output.clone(), OUTPUT_PORT, 1)?;
    Ok((vm, output))
}

/// Runs vCPU 0 of a raw VM in real mode at 0 on this thread until it halts (or stops
/// otherwise); returns why it stopped.
pub fn run_raw_vm(vm: &Vm, output: &Mutex<OutputPort>) -> Result<VmExit, RawError> {
    let vcpu = vm.hv.create_vcpu(0)?;
    // Micro-guests that enter long mode need CPUID to show LM (KVM refuses EFER.LME otherwise).
    vcpu.setup_cpuid(1)?;
    let mut sregs = vcpu.sregs()?;
    sregs.cs.base = 0;
    sregs.cs.selector = 0;
    vcpu.set_sregs(&sregs)?;
    let mut regs = vcpu.regs()?;
    regs.rip = 0;
    regs.rflags = 2;
    vcpu.set_regs(&regs)?;

    let mut runner = VcpuRunner {
        vcpu,
        id: 0,
        pio: vm.pio.clone(),
        mmio: vm.mmio.clone(),
        hlt_stops: true,
        exit: vm.exit.clone(),
    };
    let reason = runner.run();
    let _ = output.lock().unwrap_or_else(|e| e.into_inner()).0.flush();
    Ok(reason)
}

/// [`build_raw_vm`] then [`run_raw_vm`], for a VM with no extra devices.
pub fn run_raw(
    hv: &dyn Hypervisor,
    image: &[u8],
    memory_size: u64,
    out: Box<dyn Write + Send>,
) -> Result<VmExit, RawError> {
    let (vm, output) = build_raw_vm(hv, image, memory_size, out)?;
    run_raw_vm(&vm, &output)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::mock::{MockExit, MockHypervisor};
    use crate::serial::tests::SharedBuf;

    #[test]
    fn starts_at_zero_in_real_mode_and_prints_port_0xf1() {
        let hv = MockHypervisor::new();
        hv.state.lock().unwrap().vcpu_scripts.insert(
            0,
            vec![
                MockExit::IoOut {
                    port: 0xf1,
                    data: b"h".to_vec(),
                },
                MockExit::IoOut {
                    port: 0x80,
                    data: b"x".to_vec(),
                },
                MockExit::IoOut {
                    port: 0xf1,
                    data: b"i".to_vec(),
                },
                MockExit::Hlt,
            ],
        );
        let out = SharedBuf::default();
        let reason = run_raw(&hv, &[0xf4], DEFAULT_MEMORY, Box::new(out.clone())).unwrap();
        assert_eq!(reason, VmExit::Halted);
        assert_eq!(out.0.lock().unwrap().as_slice(), b"hi");
        let s = hv.state.lock().unwrap();
        assert_eq!(s.regs[&0].rip, 0);
        assert_eq!(s.sregs[&0].cs.base, 0);
        assert_eq!(
            s.memory_slots[&0],
            (0, DEFAULT_MEMORY, s.memory_slots[&0].2)
        );
    }

    #[test]
    fn rejects_empty_and_oversized_images() {
        let hv = MockHypervisor::new();
        let sink = || Box::new(std::io::sink()) as Box<dyn Write + Send>;
        assert!(matches!(
            run_raw(&hv, &[], DEFAULT_MEMORY, sink()),
            Err(RawError::Empty)
        ));
        let big = vec![0u8; (DEFAULT_MEMORY + 1) as usize];
        assert!(matches!(
            run_raw(&hv, &big, DEFAULT_MEMORY, sink()),
            Err(RawError::TooBig { .. })
        ));
    }
}
