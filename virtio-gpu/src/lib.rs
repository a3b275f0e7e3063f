//! virtio-gpu device (under construction).
