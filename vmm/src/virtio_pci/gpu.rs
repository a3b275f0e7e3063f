//! virtio-gpu (device type 16) on the virtio-pci transport: an adapter from
//! [`VirtioDevice`] to `virtio_gpu::GpuDevice`.
