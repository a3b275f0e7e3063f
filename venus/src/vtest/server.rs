//! The listening socket: accepts clients and forks one worker process per client. The parent
//! never loads Vulkan, so forking it is safe. A slice's socket serves its clients on threads
//! instead: the slices of one host GPU share one process, its scheduler and its quotas.

use std::{
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
    sync::{
        atomic::{AtomicBool, AtomicUsize, Ordering},
        Arc,
    },
};

use tracing::{info, warn};

use gpu_interface::SliceLimits;

use super::{session::Session, VtestError};
use crate::context::DeviceSelector;

/// Serves clients on `path` until the process is killed.
pub fn serve(path: &Path, selector: DeviceSelector) -> Result<(), VtestError> {
    let _ = std::fs::remove_file(path);
    let listener = UnixListener::bind(path)?;
    // Exited workers are reaped by the kernel.
    // SAFETY: setting a signal disposition; no handler code runs.
    unsafe { libc::signal(libc::SIGCHLD, libc::SIG_IGN) };
    info!("vtest: listening on {}", path.display());
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                warn!("vtest: accept: {e}");
                continue;
            }
        };
        spawn_worker(stream, &selector, &listener);
    }
    Ok(())
}

fn spawn_worker(stream: UnixStream, selector: &DeviceSelector, listener: &UnixListener) {
    // SAFETY: the server process is single-threaded here (nothing has started threads or loaded
    // Vulkan), so the child may run arbitrary code after fork.
    let pid = unsafe { libc::fork() };
    match pid {
        0 => {
            let _ = listener;
            let code = match Session::new(stream, selector.clone()).run() {
                Ok(()) => 0,
                Err(e) => {
                    warn!("vtest worker {}: {e}", std::process::id());
                    1
                }
            };
            // Skip atexit handlers the parent registered (the loader's among them).
            // SAFETY: ends this worker process.
            unsafe { libc::_exit(code) };
        }
        p if p < 0 => warn!("vtest: fork failed: {}", std::io::Error::last_os_error()),
        p => info!("vtest: client served by worker {p}"),
    }
}

/// A slice socket's clients as its server sees them: how many are connected, and whether the
/// socket should stop accepting (checked after each accept; the owner connects once to wake it).
#[derive(Debug, Default)]
pub struct SliceClients {
    pub connected: AtomicUsize,
    pub stop: AtomicBool,
}

/// Serves a slice's clients on `listener`, each on a thread of its own, under `limits`, until
/// the listener fails or `clients.stop` is set. A client that breaks the protocol or
/// disconnects ends alone.
pub fn serve_slice(
    name: &str,
    listener: UnixListener,
    selector: DeviceSelector,
    limits: SliceLimits,
    clients: Arc<SliceClients>,
) -> Result<(), VtestError> {
    for (n, stream) in listener.incoming().enumerate() {
        let stream = stream?;
        if clients.stop.load(Ordering::Acquire) {
            return Ok(());
        }
        let (selector, limits, counted) = (selector.clone(), limits.clone(), clients.clone());
        let label = format!("{name}-{n}");
        clients.connected.fetch_add(1, Ordering::Relaxed);
        let spawned = std::thread::Builder::new()
            .name(format!("slice-{label}"))
            .spawn(move || {
                info!("slice {label}: client connected");
                match Session::with_limits(stream, selector, limits).run() {
                    Ok(()) => info!("slice {label}: client left"),
                    Err(e) => warn!("slice {label}: client ended: {e}"),
                }
                counted.connected.fetch_sub(1, Ordering::Relaxed);
            });
        if let Err(e) = spawned {
            clients.connected.fetch_sub(1, Ordering::Relaxed);
            warn!("slice {name}: cannot start a client thread: {e}");
        }
    }
    Ok(())
}
