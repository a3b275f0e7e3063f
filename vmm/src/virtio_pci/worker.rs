//! The thread that serves queue notifications arriving through ioeventfds, and polls the device
//! for asynchronous completions (fences) while the guest is not notifying.

use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::{debug, warn};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{VirtioPciDevice, VirtioPciError};

/// How often the device is polled for completions when nothing else happens.
const POLL_INTERVAL: Duration = Duration::from_millis(5);
const STOP_TOKEN: u64 = u64::MAX;

/// Serves one [`VirtioPciDevice`] until dropped.
pub struct Worker {
    stop: EventFd,
    thread: Option<JoinHandle<()>>,
}

impl Worker {
    pub fn spawn(
        device: Arc<Mutex<VirtioPciDevice>>,
        name: &str,
    ) -> Result<Worker, VirtioPciError> {
        let notify = device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .notify_fds()?;
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        for (q, fd) in notify.iter().enumerate() {
            let event = EpollEvent::new(EventSet::IN, q as u64);
            epoll.ctl(ControlOperation::Add, fd.as_raw_fd(), event)?;
        }
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP_TOKEN),
        )?;
        let stop_clone = stop.try_clone()?;
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || serve(device, epoll, notify, stop_clone))?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }
}

fn serve(device: Arc<Mutex<VirtioPciDevice>>, epoll: Epoll, notify: Vec<EventFd>, _stop: EventFd) {
    let mut events = vec![EpollEvent::default(); notify.len() + 1];
    loop {
        let n = match epoll.wait(POLL_INTERVAL.as_millis() as i32, &mut events) {
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                warn!(%err, "virtio-pci worker: epoll failed; stopping");
                return;
            }
        };
        let mut dev = device.lock().unwrap_or_else(|e| e.into_inner());
        for event in &events[..n] {
            let token = event.data();
            if token == STOP_TOKEN {
                debug!("virtio-pci worker: stopping");
                return;
            }
            let q = token as usize;
            // Drain the counter; several notifications fold into one pass over the queue.
            let _ = notify[q].read();
            dev.process_queue(q);
        }
        if n == 0 {
            dev.poll_device();
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.stop.write(1);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
