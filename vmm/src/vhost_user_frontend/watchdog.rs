//! A deadline on every exchange with the backend. The vhost crate retries a socket read that
//! timed out, so a backend that stops mid-reply would hold the vCPU thread forever; past the
//! deadline the watchdog shuts the socket down, the read sees end of file and the exchange
//! fails like a disconnect. Between exchanges its thread sleeps (no periodic wake-ups).

use std::os::fd::RawFd;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use tracing::warn;

#[derive(Default)]
struct State {
    deadline: Option<Instant>,
    /// The watchdog was dropped: the thread ends.
    closed: bool,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

pub struct Watchdog {
    shared: Arc<Shared>,
    timeout: Duration,
}

impl Watchdog {
    /// Watches socket `fd` (which must outlive the returned watchdog).
    pub fn new(fd: RawFd, timeout: Duration) -> std::io::Result<Watchdog> {
        let shared = Arc::new(Shared::default());
        let watched = shared.clone();
        std::thread::Builder::new()
            .name("vhost-user-watchdog".into())
            .spawn(move || watch(&watched, fd))?;
        Ok(Watchdog { shared, timeout })
    }

    /// Runs `exchange` with the deadline armed.
    pub fn guard<R>(&self, exchange: impl FnOnce() -> R) -> R {
        self.guard_within(self.timeout, exchange)
    }

    /// Runs `exchange` with a deadline `limit` from now.
    pub fn guard_within<R>(&self, limit: Duration, exchange: impl FnOnce() -> R) -> R {
        self.shared.lock().deadline = Some(Instant::now() + limit);
        self.shared.changed.notify_one();
        let result = exchange();
        // Disarmed without a wake-up: a thread waiting for the old deadline finds none.
        self.shared.lock().deadline = None;
        result
    }
}

impl Drop for Watchdog {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_one();
    }
}

fn watch(shared: &Shared, fd: RawFd) {
    let mut state = shared.lock();
    loop {
        if state.closed {
            return;
        }
        state = match state.deadline {
            None => shared
                .changed
                .wait(state)
                .unwrap_or_else(|e| e.into_inner()),
            Some(deadline) if Instant::now() < deadline => {
                let left = deadline.saturating_duration_since(Instant::now());
                shared
                    .changed
                    .wait_timeout(state, left)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
            Some(_) => {
                warn!("vhost-user: the backend did not answer in time; closing the connection");
                // SAFETY: `fd` is the device's socket; an armed deadline means an exchange on it
                // is in progress, so the device (which owns the socket and this watchdog) is
                // alive; shutting it down affects only that connection.
                unsafe { libc::shutdown(fd, libc::SHUT_RDWR) };
                state.deadline = None;
                state
            }
        };
    }
}
