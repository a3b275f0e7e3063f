//! `vgpu mdev`: mediated-device slices with mdevctl's verbs, options, output and definition
//! files (`/etc/mdevctl.d/<parent>/<uuid>`), so a slice defined or started by either tool is
//! seen and managed by the other.
//!
//! ```sh
//! vgpu mdev types                                   # parents, types, available instances
//! vgpu mdev define -p mbochs -t mbochs-1            # prints the new slice's UUID
//! vgpu mdev start -u UUID && vgpu mdev list         # live slices
//! vgpu mdev stop -u UUID && vgpu mdev undefine -u UUID
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vgpu_mdev::mdev::{parse_uuid, Mdev, MdevError};
use vgpu_mdev::mdevctl::{Config, ConfigStore, MdevctlError, Start};
use vgpu_mdev::report::{self, ListQuery};
use vgpu_mdev::software::{self, SoftwareSlices};
use vgpu_mdev::sysfs::Sysfs;

use crate::slices::mdev_parent::ServerParent;

#[derive(Debug, Args)]
pub struct MdevArgs {
    /// Where /sys and /etc/mdevctl.d are looked up (a copy of the tree, for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    /// The slice server whose software slices appear as the `vgpu-slices` parent (default:
    /// $XDG_RUNTIME_DIR/vgpu-slices.sock).
    #[arg(long, global = true)]
    pub slices_control: Option<PathBuf>,
    #[command(subcommand)]
    pub verb: MdevVerb,
}

#[derive(Debug, Subcommand)]
pub enum MdevVerb {
    /// The types each parent offers and how many more instances each can have.
    Types {
        #[arg(short, long)]
        parent: Option<String>,
        #[arg(long)]
        dumpjson: bool,
    },
    /// Live slices, or with --defined the persistent definitions.
    List {
        #[arg(short, long)]
        defined: bool,
        #[arg(short, long)]
        uuid: Option<String>,
        #[arg(short, long)]
        parent: Option<String>,
        #[arg(long)]
        dumpjson: bool,
    },
    /// Define a slice persistently: of --type on --parent, or as the live slice --uuid is.
    Define {
        #[command(flatten)]
        slice: SliceArgs,
        /// Start it whenever its parent appears.
        #[arg(short, long)]
        auto: bool,
    },
    /// Remove a definition (a live slice stays live).
    Undefine {
        #[arg(short, long)]
        uuid: String,
    },
    /// Change a definition's type or start policy.
    Modify {
        #[arg(short, long)]
        uuid: String,
        #[arg(short = 't', long = "type")]
        mdev_type: Option<String>,
        #[arg(short, long, conflicts_with = "manual")]
        auto: bool,
        #[arg(short, long)]
        manual: bool,
    },
    /// Create a slice: a defined one (--uuid), or a transient one of --type on --parent.
    Start {
        #[command(flatten)]
        slice: SliceArgs,
    },
    /// Remove a live slice (its definition stays).
    Stop {
        #[arg(short, long)]
        uuid: String,
    },
}

/// Which slice: its UUID (made up and printed when not given), parent and type.
#[derive(Debug, Args)]
pub struct SliceArgs {
    #[arg(short, long)]
    pub uuid: Option<String>,
    #[arg(short, long)]
    pub parent: Option<String>,
    #[arg(short = 't', long = "type")]
    pub mdev_type: Option<String>,
}

