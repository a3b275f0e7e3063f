//! The `vgpu` command line: one module per subcommand, each with its own error enum.

use clap::{Parser, Subcommand};

mod bench;
mod bench_guest_display;
mod bench_mdev;
mod bench_pio;
mod bench_sched;
mod bench_slices;
mod bench_venus;
mod bench_venus_work;
mod bench_virtio_gpu;
mod conformance;
mod gpu_demo;
pub mod install;
mod mdev;
mod run;
pub use run::parse_size;
mod slices;
mod sriov;
mod vfio;
mod vhost_user_gpu;
mod vtest;

/// GPU virtualization stack: VFIO passthrough, vGPU slices and virtio-gpu.
#[derive(Debug, Parser)]
#[command(name = "vgpu", version, about)]
pub struct Cli {
    /// More log output (-v: debug, -vv: trace). RUST_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Benchmarks that print a table.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a Vulkan conformance suite through the venus renderer (results as deqp-runner's).
    Conformance(conformance::ConformanceArgs),
    /// Drive a virtio-gpu device as a guest would and save its scanout as PNG.
    GpuDemo(gpu_demo::GpuDemoArgs),
    /// Put vgpu on the PATH and register it as libvirt's vhost-user GPU backend (--uninstall).
    Install(install::InstallArgs),
    /// Mediated-device slices, mdevctl-compatible (types, list, define, start, stop, ...).
    Mdev(mdev::MdevArgs),
    /// Serve our virtio-gpu device over vhost-user (drop-in for QEMU's vhost-user-gpu).
    VhostUserGpu(vhost_user_gpu::VhostUserGpuArgs),
    /// SR-IOV virtual functions: list, enable N on vfio-pci, disable.
    Sriov(sriov::SriovArgs),
    /// Host functions for passthrough: IOMMU groups, drivers, binding to vfio-pci.
    Vfio(vfio::VfioArgs),
    /// Run a VM: boot Linux (--kernel) or a flat real-mode binary (--raw).
    Run(run::RunArgs),
    Slices(slices::SlicesArgs),
    /// Serve the venus (Vulkan) renderer to Mesa's venus driver over a vtest socket.
    Vtest(vtest::VtestArgs),
}

/// Why a subcommand failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error(transparent)]
    Bench(#[from] bench::BenchError),
    #[error(transparent)]
    Conformance(#[from] conformance::ConformanceCliError),
    #[error(transparent)]
    GpuDemo(#[from] gpu_demo::GpuDemoError),
    #[error(transparent)]
    Install(#[from] install::InstallError),
    #[error(transparent)]
    Mdev(#[from] mdev::MdevCliError),
    #[error(transparent)]
    VhostUserGpu(#[from] vhost_user_gpu::VhostUserGpuError),
    #[error(transparent)]
    Run(#[from] run::RunError),
    #[error(transparent)]
    Slices(#[from] slices::SlicesCliError),
    #[error(transparent)]
    Sriov(#[from] sriov::SriovCliError),
    #[error(transparent)]
    Vfio(#[from] vfio::VfioCliError),
    #[error(transparent)]
    Vtest(#[from] vtest::VtestCliError),
}

/// Logs go to stderr so that stdout stays for results and the guest's serial console.
pub fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: logs written to files are read by scripts and tests.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(ansi)
        .with_writer(std::io::stderr)
        .try_init();
}

pub fn run(command: Command) -> Result<(), CliError> {
    match command {
        Command::Bench(b) => Ok(bench::run(b)?),
        Command::Conformance(args) => Ok(conformance::run(args)?),
        Command::GpuDemo(args) => Ok(gpu_demo::run(args)?),
        Command::Install(args) => Ok(install::run(args)?),
        Command::Mdev(args) => Ok(mdev::run(args)?),
        Command::VhostUserGpu(args) => Ok(vhost_user_gpu::run(args)?),
        Command::Run(args) => Ok(run::run(args)?),
        Command::Slices(args) => Ok(slices::run(args)?),
        Command::Sriov(args) => Ok(sriov::run(args)?),
        Command::Vfio(args) => Ok(vfio::run(args)?),
        Command::Vtest(args) => Ok(vtest::run(args)?),
    }
}
