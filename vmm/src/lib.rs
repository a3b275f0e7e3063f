//! The VMM that hosts the GPU paths, and the `vgpu` command line.

pub mod cli;
