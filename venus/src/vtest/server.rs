//! The listening socket: accepts clients and forks one worker process per client. The parent
//! never loads Vulkan, so forking it is safe.

use std::{
    os::unix::net::{UnixListener, UnixStream},
    path::Path,
};

use tracing::{info, warn};

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
