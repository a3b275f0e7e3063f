//! `vgpu vtest`: the venus renderer on a vtest socket, for Mesa's venus driver on the host.
//!
//! ```sh
//! vgpu vtest --socket-path /tmp/venus.sock &
//! VN_DEBUG=vtest VTEST_SOCKET_NAME=/tmp/venus.sock VK_DRIVER_FILES=.../virtio_icd.json vulkaninfo
//! ```

use std::path::PathBuf;

use clap::Args;
use venus::{vtest, DeviceSelector};

#[derive(Debug, Args)]
pub struct VtestArgs {
    /// The UNIX socket clients connect to (VTEST_SOCKET_NAME).
    #[arg(short = 's', long, default_value = vtest::protocol::DEFAULT_SOCKET)]
    pub socket_path: PathBuf,
    /// Expose only this host physical device: its index, or part of its name.
    #[arg(long)]
    pub device: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum VtestCliError {
    #[error("vtest server: {0}")]
    Serve(#[from] vtest::VtestError),
}

pub fn selector(device: Option<&str>) -> DeviceSelector {
    match device {
        None => DeviceSelector::All,
        Some(d) => d
            .parse()
            .map(DeviceSelector::Index)
            .unwrap_or_else(|_| DeviceSelector::Name(d.to_string())),
    }
}

pub fn run(args: VtestArgs) -> Result<(), VtestCliError> {
    Ok(vtest::serve(
        &args.socket_path,
        selector(args.device.as_deref()),
    )?)
}
