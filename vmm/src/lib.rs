//! The VMM that hosts the GPU paths, and the `vgpu` command line.

pub mod boot;
pub mod bus;
pub mod cli;
pub mod cmos;
pub mod conformance;
pub mod hypervisor;
pub mod libvirt;
pub mod memory;
pub mod pci;
pub mod raw;
pub mod serial;
pub mod slices;
pub mod vcpu;
pub mod vfio;
pub mod vhost_user;
pub mod vhost_user_frontend;
pub mod virtio_pci;
pub mod vm;
