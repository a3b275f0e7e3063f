//! A deadline on every exchange with the backend. The vhost crate retries a socket read that
//! timed out, so a backend that stops mid-reply would hold the vCPU thread forever; past the
//! deadline the watchdog shuts the socket down, the read sees end of file and the exchange
//! fails like a disconnect.

use std::os::fd::RawFd;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use tracing::warn;

const TICK: Duration = Duration::from_millis(20);

pub struct Watchdog {
    deadline: Arc<Mutex<Option<Instant>>>,
    timeout: Duration,
}

impl Watchdog {
    /// Watches socket `fd` (which must outlive the returned watchdog).
    pub fn new(fd: RawFd, timeout: Duration) -> std::io::Result<Watchdog> {
        let deadline = Arc::new(Mutex::new(None));
        let watched = Arc::downgrade(&deadline);
        std::thread::Builder::new()
            .name("vhost-user-watchdog".into())
            .spawn(move || watch(watched, fd))?;
        Ok(Watchdog { deadline, timeout })
    }

    /// Runs `exchange` with the deadline armed.
    pub fn guard<R>(&self, exchange: impl FnOnce() -> R) -> R {
        self.guard_within(self.timeout, exchange)
    }

    /// Runs `exchange` with a deadline `limit` from now.
    pub fn guard_within<R>(&self, limit: Duration, exchange: impl FnOnce() -> R) -> R {
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now() + limit);
        let result = exchange();
        *self.deadline.lock().unwrap_or_else(|e| e.into_inner()) = None;
        result
    }
}

fn watch(deadline: Weak<Mutex<Option<Instant>>>, fd: RawFd) {
    loop {
        std::thread::sleep(TICK);
        // The device (and its socket) is gone once the last strong reference is.
        let Some(deadline) = deadline.upgrade() else {
            return;
        };
        let mut armed = deadline.lock().unwrap_or_else(|e| e.into_inner());
        if armed.is_some_and(|d| Instant::now() > d) {
            warn!("vhost-user: the backend did not answer in time; closing the connection");
            // SAFETY: `fd` is the device's socket, open while the device (which holds the
            // strong reference we hold now, and whose exchange is in progress) exists;
            // shutting it down affects only that connection.
            unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
            *armed = None;
        }
    }
}
