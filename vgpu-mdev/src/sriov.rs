//! SR-IOV as the kernel shows it: a physical function's `sriov_totalvfs`, `sriov_numvfs`,
//! `sriov_drivers_autoprobe` and `virtfnN` links; each virtual function's driver and IOMMU group.
//! VFs for VMs are enabled with autoprobe off (no host driver grabs them) and bound to vfio-pci
//! through `driver_override`.

use std::path::PathBuf;

use serde::Serialize;

use crate::sysfs::{Sysfs, SysfsError};

#[derive(Debug, thiserror::Error)]
pub enum SriovError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("no PCI device {0}")]
    NoSuchDevice(String),
    #[error("{0} is not an SR-IOV physical function")]
    NotAPhysicalFunction(String),
    #[error("{bdf}: its driver ({driver}) cannot enable virtual functions")]
    DriverWithoutSriov { bdf: String, driver: String },
    #[error("{bdf}: {asked} virtual functions asked, it has {total}")]
    OutOfRange { bdf: String, asked: u32, total: u32 },
    #[error("{bdf}: virtual function {vf} is assigned (IOMMU group {group} is open)")]
    VfInUse {
        bdf: String,
        vf: String,
        group: String,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct VirtFn {
    pub index: u32,
    pub bdf: String,
    pub driver: Option<String>,
    pub iommu_group: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PhysFn {
    pub bdf: String,
    pub vendor: String,
    pub device: String,
    pub driver: Option<String>,
    pub total_vfs: u32,
    pub num_vfs: u32,
    pub vfs: Vec<VirtFn>,
}

/// The SR-IOV devices under one root.
#[derive(Clone, Debug, Default)]
pub struct Sriov {
    pub sys: Sysfs,
}

/// What Linux answers a write of sriov_numvfs with when the PF has no driver or its driver has
/// no sriov_configure (ENOENT), or the device cannot (EOPNOTSUPP).
const ENOENT: i32 = 2;
const EOPNOTSUPP: i32 = 95;

impl Sriov {
    pub fn new(sys: Sysfs) -> Self {
        Sriov { sys }
    }

    fn dev(&self, bdf: &str) -> PathBuf {
        self.sys.path("/sys/bus/pci/devices").join(bdf)
    }

    /// Every physical function with SR-IOV capability.
    pub fn physical_functions(&self) -> Result<Vec<PhysFn>, SriovError> {
        let mut out = Vec::new();
        for bdf in self.sys.list(&self.sys.path("/sys/bus/pci/devices"))? {
            if self.dev(&bdf).join("sriov_totalvfs").exists() {
                out.push(self.physical_function(&bdf)?);
            }
        }
        Ok(out)
    }

    pub fn physical_function(&self, bdf: &str) -> Result<PhysFn, SriovError> {
        let d = self.dev(bdf);
        if !d.exists() {
            return Err(SriovError::NoSuchDevice(bdf.to_string()));
        }
        if !d.join("sriov_totalvfs").exists() {
            return Err(SriovError::NotAPhysicalFunction(bdf.to_string()));
        }
        let mut vfs = Vec::new();
        for name in self.sys.list(&d)? {
            let Some(index) = name.strip_prefix("virtfn").and_then(|n| n.parse().ok()) else {
                continue;
            };
            let link = d.join(&name);
            let Some(vf) = self.sys.link_name(&link) else {
                continue;
            };
            let vf_dir = self.dev(&vf);
            vfs.push(VirtFn {
                index,
                driver: self.sys.link_name(&vf_dir.join("driver")),
                iommu_group: self.sys.link_name(&vf_dir.join("iommu_group")),
                bdf: vf,
            });
        }
        vfs.sort_by_key(|v| v.index);
        Ok(PhysFn {
            bdf: bdf.to_string(),
            vendor: self.sys.read(&d.join("vendor"))?,
            device: self.sys.read(&d.join("device"))?,
            driver: self.sys.link_name(&d.join("driver")),
            total_vfs: self.sys.read_u64(&d.join("sriov_totalvfs"))? as u32,
            num_vfs: self.sys.read_u64(&d.join("sriov_numvfs"))? as u32,
            vfs,
        })
    }

    /// The VF whose IOMMU group some process holds open (a VM has it), if any.
    fn assigned_vf(&self, pf: &PhysFn) -> Result<Option<(String, String)>, SriovError> {
        let groups: Vec<(String, String)> = pf
            .vfs
            .iter()
            .filter_map(|v| Some((v.bdf.clone(), v.iommu_group.clone()?)))
            .collect();
        if groups.is_empty() {
            return Ok(None);
        }
        let proc = self.sys.path("/proc");
        for pid in self.sys.list(&proc)? {
            let fd_dir = proc.join(&pid).join("fd");
            for fd in self.sys.list(&fd_dir).unwrap_or_default() {
                let Ok(target) = std::fs::read_link(fd_dir.join(&fd)) else {
                    continue;
                };
                for (vf, group) in &groups {
                    if target == std::path::Path::new("/dev/vfio").join(group) {
                        return Ok(Some((vf.clone(), group.clone())));
                    }
                }
            }
        }
        Ok(None)
    }

    fn write_numvfs(&self, pf: &PhysFn, n: u32) -> Result<(), SriovError> {
        let path = self.dev(&pf.bdf).join("sriov_numvfs");
        self.sys.write(&path, &n.to_string()).map_err(|e| match &e {
            SysfsError::Io { err, .. }
                if matches!(err.raw_os_error(), Some(EOPNOTSUPP) | Some(ENOENT)) =>
            {
                SriovError::DriverWithoutSriov {
                    bdf: pf.bdf.clone(),
                    driver: pf.driver.clone().unwrap_or_else(|| "none".into()),
                }
            }
            _ => SriovError::Sysfs(e),
        })
    }

    /// Enables `n` VFs with autoprobe off (the kernel wants 0 before a new count).
    pub fn enable(&self, bdf: &str, n: u32) -> Result<(), SriovError> {
        let pf = self.physical_function(bdf)?;
        if n == 0 || n > pf.total_vfs {
            return Err(SriovError::OutOfRange {
                bdf: bdf.to_string(),
                asked: n,
                total: pf.total_vfs,
            });
        }
        if pf.num_vfs != 0 {
            self.disable(bdf)?;
        }
        let autoprobe = self.dev(bdf).join("sriov_drivers_autoprobe");
        if autoprobe.exists() {
            self.sys.write(&autoprobe, "0")?;
        }
        self.write_numvfs(&pf, n)
    }

    /// Disables every VF, refusing while one is assigned to a VM.
    pub fn disable(&self, bdf: &str) -> Result<(), SriovError> {
        let pf = self.physical_function(bdf)?;
        if let Some((vf, group)) = self.assigned_vf(&pf)? {
            return Err(SriovError::VfInUse {
                bdf: bdf.to_string(),
                vf,
                group,
            });
        }
        self.write_numvfs(&pf, 0)
    }

    /// Binds every VF of `bdf` to vfio-pci (driver_override, unbind, drivers_probe).
    pub fn bind_vfs_to_vfio(&self, bdf: &str) -> Result<(), SriovError> {
        let pf = self.physical_function(bdf)?;
        let host = crate::vfio_host::VfioHost::new(self.sys.clone());
        for vf in &pf.vfs {
            host.bind_one(&vf.bdf, vf.driver.as_deref())?;
        }
        Ok(())
    }
}

#[cfg(test)]
#[path = "sriov_tests.rs"]
mod tests;
