//! The vhost-user transport of the virtio-gpu device: `vgpu vhost-user-gpu`, a drop-in for QEMU's
//! `/usr/lib/qemu/vhost-user-gpu`.
//!
//! - [`backend`]: `VhostUserBackend` for the device (queues, config, features, resets).
//! - [`display`]: the vhost-user-gpu display protocol towards QEMU (a `DisplayListener`).
//! - [`negotiate`]: protocol features and QEMU's scanout sizes.
//! - [`server`]: connections one after another, signals, screenshots.
//! - [`fd_relay`]: `--fd` (an inherited connected socket).
//!
//! - [`shm`]: host-visible blobs, mapped by the frontend into the device's shared-memory region
//!   (`VHOST_USER_BACKEND_SHMEM_MAP`, protocol feature `SHMEM`): `vgpu run --gpu vhost-user`
//!   does; QEMU 10.0 has neither the message nor a region on `vhost-user-gpu-pci`, so under
//!   QEMU RESOURCE_MAP_BLOB fails as it would without a region.

pub mod backend;
pub mod display;
pub mod fd_relay;
pub mod negotiate;
pub mod server;
pub mod shm;

pub use backend::GpuVhostUserBackend;
pub use display::{DisplaySocket, VhostUserDisplay};
pub use server::{serve, serve_connections, Endpoint};

/// Why the vhost-user backend stopped.
#[derive(Debug, thiserror::Error)]
pub enum VhostUserError {
    #[error("listening on the vhost-user socket: {0}")]
    Listen(vhost::vhost_user::Error),
    #[error("vhost-user daemon: {0}")]
    Daemon(String),
    #[error("relaying the inherited socket: {0}")]
    Relay(std::io::Error),
}

/// What `--print-capabilities` prints: the JSON of QEMU's docs/interop/vhost-user.json for a
/// backend of type "gpu". The optional features it defines are "render-node" (takes
/// `--render-node`) and "virgl" (takes `--virgl`); this backend picks its renderer with
/// `--backend` instead and offers neither.
pub fn capabilities_json() -> String {
    serde_json::json!({ "type": "gpu", "features": [] }).to_string()
}
