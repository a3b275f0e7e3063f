//! The VMM that hosts the GPU paths, and the `vgpu` command line.

pub mod bus;
pub mod cli;
pub mod hypervisor;
pub mod pci;
