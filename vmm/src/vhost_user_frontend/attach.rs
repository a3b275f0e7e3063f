//! `vgpu run --disk ...` and `--fs ...`: what the options say, and plugging the device they
//! describe into a VM, starting its backend first where the VMM runs it itself.

use std::path::{Path, PathBuf};

use super::backend_process::{self, BackendProcess, BackendProcessError};
use super::{DeviceKind, FrontendError, VhostUserDevice, FS_TAG_LEN};
use crate::virtio_pci::{VirtioPciError, Worker};

const DEFAULT_QUEUE_SIZE: u16 = 256;
/// Debian's path (trixie on), then what scripts/setup.sh builds in this source tree.
pub(super) const VIRTIOFSD_CANDIDATES: &[&str] = &[
    "/usr/libexec/virtiofsd",
    concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../.cache/virtiofsd/bin/virtiofsd"
    ),
];
pub(super) const STORAGE_DAEMON_CANDIDATES: &[&str] = &["/usr/bin/qemu-storage-daemon"];

/// Why a vhost-user device could not be added.
#[derive(Debug, thiserror::Error)]
pub enum AttachError {
    #[error(transparent)]
    Process(#[from] BackendProcessError),
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    #[error("plugging the vhost-user {0} device")]
    Plug(&'static str, #[source] VirtioPciError),
}

/// Where the device's backend is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A backend already listening there.
    Socket(PathBuf),
    /// A disk image qemu-storage-daemon (started by the VMM) exports.
    Image {
        path: PathBuf,
        format: String,
        readonly: bool,
    },
    /// A directory virtiofsd (started by the VMM) shares, in the sandbox named (virtiofsd's
    /// `--sandbox`: namespace, chroot or none; `None` picks namespace as root, none otherwise).
    Dir {
        path: PathBuf,
        sandbox: Option<String>,
    },
}

/// One `--disk` or `--fs`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VhostUserSpec {
    pub kind: DeviceKind,
    pub source: Source,
    pub queues: usize,
    pub queue_size: u16,
}

fn options(s: &str) -> Result<Vec<(&str, &str)>, String> {
    s.split(',')
        .map(|part| {
            part.split_once('=')
                .ok_or_else(|| format!("option {part:?} is not key=value"))
        })
        .collect()
}

fn queue_size(value: &str) -> Result<u16, String> {
    value
        .parse::<u16>()
        .ok()
        .filter(|n| n.is_power_of_two() && *n <= 32768)
        .ok_or_else(|| format!("queue-size={value:?}: a power of two up to 32768"))
}

/// `on`/`true`/`1` or `off`/`false`/`0`, for option `key`.
pub(crate) fn on_off(key: &str, value: &str) -> Result<bool, String> {
    match value {
        "on" | "true" | "1" => Ok(true),
        "off" | "false" | "0" => Ok(false),
        _ => Err(format!("{key}={value:?}: expected on or off")),
    }
}

/// `--disk socket=S[,queues=N][,queue-size=Q]` or
/// `--disk path=FILE[,format=raw|qcow2][,readonly=on][,queues=N][,queue-size=Q]`.
pub fn parse_disk(s: &str) -> Result<VhostUserSpec, String> {
    let (mut socket, mut path, mut format, mut readonly) = (None, None, "raw", false);
    let (mut queues, mut size) = (1usize, DEFAULT_QUEUE_SIZE);
    for (key, value) in options(s)? {
        match key {
            "socket" => socket = Some(PathBuf::from(value)),
            "path" => path = Some(PathBuf::from(value)),
            "format" if matches!(value, "raw" | "qcow2") => format = value,
            "format" => return Err(format!("format={value:?}: raw or qcow2")),
            "readonly" => readonly = on_off(key, value)?,
            "queues" => {
                queues = value
                    .parse()
                    .ok()
                    .filter(|n| (1..=64).contains(n))
                    .ok_or_else(|| format!("queues={value:?}: 1 to 64"))?
            }
            "queue-size" => size = queue_size(value)?,
            _ => return Err(format!("unknown disk option {key:?}")),
        }
    }
    let source = match (socket, path) {
        (Some(socket), None) if !readonly && format == "raw" => Source::Socket(socket),
        (Some(_), None) => return Err("format and readonly are for path=, not socket=".into()),
        (None, Some(path)) => Source::Image {
            path,
            format: format.to_string(),
            readonly,
        },
        _ => return Err("a disk takes one of socket=S or path=FILE".into()),
    };
    Ok(VhostUserSpec {
        kind: DeviceKind::Block,
        source,
        queues,
        queue_size: size,
    })
}

