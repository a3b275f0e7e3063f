//! A transport-agnostic virtio-gpu device (virtio 1.3, "GPU Device") and the backends that serve it.
//!
//! Transports (virtio-pci, vhost-user) drive a [`GpuDevice`] through its public methods only:
//! features, config space, [`GpuDevice::process_queue`] for the control and cursor queues,
//! [`GpuDevice::process_fences`] for fenced responses, display listeners, a
//! [`SharedMemoryMapper`] for host blobs, display hotplug, screenshots and reset.

pub mod backend;
pub mod backing;
pub mod chain;
pub mod commands;
pub mod config;
pub mod device;
mod diff;
pub mod error;
pub mod fences;
pub mod guest_driver;
pub mod protocol;
pub mod resources;
pub mod shm;

pub use config::GpuConfig;
pub use device::{GpuDevice, QueueKind};
pub use error::{CmdError, DeviceError};
pub use shm::{SharedMemoryMapper, ShmError};
