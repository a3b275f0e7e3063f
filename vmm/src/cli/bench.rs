//! `vgpu bench ...`: benchmarks that print tables. Each benchmark lives in its own module.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// GPU context scheduler fairness: scenarios x policies, simulated or on host Vulkan.
    Sched(super::bench_sched::SchedArgs),
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    Sched(#[from] super::bench_sched::SchedBenchError),
}

pub fn run(command: BenchCommand) -> Result<(), BenchError> {
    match command {
        BenchCommand::Sched(args) => Ok(super::bench_sched::run(args)?),
    }
}