/// `--fs tag=T,socket=S[,queue-size=Q]` or
/// `--fs tag=T,dir=DIR[,sandbox=namespace|chroot|none][,queue-size=Q]`.
pub fn parse_fs(s: &str) -> Result<VhostUserSpec, String> {
    let (mut tag, mut socket, mut dir, mut size) = (None, None, None, DEFAULT_QUEUE_SIZE);
    let mut sandbox = None;
    for (key, value) in options(s)? {
        match key {
            "tag" => tag = Some(value.to_string()),
            "socket" => socket = Some(PathBuf::from(value)),
            "dir" => dir = Some(PathBuf::from(value)),
            "sandbox" if matches!(value, "namespace" | "chroot" | "none") => {
                sandbox = Some(value.to_string())
            }
            "sandbox" => return Err(format!("sandbox={value:?}: namespace, chroot or none")),
            "queue-size" => size = queue_size(value)?,
            _ => return Err(format!("unknown fs option {key:?}")),
        }
    }
    let tag = tag.ok_or("a virtio-fs share needs tag=T")?;
    if tag.is_empty() || tag.len() > FS_TAG_LEN {
        return Err(format!("tag={tag:?}: 1 to {FS_TAG_LEN} bytes"));
    }
    let source = match (socket, dir) {
        (Some(socket), None) if sandbox.is_none() => Source::Socket(socket),
        (Some(_), None) => return Err("sandbox is for dir=, not socket=".into()),
        (None, Some(path)) => Source::Dir { path, sandbox },
        _ => return Err("a virtio-fs share takes one of socket=S or dir=DIR".into()),
    };
    Ok(VhostUserSpec {
        kind: DeviceKind::Fs { tag },
        source,
        // hiprio and one request queue.
        queues: 2,
        queue_size: size,
    })
}

/// A plugged vhost-user device: the worker serving its transport, and the backend process
/// when the VMM started it. Dropping it stops the worker, then the backend.
pub struct VhostUserAttachment {
    _worker: Worker,
    _process: Option<BackendProcess>,
}

/// A socket path of ours for a backend the VMM starts.
fn private_socket(kind: &str, index: usize) -> PathBuf {
    std::env::temp_dir().join(format!("vgpu-{}-{kind}{index}.sock", std::process::id()))
}

/// Starts the backend `source` asks for, if any; returns it and the socket to connect to.
pub fn start_backend(
    source: &Source,
    queues: usize,
    index: usize,
) -> Result<(Option<BackendProcess>, PathBuf), BackendProcessError> {
    let process = match source {
        Source::Socket(path) => return Ok((None, path.clone())),
        Source::Image {
            path,
            format,
            readonly,
        } => {
            let program = backend_process::find_program(
                "qemu-storage-daemon",
                "VGPU_QEMU_STORAGE_DAEMON",
                STORAGE_DAEMON_CANDIDATES,
            )?;
            let socket = private_socket("disk", index);
            let command = backend_process::storage_daemon_command(
                &program,
                &absolute(path),
                format,
                *readonly,
                queues,
                &socket,
            );
            BackendProcess::start(command, socket)?
        }
        Source::Dir { path, sandbox } => {
            let program =
                backend_process::find_program("virtiofsd", "VGPU_VIRTIOFSD", VIRTIOFSD_CANDIDATES)?;
            let socket = private_socket("fs", index);
            let command = backend_process::virtiofsd_command(
                &program,
                &absolute(path),
                sandbox.as_deref(),
                &socket,
            );
            BackendProcess::start(command, socket)?
        }
    };
    let socket = process.socket.clone();
    Ok((Some(process), socket))
}

fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Plugs the device `spec` describes into `vm` (the `index`th of its kind names its socket).
pub fn attach(
    vm: &mut crate::vm::Vm,
    spec: &VhostUserSpec,
    index: usize,
) -> Result<VhostUserAttachment, AttachError> {
    let (process, socket) = start_backend(&spec.source, spec.queues, index)?;
    let device = VhostUserDevice::connect(
        spec.kind.clone(),
        &socket,
        vec![spec.queue_size; spec.queues],
        vm.memory.ram.clone(),
    )?;
    let name = match spec.kind {
        DeviceKind::Block => "vhost-user-blk",
        DeviceKind::Fs { .. } => "vhost-user-fs",
        DeviceKind::Gpu { .. } => "vhost-user-gpu",
    };
    let (_, worker) = crate::virtio_pci::plug(vm, Box::new(device), name)
        .map_err(|e| AttachError::Plug(spec.kind.name(), e))?;
    Ok(VhostUserAttachment {
        _worker: worker,
        _process: process,
    })
}

/// virtio-gpu's control and cursor queues.
const GPU_QUEUE_SIZES: [u16; 2] = [256, 16];

/// Plugs a virtio-gpu whose queues the vhost-user GPU backend on `socket` serves (ours, or
/// QEMU's vhost-user-gpu), its scanouts `modes`; returns it and the display its scanouts
/// arrive on.
pub fn attach_gpu(
    vm: &mut crate::vm::Vm,
    socket: &Path,
    modes: Vec<gpu_interface::DisplayMode>,
) -> Result<(VhostUserAttachment, super::gpu_display::GpuDisplay), AttachError> {
    let mut device = VhostUserDevice::connect(
        DeviceKind::Gpu {
            scanouts: modes.len() as u32,
        },
        socket,
        GPU_QUEUE_SIZES.to_vec(),
        vm.memory.ram.clone(),
    )?;
    let (display, backend_end) =
        super::gpu_display::GpuDisplay::start(modes).map_err(FrontendError::GpuSocket)?;
    device.set_gpu_socket(&backend_end)?;
    if let Some(size) = device.shm_request() {
        // The backend maps host-visible blobs here (SHMEM_MAP); the guest sees it as BAR 2.
        let slots = (0..crate::virtio_pci::gpu::SHM_SLOTS)
            .map(|_| vm.allocate_memory_slot())
            .collect();
        let region = crate::virtio_pci::shm::ShmRegion::new(vm.hv.clone(), size, slots);
        device.set_shm_region(region);
        tracing::info!(
            size,
            "vhost-user-gpu: host-visible region for the backend's blobs"
        );
    }
    let (_, worker) = crate::virtio_pci::plug(vm, Box::new(device), "vhost-user-gpu")
        .map_err(|e| AttachError::Plug("gpu", e))?;
    let attachment = VhostUserAttachment {
        _worker: worker,
        _process: None,
    };
    Ok((attachment, display))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disk_and_fs_options_parse_and_nonsense_is_refused() {
        let disk = parse_disk("socket=/run/blk.sock,queues=2").unwrap();
        assert_eq!(disk.source, Source::Socket("/run/blk.sock".into()));
        assert_eq!((disk.queues, disk.queue_size), (2, DEFAULT_QUEUE_SIZE));
        let disk = parse_disk("path=disk.qcow2,format=qcow2,readonly=on,queue-size=128").unwrap();
        assert_eq!(
            disk.source,
            Source::Image {
                path: "disk.qcow2".into(),
                format: "qcow2".into(),
                readonly: true
            }
        );
        assert_eq!(disk.queue_size, 128);
        let fs = parse_fs("tag=share,dir=/srv,sandbox=chroot").unwrap();
        assert_eq!(
            fs.kind,
            DeviceKind::Fs {
                tag: "share".into()
            }
        );
        let dir = Source::Dir {
            path: "/srv".into(),
            sandbox: Some("chroot".into()),
        };
        assert_eq!((fs.source, fs.queues), (dir, 2));
        for bad in [
            "",
            "socket=a,path=b",
            "path=a,format=vmdk",
            "socket=a,readonly=on",
            "path=a,queues=0",
            "path=a,queue-size=100",
            "path=a,colour=red",
        ] {
            assert!(parse_disk(bad).is_err(), "--disk {bad:?} accepted");
        }
        let long_tag = format!("tag={},dir=/", "t".repeat(FS_TAG_LEN + 1));
        for bad in [
            "dir=/srv",
            "tag=x",
            "tag=x,socket=a,dir=b",
            "tag=x,dir=/,sandbox=jail",
            "tag=x,socket=a,sandbox=none",
            &long_tag,
            "tag=,dir=/",
        ] {
            assert!(parse_fs(bad).is_err(), "--fs {bad:?} accepted");
        }
    }
}
