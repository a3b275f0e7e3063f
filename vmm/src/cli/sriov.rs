//! `vgpu sriov`: SR-IOV physical functions and their virtual functions, the hardware slices a
//! GPU driver (or any SR-IOV device) makes: list them, enable N VFs for VMs (autoprobe off, so
//! no host driver takes them, then bound to vfio-pci) and disable them again, refused while a
//! VF is assigned.
//!
//! ```sh
//! vgpu sriov list [--json]
//! vgpu sriov enable 0000:01:00.0 2     # two VFs, on vfio-pci
//! vgpu sriov disable 0000:01:00.0
//! ```

use std::path::PathBuf;

use clap::{Args, Subcommand};
use vgpu_mdev::sriov::{PhysFn, Sriov, SriovError};
use vgpu_mdev::sysfs::Sysfs;

#[derive(Debug, Args)]
pub struct SriovArgs {
    /// Where /sys and /proc are looked up (a copy of the tree, for tests).
    #[arg(long, default_value = "/", hide = true)]
    pub root: PathBuf,
    #[command(subcommand)]
    pub verb: SriovVerb,
}

#[derive(Debug, Subcommand)]
pub enum SriovVerb {
    /// Physical functions with their VF counts, VFs, drivers and IOMMU groups.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Enable N virtual functions of PF (a PCI address) and bind them to vfio-pci.
    Enable { pf: String, n: u32 },
    /// Disable every virtual function of PF.
    Disable { pf: String },
}

#[derive(Debug, thiserror::Error)]
pub enum SriovCliError {
    #[error(transparent)]
    Sriov(#[from] SriovError),
}

fn print_table(pfs: &[PhysFn]) {
    for pf in pfs {
        let driver = pf.driver.as_deref().unwrap_or("-");
        println!(
            "{} {}:{} driver {driver}, {} of {} VFs",
            pf.bdf,
            pf.vendor.trim_start_matches("0x"),
            pf.device.trim_start_matches("0x"),
            pf.num_vfs,
            pf.total_vfs
        );
        for vf in &pf.vfs {
            println!(
                "  virtfn{} {} driver {} iommu group {}",
                vf.index,
                vf.bdf,
                vf.driver.as_deref().unwrap_or("-"),
                vf.iommu_group.as_deref().unwrap_or("-")
            );
        }
    }
}

pub fn run(args: SriovArgs) -> Result<(), SriovCliError> {
    let sriov = Sriov::new(Sysfs::at(&args.root));
    match args.verb {
        SriovVerb::List { json } => {
            let pfs = sriov.physical_functions()?;
            if json {
                let text = serde_json::to_string_pretty(&pfs).expect("plain data serializes");
                println!("{text}");
            } else {
                print_table(&pfs);
            }
        }
        SriovVerb::Enable { pf, n } => {
            sriov.enable(&pf, n)?;
            sriov.bind_vfs_to_vfio(&pf)?;
            print_table(&[sriov.physical_function(&pf)?]);
        }
        SriovVerb::Disable { pf } => sriov.disable(&pf)?,
    }
    Ok(())
}
