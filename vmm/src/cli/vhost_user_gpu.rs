//! `vgpu vhost-user-gpu`: our virtio-gpu device served over vhost-user, a drop-in for QEMU's
//! `/usr/lib/qemu/vhost-user-gpu` (same `--socket-path`, `--fd`, `--print-capabilities`).
//!
//! ```sh
//! vgpu vhost-user-gpu --socket-path /tmp/gpu.sock --screenshot-dir /tmp/shots &
//! qemu-system-x86_64 ... -object memory-backend-memfd,id=mem,size=1G,share=on \
//!     -numa node,memdev=mem -chardev socket,id=gpu,path=/tmp/gpu.sock \
//!     -device vhost-user-gpu-pci,chardev=gpu
//! kill -USR1 %1   # writes /tmp/shots/scanout0.png
//! ```

use std::os::fd::{FromRawFd, OwnedFd};
use std::path::PathBuf;

use clap::Args;
use gpu_interface::DisplayMode;
use virtio_gpu::backend::{create_backend, BackendError, BackendKind};
use virtio_gpu::{GpuConfig, GpuDevice};

use crate::vhost_user::{self, DisplaySocket, Endpoint, GpuVhostUserBackend, VhostUserDisplay};

#[derive(Debug, Args)]
pub struct VhostUserGpuArgs {
    /// Listen for QEMU on this Unix socket (served again after QEMU quits).
    #[arg(short = 's', long, conflicts_with = "fd")]
    pub socket_path: Option<PathBuf>,
    /// Serve a connected vhost-user socket inherited as this file descriptor (libvirt).
    #[arg(short = 'f', long)]
    pub fd: Option<i32>,
    /// Print the backend's capabilities as the JSON of QEMU's interop/vhost-user.json, and exit.
    #[arg(short = 'c', long)]
    pub print_capabilities: bool,
    /// Renderer: software, vulkan or rutabaga. Default: vulkan where it starts, else software.
    #[arg(long)]
    pub backend: Option<String>,
    /// Write scanout<N>.png here on SIGUSR1 and when exiting on SIGTERM/SIGINT.
    #[arg(long)]
    pub screenshot_dir: Option<PathBuf>,
    /// Number of scanouts (QEMU's max_outputs should match).
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=16))]
    pub scanouts: u32,
    /// Scanout size until QEMU reports its own (QEMU's default is 1280x800).
    #[arg(long, default_value = "1280x800", value_parser = parse_size)]
    pub size: (u32, u32),
    /// Leave out VIRTIO_GPU_F_EDID.
    #[arg(long)]
    pub no_edid: bool,
    /// Stop after this many connections (default: serve forever).
    #[arg(long)]
    pub max_connections: Option<u32>,
    /// Accepted for compatibility with QEMU's backend; a DRM render node is not used.
    #[arg(short = 'r', long)]
    pub render_node: Option<PathBuf>,
    /// Accepted for compatibility with QEMU's backend; use --backend to pick a renderer.
    #[arg(long)]
    pub virgl: bool,
}

fn parse_size(s: &str) -> Result<(u32, u32), String> {
    let (w, h) = s.split_once('x').ok_or("expected WIDTHxHEIGHT")?;
    let w: u32 = w.parse().map_err(|e| format!("width: {e}"))?;
    let h: u32 = h.parse().map_err(|e| format!("height: {e}"))?;
    if !(1..=16384).contains(&w) || !(1..=16384).contains(&h) {
        return Err("size out of range".into());
    }
    Ok((w, h))
}

#[derive(Debug, thiserror::Error)]
pub enum VhostUserGpuError {
    #[error("give --socket-path or --fd")]
    NoEndpoint,
    #[error("--fd {0} is not a valid file descriptor")]
    BadFd(i32),
    #[error(transparent)]
    Backend(#[from] BackendError),
    #[error(transparent)]
    Serve(#[from] vhost_user::VhostUserError),
}

/// The backend the user asked for, or Vulkan falling back to software where Vulkan fails.
fn make_backend(choice: Option<&str>) -> Result<Box<dyn gpu_interface::GpuBackend>, BackendError> {
    if let Some(name) = choice {
        return create_backend(name.parse()?);
    }
    match create_backend(BackendKind::Vulkan) {
        Ok(b) => Ok(b),
        Err(err) => {
            tracing::warn!("Vulkan backend unavailable ({err}); using the software backend");
            create_backend(BackendKind::Software)
        }
    }
}

pub fn run(args: VhostUserGpuArgs) -> Result<(), VhostUserGpuError> {
    if args.print_capabilities {
        println!("{}", vhost_user::capabilities_json());
        return Ok(());
    }
    if args.render_node.is_some() || args.virgl {
        tracing::warn!("--render-node/--virgl are accepted for compatibility and ignored");
    }
    let endpoint = match (args.socket_path, args.fd) {
        (Some(path), _) => Endpoint::Path(path),
        (None, Some(fd)) => {
            // SAFETY: fcntl(F_GETFD) only queries the descriptor number.
            if fd < 0 || unsafe { libc::fcntl(fd, libc::F_GETFD) } < 0 {
                return Err(VhostUserGpuError::BadFd(fd));
            }
            // SAFETY: the parent passed us this open descriptor to own (checked open above);
            // nothing else in this process uses it.
            Endpoint::Fd(unsafe { OwnedFd::from_raw_fd(fd) })
        }
        (None, None) => return Err(VhostUserGpuError::NoEndpoint),
    };
    let backend = make_backend(args.backend.as_deref())?;
    tracing::info!("virtio-gpu backend: {}", backend.name());
    let (w, h) = args.size;
    let config = GpuConfig {
        scanouts: vec![DisplayMode::new(w, h); args.scanouts as usize],
        edid: !args.no_edid,
    };
    let mut device = GpuDevice::new(backend, config);
    let socket = DisplaySocket::default();
    device.set_display_listener(Box::new(VhostUserDisplay::new(socket.clone())));
    let vhost = GpuVhostUserBackend::new(device, args.scanouts as usize, socket);
    vhost_user::serve(
        vhost,
        endpoint,
        args.screenshot_dir,
        args.scanouts,
        args.max_connections,
    )?;
    Ok(())
}
