//! `vgpu slices`: serve software slices of the host GPU and steer them while tenants run.
//!
//! ```sh
//! vgpu slices serve --config slices.toml &
//! VN_DEBUG=vtest VTEST_SOCKET_NAME=/tmp/train.sock VK_DRIVER_FILES=.../virtio_icd.json app
//! vgpu slices list
//! vgpu slices set train weight=4
//! vgpu slices policy fair
//! vgpu slices top
//! ```

use std::{path::PathBuf, sync::Arc, time::Duration};

use clap::{Args, Subcommand};

use crate::slices::{
    config::default_control,
    control::{self, ControlError, Request},
    ConfigError, ServeError, SliceServer, SlicesConfig,
};

#[derive(Debug, Args)]
pub struct SlicesArgs {
    /// The server's control socket (default: the config file's, else
    /// $XDG_RUNTIME_DIR/vgpu-slices.sock).
    #[arg(long, global = true)]
    pub control: Option<PathBuf>,
    #[command(subcommand)]
    pub command: SlicesCommand,
}

#[derive(Debug, Subcommand)]
pub enum SlicesCommand {
    /// Serve the slices a TOML file describes until killed.
    Serve {
        #[arg(long)]
        config: PathBuf,
        /// Expose only this host physical device: its index, or part of its name.
        #[arg(long)]
        device: Option<String>,
    },
    /// Memory, share target and measured share, queue and jobs of every slice.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Change a slice while it runs: `weight=N`.
    Set { slice: String, setting: String },
    /// Switch the scheduling policy while tenants run.
    Policy { policy: String },
    /// The `list` table, refreshed.
    Top {
        #[arg(long, default_value_t = 1000)]
        interval_ms: u64,
        /// Stop after this many refreshes (0: until interrupted).
        #[arg(long, default_value_t = 0)]
        count: u64,
    },
}

#[derive(Debug, thiserror::Error)]
pub enum SlicesCliError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Serve(#[from] ServeError),
    #[error(transparent)]
    Control(#[from] ControlError),
    #[error("{0:?}: a setting is weight=N")]
    Setting(String),
}

pub fn run(args: SlicesArgs) -> Result<(), SlicesCliError> {
    let explicit = args.control;
    let control = explicit.clone().unwrap_or_else(default_control);
    match args.command {
        SlicesCommand::Serve { config, device } => {
            let mut config = SlicesConfig::load(&config)?;
            if let Some(c) = explicit {
                config.control = c;
            }
            let server = Arc::new(SliceServer::start(
                &config,
                super::vtest::selector(device.as_deref()),
                true,
            )?);
            server.serve_control(&config.control)?;
            Ok(())
        }
        SlicesCommand::List { json } => {
            let reply = control::call(&control, &Request::List)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(&reply).expect("serializes")
                );
            } else {
                print!("{}", control::table(&reply));
            }
            Ok(())
        }
        SlicesCommand::Set { slice, setting } => {
            let weight = setting
                .strip_prefix("weight=")
                .and_then(|w| w.parse().ok())
                .ok_or_else(|| SlicesCliError::Setting(setting.clone()))?;
            let reply = control::call(&control, &Request::Set { slice, weight })?;
            print!("{}", control::table(&reply));
            Ok(())
        }
        SlicesCommand::Policy { policy } => {
            let reply = control::call(&control, &Request::Policy { policy })?;
            print!("{}", control::table(&reply));
            Ok(())
        }
        SlicesCommand::Top { interval_ms, count } => {
            let mut n = 0;
            loop {
                let reply = control::call(&control, &Request::List)?;
                // Home the cursor and clear: the table redraws in place.
                print!("\x1b[H\x1b[2J{}", control::table(&reply));
                n += 1;
                if count != 0 && n >= count {
                    return Ok(());
                }
                std::thread::sleep(Duration::from_millis(interval_ms));
            }
        }
    }
}
