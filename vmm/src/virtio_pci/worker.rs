//! The thread that serves queue notifications arriving through ioeventfds, and polls the device
//! for asynchronous completions (fences) while the guest is not notifying, as often as the
//! device asks, or when one of its poll descriptors fires.

use std::os::fd::{AsRawFd, RawFd};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use tracing::{debug, warn};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::{VirtioPciDevice, VirtioPciError};

const STOP_TOKEN: u64 = u64::MAX;
/// A device's poll descriptor fired.
const POLL_TOKEN: u64 = u64::MAX - 1;
/// The transport says what to wait on changed.
const REARM_TOKEN: u64 = u64::MAX - 2;

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
        let (notify, calls, rearm) = {
            let dev = device.lock().unwrap_or_else(|e| e.into_inner());
            (dev.notify_fds()?, dev.call_fds()?, dev.rearm_fd()?)
        };
        let stop = EventFd::new(EFD_NONBLOCK)?;
        let epoll = Epoll::new()?;
        epoll.ctl(
            ControlOperation::Add,
            stop.as_raw_fd(),
            EpollEvent::new(EventSet::IN, STOP_TOKEN),
        )?;
        epoll.ctl(
            ControlOperation::Add,
            rearm.as_raw_fd(),
            EpollEvent::new(EventSet::IN, REARM_TOKEN),
        )?;
        let stop_clone = stop.try_clone()?;
        let waits = Waits {
            epoll,
            notify,
            calls,
            elsewhere: None,
            poll_fds: Vec::new(),
        };
        let thread = std::thread::Builder::new()
            .name(name.to_string())
            .spawn(move || serve(device, waits, stop_clone, rearm))?;
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
    /// The device's poll descriptors registered now.
    poll_fds: Vec<(RawFd, EventSet)>,
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

    /// Registers the device's poll descriptors `wanted` in place of the current ones.
    fn poll_on(&mut self, wanted: &[(RawFd, EventSet)]) -> std::io::Result<()> {
        if self.poll_fds == wanted {
            return Ok(());
        }
        for (fd, _) in std::mem::take(&mut self.poll_fds) {
            // The device may have closed it already (epoll then dropped it): nothing to undo.
            let _ = self
                .epoll
                .ctl(ControlOperation::Delete, fd, EpollEvent::default());
        }
        for &(fd, events) in wanted {
            self.epoll.ctl(
                ControlOperation::Add,
                fd,
                EpollEvent::new(events, POLL_TOKEN),
            )?;
        }
        self.poll_fds = wanted.to_vec();
        Ok(())
    }
}

fn serve(device: Arc<Mutex<VirtioPciDevice>>, mut waits: Waits, _stop: EventFd, rearm: EventFd) {
    let mut events = vec![EpollEvent::default(); waits.notify.len() + 3];
    let (mut elsewhere, mut interval, mut poll_fds) = device
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .worker_waits();
    loop {
        if let Err(err) = waits
            .follow(elsewhere)
            .and_then(|()| waits.poll_on(&poll_fds))
        {
            warn!(%err, "virtio-pci worker: epoll registration failed; stopping");
            return;
        }
        let timeout = interval.map_or(-1, |i| i.as_millis().min(i32::MAX as u128) as i32);
        let n = match waits.epoll.wait(timeout, &mut events) {
            Ok(n) => n,
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(err) => {
                warn!(%err, "virtio-pci worker: epoll failed; stopping");
                return;
            }
        };
        let mut dev = device.lock().unwrap_or_else(|e| e.into_inner());
        let mut poll = n == 0;
        for event in &events[..n] {
            let token = event.data();
            if token == STOP_TOKEN {
                debug!("virtio-pci worker: stopping");
                return;
            }
            if token == POLL_TOKEN {
                poll = true;
                continue;
            }
            if token == REARM_TOKEN {
                let _ = rearm.read();
                continue;
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
        if poll {
            dev.poll_device();
        }
        // Read under the lock already held, for the next wait.
        (elsewhere, interval, poll_fds) = dev.worker_waits();
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