#[derive(Debug, thiserror::Error)]
pub enum MdevCliError {
    #[error(transparent)]
    Mdev(#[from] MdevError),
    #[error(transparent)]
    Mdevctl(#[from] MdevctlError),
    #[error("give {0}")]
    Missing(&'static str),
    #[error("making a UUID: {0}")]
    Uuid(std::io::Error),
}

/// `uuid` checked, or a random one from the kernel; whether it was made up (mdevctl then prints
/// it once the command succeeded).
fn uuid_or_new(uuid: Option<String>) -> Result<(String, bool), MdevCliError> {
    if let Some(u) = uuid {
        return Ok((parse_uuid(&u)?, false));
    }
    let text =
        std::fs::read_to_string("/proc/sys/kernel/random/uuid").map_err(MdevCliError::Uuid)?;
    Ok((parse_uuid(text.trim())?, true))
}

/// The software-slice parent, where a slice server answers.
fn software(control: Option<PathBuf>) -> Option<ServerParent> {
    ServerParent::connect(control.unwrap_or_else(crate::slices::config::default_control))
}

/// `soft`, or the error a parent without its driver gives.
fn needs(soft: &Option<ServerParent>) -> Result<&ServerParent, MdevError> {
    soft.as_ref()
        .ok_or_else(|| MdevError::UnknownParent(software::PARENT.into()))
}

pub fn run(args: MdevArgs) -> Result<(), MdevCliError> {
    let sys = Sysfs::at(&args.root);
    let mdev = Mdev::new(sys.clone());
    let store = ConfigStore::new(sys);
    let soft = software(args.slices_control);
    match args.verb {
        MdevVerb::Types { parent, dumpjson } => {
            let types = match parent.as_deref() {
                Some(software::PARENT) => needs(&soft)?.types()?,
                Some(p) => report::types(&mdev, Some(p))?,
                None => {
                    let mut all = report::types(&mdev, None)?;
                    if let Some(s) = &soft {
                        all.extend(s.types()?);
                    }
                    all
                }
            };
            if dumpjson {
                println!("{}", report::types_json(&types));
            } else {
                println!("{}", report::types_text(&types));
            }
        }
        MdevVerb::List {
            defined,
            uuid,
            parent,
            dumpjson,
        } => {
            let query = ListQuery {
                defined,
                uuid,
                parent,
            };
            let mut live = mdev.instances()?;
            if let Some(s) = &soft {
                live.extend(s.instances()?);
            }
            let rows = report::list(&live, &store, &query)?;
            if dumpjson {
                println!("{}", report::list_json(&rows));
            } else {
                println!("{}", report::list_text(&rows, defined));
            }
        }
        MdevVerb::Define { slice, auto } => {
            let start = if auto { Start::Auto } else { Start::Manual };
            let ((uuid, made_up), parent, mdev_type) =
                match (slice.uuid, slice.parent, slice.mdev_type) {
                    (uuid, Some(p), Some(t)) => (uuid_or_new(uuid)?, p, t),
                    // Defining a live slice as it is.
                    (Some(u), None, None) => {
                        let live = mdev.instance(&u)?;
                        ((live.uuid, false), live.parent, live.mdev_type)
                    }
                    _ => {
                        return Err(MdevCliError::Missing(
                            "--parent and --type, or a live --uuid",
                        ))
                    }
                };
            let config = Config {
                mdev_type,
                start,
                attrs: Vec::new(),
            };
            store.define(&parent, &uuid, &config)?;
            if made_up {
                println!("{uuid}");
            }
        }
        MdevVerb::Undefine { uuid } => store.undefine(&uuid)?,
        MdevVerb::Modify {
            uuid,
            mdev_type,
            auto,
            manual,
        } => {
            let start = match (auto, manual) {
                (true, _) => Some(Start::Auto),
                (_, true) => Some(Start::Manual),
                _ => None,
            };
            store.modify(&uuid, mdev_type.as_deref(), start)?;
        }
        MdevVerb::Start { slice } => match (slice.uuid, slice.parent, slice.mdev_type) {
            (Some(u), None, None) => {
                let d = store.get(&u)?;
                if d.parent == software::PARENT {
                    needs(&soft)?.create(&d.config.mdev_type, &d.uuid)?;
                } else {
                    store.start(&mdev, &u)?;
                }
            }
            (uuid, Some(p), Some(t)) => {
                let (uuid, made_up) = uuid_or_new(uuid)?;
                if p == software::PARENT {
                    needs(&soft)?.create(&t, &uuid)?;
                } else {
                    mdev.create(&p, &t, &uuid)?;
                }
                if made_up {
                    println!("{uuid}");
                }
            }
            _ => {
                return Err(MdevCliError::Missing(
                    "a defined --uuid, or --parent and --type",
                ))
            }
        },
        MdevVerb::Stop { uuid } => {
            let uuid = parse_uuid(&uuid)?;
            let owner = match &soft {
                Some(s) if s.instances()?.iter().any(|i| i.uuid == uuid) => Some(s),
                _ => None,
            };
            match owner {
                Some(s) => s.remove(&uuid)?,
                None => mdev.remove(&uuid)?,
            }
        }
    }
    Ok(())
}
