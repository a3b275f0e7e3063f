//! A transport-agnostic virtio-gpu device (virtio 1.3, "GPU Device") and the backends that serve it.

// `backend` (see backend/mod.rs) is declared here once backend/software.rs exists.
