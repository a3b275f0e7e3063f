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
        let (notify, calls) = {
            let dev = device.lock().unwrap_or_else(|e| e.into_inner());
            (dev.notify_fds()?, dev.call_fds()?)
        };
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP_TOKEN),
        )?;
        let stop_clone = stop.try_clone()?;
        let waits = Waits {
            epoll,
            notify,
            calls,
            elsewhere: None,
        };
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || serve(device, waits, stop_clone))?;
        Ok(Worker {
            stop,
            thread: Some(thread),
        })
    }
}

/// The eventfds the worker waits on: the guest's kicks while the queues are served here, the
/// backend's used-buffer signals while another process serves them (it reads the kicks then;
/// a second reader would steal them).
struct Waits {
    epoll: Epoll,
    notify: Vec<EventFd>,
    calls: Vec<EventFd>,
    /// Which set is registered: `Some(true)` the calls, `Some(false)` the kicks.
    elsewhere: Option<bool>,
}

impl Waits {
    fn follow(&mut self, elsewhere: bool) -> std::io::Result<()> {
        if self.elsewhere == Some(elsewhere) {
            return Ok(());
        }
        if let Some(old) = self.elsewhere.take() {
            for fd in if old { &self.calls } else { &self.notify } {
                let event = EpollEvent::default();
                self.epoll
                    .ctl(ControlOperation::Delete, fd.as_raw_fd(), event)?;
            }
        }
        let fds = if elsewhere { &self.calls } else { &self.notify };
        for (q, fd) in fds.iter().enumerate() {
            let event = EpollEvent::new(EventSet::IN, q as u64);
            self.epoll
                .ctl(ControlOperation::Add, fd.as_raw_fd(), event)?;
        }
        self.elsewhere = Some(elsewhere);
        Ok(())
    }
}

fn serve(device: Arc<Mutex<VirtioPciDevice>>, mut waits: Waits, _stop: EventFd) {
    let mut events = vec![EpollEvent::default(); waits.notify.len() + 1];
    let mut elsewhere = device
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .queues_served_elsewhere();
    loop {
        if let Err(err) = waits.follow(elsewhere) {
            warn!(%err, "virtio-pci worker: epoll registration failed; stopping");
            return;
        }
        let n = match waits
            .epoll
            .wait(POLL_INTERVAL.as_millis() as i32, &mut events)
        {
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
            // Drain the counter; several signals fold into one pass.
            if elsewhere {
                let _ = waits.calls[q].read();
                dev.used_elsewhere(q);
            } else {
                let _ = waits.notify[q].read();
                dev.process_queue(q);
            }
        }
        if n == 0 {
            dev.poll_device();
        }
        // Read under the lock already held, for the next wait.
        elsewhere = dev.queues_served_elsewhere();
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
