//! A transport-agnostic virtio-gpu device (virtio 1.3, "GPU Device") and the backends that serve it.

pub mod backend;
