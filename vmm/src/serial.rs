//! The 16550 serial console (vm-superio) on COM1, interrupting through an irqfd.

use std::io::Write;
use std::sync::{Arc, Mutex};

use vm_superio::{Serial, Trigger};
use vmm_sys_util::eventfd::EventFd;

use crate::bus::BusDevice;

/// COM1's ports and IRQ.
pub const COM1_PORT: u64 = 0x3f8;
pub const COM1_LEN: u64 = 8;
pub const COM1_IRQ: u32 = 4;

/// Why the serial console failed.
#[derive(Debug, thiserror::Error)]
pub enum SerialError {
    #[error("creating the serial interrupt eventfd failed")]
    EventFd(#[source] std::io::Error),
}

/// Raises the serial IRQ by signalling its irqfd.
pub struct IrqTrigger(pub EventFd);

impl Trigger for IrqTrigger {
    type E = std::io::Error;
    fn trigger(&self) -> std::io::Result<()> {
        self.0.write(1)
    }
}

/// A 16550 UART on a bus; what the guest transmits goes to `out`.
pub struct SerialDevice {
    uart: Serial<IrqTrigger, vm_superio::serial::NoEvents, Box<dyn Write + Send>>,
}

impl SerialDevice {
    /// A UART writing to `out`; its interrupt eventfd is returned for the VM to register.
    pub fn new(out: Box<dyn Write + Send>) -> Result<(SerialDevice, EventFd), SerialError> {
        let evt = EventFd::new(libc::EFD_NONBLOCK).map_err(SerialError::EventFd)?;
        let trigger = IrqTrigger(evt.try_clone().map_err(SerialError::EventFd)?);
        Ok((
            SerialDevice {
                uart: Serial::new(trigger, out),
            },
            evt,
        ))
    }

    /// Queues host input for the guest to read; returns how much fitted in the FIFO.
    pub fn enqueue_input(&mut self, input: &[u8]) -> usize {
        self.uart.enqueue_raw_bytes(input).unwrap_or(0)
    }
}

impl BusDevice for SerialDevice {
    fn read(&mut self, _base: u64, offset: u64, data: &mut [u8]) {
        data.fill(0);
        if let (Some(first), Ok(reg)) = (data.first_mut(), u8::try_from(offset)) {
            *first = self.uart.read(reg);
        }
    }

    fn write(&mut self, _base: u64, offset: u64, data: &[u8]) {
        let (Some(&value), Ok(reg)) = (data.first(), u8::try_from(offset)) else {
            return;
        };
        if let Err(e) = self.uart.write(reg, value) {
            tracing::warn!("serial write to register {reg} failed: {e:?}");
        }
    }
}

/// Feeds the host's stdin to the guest's serial port from a background thread (detached: it
/// ends with the process).
pub fn forward_stdin(serial: Arc<Mutex<SerialDevice>>) {
    std::thread::Builder::new()
        .name("serial-stdin".into())
        .spawn(move || {
            use std::io::Read;
            let mut buf = [0u8; 64];
            let mut stdin = std::io::stdin();
            while let Ok(n) = stdin.read(&mut buf) {
                if n == 0 {
                    break;
                }
                let mut pending = &buf[..n];
                while !pending.is_empty() {
                    let taken = serial
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .enqueue_input(pending);
                    pending = &pending[taken..];
                    if taken == 0 {
                        std::thread::sleep(std::time::Duration::from_millis(5));
                    }
                }
            }
        })
        .ok();
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A writer tests can read back.
    #[derive(Clone, Default)]
    pub(crate) struct SharedBuf(pub Arc<Mutex<Vec<u8>>>);

    impl Write for SharedBuf {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn transmits_to_the_writer_and_interrupts_when_asked() {
        let out = SharedBuf::default();
        let (mut dev, irq) = SerialDevice::new(Box::new(out.clone())).unwrap();
        // Enable the "transmitter holding register empty" interrupt (IER bit 1), then send.
        dev.write(COM1_PORT, 1, &[0x02]);
        for b in b"ok\n" {
            dev.write(COM1_PORT, 0, &[*b]);
        }
        assert_eq!(out.0.lock().unwrap().as_slice(), b"ok\n");
        assert!(irq.read().unwrap() >= 1);

        // Input shows up in the receive buffer with "data ready" in the line status register.
        assert_eq!(dev.enqueue_input(b"x"), 1);
        let mut lsr = [0u8];
        dev.read(COM1_PORT, 5, &mut lsr);
        assert_eq!(lsr[0] & 1, 1);
        let mut rbr = [0u8];
        dev.read(COM1_PORT, 0, &mut rbr);
        assert_eq!(rbr[0], b'x');
    }
}
