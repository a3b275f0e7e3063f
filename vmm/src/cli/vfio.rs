//! `vgpu vfio`: the host functions that can be passed through, their IOMMU groups and
//! drivers, and binding a whole group to vfio-pci (and back) for `vgpu run --gpu vfio,host=`.
//!
//! ```sh
//! vgpu vfio list [--all] [--json]   # display controllers (all functions with --all)
//! vgpu vfio bind 0000:01:00.0       # the function's whole IOMMU group to vfio-pci
//! vgpu vfio unbind 0000:01:00.0     # back to the host's drivers
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vgpu_mdev::sysfs::Sysfs;
use vgpu_mdev::vfio_host::{IommuGroup, PciFunction, VfioHost, VfioHostError};

#[derive(Debug, Args)]
pub struct VfioArgs {
    /// Where /sys and /proc are looked up (a copy of the tree, for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub verb: VfioVerb,
}

#[derive(Debug, Subcommand)]
pub enum VfioVerb {
    /// Display controllers (or every function) with their IOMMU groups, members and drivers.
    List {
        #[arg(long)]
        all: bool,
        #[arg(long)]
        json: bool,
    },
    /// Bind BDF's whole IOMMU group to vfio-pci (bridges excepted).
    Bind { bdf: String },
    /// Give BDF's group back to the host's drivers.
    Unbind { bdf: String },
}

#[derive(Debug, thiserror::Error)]
pub enum VfioCliError {
    #[error(transparent)]
    Host(#[from] VfioHostError),
}

fn describe(f: &PciFunction) -> String {
    format!(
        "{} {:04x}:{:04x} class {:06x} driver {}",
        f.bdf,
        f.vendor,
        f.device,
        f.class,
        f.driver.as_deref().unwrap_or("-")
    )
}

fn print_group(group: &IommuGroup) {
    println!("iommu group {}:", group.id);
    for m in &group.members {
        println!("  {}", describe(m));
    }
}

pub fn run(args: VfioArgs) -> Result<(), VfioCliError> {
    let host = VfioHost::new(Sysfs::at(&args.root));
    match args.verb {
        VfioVerb::List { all, json } => {
            let functions: Vec<_> = host
                .functions()?
                .into_iter()
                .filter(|f| all || f.is_display())
                .collect();
            if json {
                let rows: Vec<_> = functions
                    .iter()
                    .map(|f| {
                        let group = f.iommu_group.as_deref().and_then(|g| host.group(g).ok());
                        serde_json::json!({ "function": f, "group": group })
                    })
                    .collect();
                println!(
                    "{}",
                    serde_json::to_string_pretty(&rows).expect("plain data serializes")
                );
                return Ok(());
            }
            if functions.is_empty() {
                println!(
                    "no {}PCI functions",
                    if all { "" } else { "display-class " }
                );
            }
            for f in &functions {
                println!("{}", describe(f));
                match &f.iommu_group {
                    None => {
                        println!("  no IOMMU group (no IOMMU enabled): cannot be passed through")
                    }
                    Some(id) => {
                        let group = host.group(id)?;
                        let others: Vec<_> =
                            group.members.iter().filter(|m| m.bdf != f.bdf).collect();
                        println!("  iommu group {id}, {} other member(s)", others.len());
                        for m in others {
                            println!("    {}", describe(m));
                        }
                    }
                }
            }
        }
        VfioVerb::Bind { bdf } => {
            let group = host.bind(&bdf)?;
            print_group(&group);
        }
        VfioVerb::Unbind { bdf } => {
            let group = host.unbind(&bdf)?;
            print_group(&group);
        }
    }
    Ok(())
}
