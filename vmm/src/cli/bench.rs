//! `vgpu bench ...`: benchmarks that print tables. Each benchmark lives in its own module.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {}

pub fn run(command: BenchCommand) -> Result<(), BenchError> {
    match command {}
}
