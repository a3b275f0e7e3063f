//! Serving connections one after another: QEMU quits, the device is reset and the next QEMU can
//! connect to the same socket. Also the signal handling: SIGUSR1 saves screenshots, SIGTERM and
//! SIGINT save them too and exit.

use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use vhost::vhost_user::Listener;
use vhost_user_backend::VhostUserDaemon;
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};

use super::backend::GpuVhostUserBackend;
use super::{fd_relay, VhostUserError};

/// Where QEMU's connection comes from.
#[derive(Debug)]
pub enum Endpoint {
    /// Listen on a Unix socket path; serve connections one after another.
    Path(PathBuf),
    /// A connected socket inherited from the parent (`--fd N`); served once.
    Fd(OwnedFd),
}

static SCREENSHOT_REQUESTED: AtomicBool = AtomicBool::new(false);
static EXIT_REQUESTED: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(signal: libc::c_int) {
    // Only async-signal-safe work here: flip a flag the watcher thread polls.
    if signal == libc::SIGUSR1 {
        SCREENSHOT_REQUESTED.store(true, Ordering::SeqCst);
    } else {
        EXIT_REQUESTED.store(true, Ordering::SeqCst);
    }
}

fn install_signal_handlers() {
    for signal in [libc::SIGUSR1, libc::SIGTERM, libc::SIGINT] {
        // SAFETY: `on_signal` only stores to atomics, which is async-signal-safe; replacing the
        // default disposition of these signals affects nothing else in this process.
        unsafe {
            libc::signal(
                signal,
                on_signal as extern "C" fn(libc::c_int) as libc::sighandler_t,
            )
        };
    }
}

/// Saves every scanout the device shows as `DIR/scanout<N>.png` (written to a temporary name,
/// then renamed, so a reader never sees half a file).
pub fn save_screenshots(backend: &GpuVhostUserBackend, dir: &Path, scanouts: u32) {
    if let Err(err) = std::fs::create_dir_all(dir) {
        tracing::warn!("screenshot dir {}: {err}", dir.display());
        return;
    }
    for scanout in 0..scanouts {
        let frame = match backend.with_device(|d| d.screenshot(scanout)) {
            Ok(frame) => frame,
            Err(err) => {
                tracing::info!("scanout {scanout} not saved: {err}");
                continue;
            }
        };
        let path = dir.join(format!("scanout{scanout}.png"));
        let tmp = dir.join(format!(".scanout{scanout}.png.tmp"));
        match gpu_interface::screenshot::save_png(&frame, &tmp)
            .map(|_| std::fs::rename(&tmp, &path))
        {
            Ok(Ok(())) => tracing::info!("saved {}", path.display()),
            Ok(Err(err)) => tracing::warn!("renaming {}: {err}", tmp.display()),
            Err(err) => tracing::warn!("saving {}: {err}", path.display()),
        }
    }
}

fn spawn_signal_watcher(
    backend: GpuVhostUserBackend,
    dir: Option<PathBuf>,
    scanouts: u32,
    socket: Option<PathBuf>,
) {
    install_signal_handlers();
    let spawned = std::thread::Builder::new()
        .name("vhost-user-gpu-signals".into())
        .spawn(move || loop {
            std::thread::sleep(Duration::from_millis(20));
            if SCREENSHOT_REQUESTED.swap(false, Ordering::SeqCst) {
                match &dir {
                    Some(dir) => save_screenshots(&backend, dir, scanouts),
                    None => tracing::warn!("SIGUSR1: no --screenshot-dir given"),
                }
            }
            if EXIT_REQUESTED.load(Ordering::SeqCst) {
                if let Some(dir) = &dir {
                    save_screenshots(&backend, dir, scanouts);
                }
                if let Some(socket) = &socket {
                    let _ = std::fs::remove_file(socket);
                }
                tracing::info!("exiting on signal");
                std::process::exit(0);
            }
        });
    if let Err(err) = spawned {
        tracing::warn!("no signal watcher thread: {err}");
    }
}

/// Serves `endpoint` until a signal ends the process (paths) or the connection ends (`--fd`).
/// After each connection the device is reset, so nothing from one guest reaches the next.
pub fn serve(
    backend: GpuVhostUserBackend,
    endpoint: Endpoint,
    screenshot_dir: Option<PathBuf>,
    scanouts: u32,
    max_connections: Option<u32>,
) -> Result<(), VhostUserError> {
    let socket_path = match &endpoint {
        Endpoint::Path(p) => Some(p.clone()),
        Endpoint::Fd(_) => None,
    };
    spawn_signal_watcher(
        backend.clone(),
        screenshot_dir.clone(),
        scanouts,
        socket_path.clone(),
    );
    serve_connections(backend, endpoint, max_connections)
}

/// Serves frontends on `endpoint` one after another (`max_connections` of them, or forever; an
/// inherited socket once), without the signal handling of [`serve`]: for a process that
/// serves several backends, such as the slice server.
pub fn serve_connections(
    backend: GpuVhostUserBackend,
    endpoint: Endpoint,
    max_connections: Option<u32>,
) -> Result<(), VhostUserError> {
    let socket_path = match &endpoint {
        Endpoint::Path(p) => Some(p.clone()),
        Endpoint::Fd(_) => None,
    };
    let (mut listener, mut inherited, private_path) = match endpoint {
        Endpoint::Path(path) => (
            Listener::new(&path, true).map_err(VhostUserError::Listen)?,
            None,
            None,
        ),
        Endpoint::Fd(fd) => {
            let path =
                std::env::temp_dir().join(format!("vgpu-vhost-user-{}.sock", std::process::id()));
            (
                Listener::new(&path, true).map_err(VhostUserError::Listen)?,
                Some(fd),
                Some(path),
            )
        }
    };
    let mut served = 0u32;
    loop {
        let mem = GuestMemoryAtomic::new(GuestMemoryMmap::new());
        let mut daemon = VhostUserDaemon::new("vhost-user-gpu".into(), backend.clone(), mem)
            .map_err(|e| VhostUserError::Daemon(e.to_string()))?;
        if let (Some(fd), Some(path)) = (inherited.take(), &private_path) {
            fd_relay::spawn(fd, path).map_err(VhostUserError::Relay)?;
        }
        tracing::info!("waiting for QEMU");
        daemon
            .start(&mut listener)
            .map_err(|e| VhostUserError::Daemon(e.to_string()))?;
        tracing::info!("QEMU connected");
        let result = daemon.wait();
        for handler in daemon.get_epoll_handlers() {
            handler.send_exit_event();
        }
        drop(daemon);
        backend.close_exit_events();
        backend.disconnect();
        served += 1;
        match result {
            Ok(())
            | Err(vhost_user_backend::Error::HandleRequest(
                vhost::vhost_user::Error::Disconnected | vhost::vhost_user::Error::PartialMessage,
            )) => tracing::info!("QEMU disconnected; device reset"),
            Err(err) => tracing::warn!("connection ended: {err}; device reset"),
        }
        if private_path.is_some() || max_connections.is_some_and(|m| served >= m) {
            break;
        }
    }
    if let Some(path) = private_path.or(socket_path) {
        let _ = std::fs::remove_file(path);
    }
    Ok(())
}
