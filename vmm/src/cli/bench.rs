//! `vgpu bench ...`: benchmarks that print tables. Each benchmark lives in its own module.

use clap::Subcommand;

#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// A guest's full-screen updates: QEMU's virtio-gpu-pci, QEMU's vhost-user-gpu and ours.
    GuestDisplay(super::bench_guest_display::GuestDisplayArgs),
    /// Creating and removing mediated devices: `vgpu mdev` against mdevctl.
    Mdev(super::bench_mdev::MdevBenchArgs),
    /// Port-I/O exit cost of `vgpu run --raw` against the seed-style minimal C VMM.
    Pio(super::bench_pio::PioArgs),
    /// GPU context scheduler fairness: scenarios x policies, simulated or on host Vulkan.
    Sched(super::bench_sched::SchedArgs),
    /// The fairness scenarios with real venus tenants on software slices, with and without
    /// the scheduler.
    Slices(super::bench_slices::SlicesBenchArgs),
    /// virtio-gpu device: small-command throughput and TRANSFER_TO_HOST_2D bandwidth vs memcpy.
    VirtioGpu(super::bench_virtio_gpu::VirtioGpuBenchArgs),
    /// Vulkan through venus (vtest and our renderer) against native, and the decoder's rate.
    Venus(super::bench_venus::VenusBenchArgs),
    /// One workload of `bench venus`, in the process that bench starts for it.
    #[command(hide = true)]
    VenusWorkload { name: String },
}

#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    #[error(transparent)]
    GuestDisplay(#[from] super::bench_guest_display::GuestDisplayError),
    #[error(transparent)]
    Mdev(#[from] super::bench_mdev::MdevBenchError),
    #[error(transparent)]
    Pio(#[from] super::bench_pio::PioBenchError),
    #[error(transparent)]
    Sched(#[from] super::bench_sched::SchedBenchError),
    #[error(transparent)]
    Slices(#[from] super::bench_slices::SlicesBenchError),
    #[error(transparent)]
    VirtioGpu(#[from] super::bench_virtio_gpu::VirtioGpuBenchError),
    #[error(transparent)]
    Venus(#[from] super::bench_venus::VenusBenchError),
    #[error("venus workload: {0}")]
    VenusWorkload(String),
}

pub fn run(command: BenchCommand) -> Result<(), BenchError> {
    match command {
        BenchCommand::GuestDisplay(args) => Ok(super::bench_guest_display::run(args)?),
        BenchCommand::Mdev(args) => Ok(super::bench_mdev::run(args)?),
        BenchCommand::Pio(args) => Ok(super::bench_pio::run(args)?),
        BenchCommand::Sched(args) => Ok(super::bench_sched::run(args)?),
        BenchCommand::Slices(args) => Ok(super::bench_slices::run(args)?),
        BenchCommand::VirtioGpu(args) => Ok(super::bench_virtio_gpu::run(args)?),
        BenchCommand::Venus(args) => Ok(super::bench_venus::run(args)?),
        BenchCommand::VenusWorkload { name } => {
            super::bench_venus_work::run(&name).map_err(BenchError::VenusWorkload)
        }
    }
}
