//! The host side of VFIO passthrough, as sysfs shows it: PCI functions (display-class ones
//! first), their IOMMU groups and every member's driver; binding a whole group to vfio-pci
//! through `driver_override` and giving it back to its own drivers.

use std::path::PathBuf;

use serde::Serialize;

use crate::sysfs::{Sysfs, SysfsError};

pub const VFIO_DRIVER: &str = "vfio-pci";
/// PCI class 0x03: display controllers (VGA 0x0300, 3D 0x0302, other 0x0380).
const DISPLAY_CLASS: u32 = 0x03;
/// PCI-to-PCI bridges may stay with pcieport: vfio-pci does not need them.
const BRIDGE_CLASS: u32 = 0x0604;

#[derive(Debug, thiserror::Error)]
pub enum VfioHostError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("no PCI device {0}")]
    NoSuchDevice(String),
    #[error("{0} is in no IOMMU group: this host has no IOMMU enabled (intel_iommu=on / amd_iommu=on, or `-device intel-iommu` under QEMU)")]
    NoIommu(String),
    #[error("vfio-pci is not loaded (modprobe vfio-pci)")]
    NoVfioDriver,
    #[error("IOMMU group {group} of {bdf} is not viable: {} still bound to a host driver (`vgpu vfio bind {bdf}` binds the whole group)", .in_the_way.iter().map(|(d, drv)| format!("{d} ({drv})")).collect::<Vec<_>>().join(", "))]
    GroupNotViable {
        bdf: String,
        group: String,
        in_the_way: Vec<(String, String)>,
    },
    #[error("{bdf} is bound to {driver}, not vfio-pci (`vgpu vfio bind {bdf}`)")]
    NotBound { bdf: String, driver: String },
    #[error(
        "IOMMU group {group} of {bdf} is open by process {pid}: the device is busy (a VM has it)"
    )]
    Busy {
        bdf: String,
        group: String,
        pid: String,
    },
    #[error("no permission to open {node} for {bdf} (run as root, or give this user the node, as libvirt does)")]
    NoPermission { bdf: String, node: String },
}

/// Who this process is, for the permission bits of a device node.
#[derive(Clone, Debug)]
pub struct Identity {
    pub uid: u32,
    pub gids: Vec<u32>,
}

impl Identity {
    /// The effective uid, gid and supplementary groups, from /proc/self/status.
    pub fn own() -> Option<Identity> {
        let status = std::fs::read_to_string("/proc/self/status").ok()?;
        let field = |name: &str| -> Vec<u32> {
            status
                .lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|rest| {
                    rest.split_whitespace()
                        .filter_map(|v| v.parse().ok())
                        .collect()
                })
                .unwrap_or_default()
        };
        let uid = *field("Uid:").get(1)?;
        let mut gids = field("Groups:");
        gids.extend(field("Gid:").get(1));
        Some(Identity { uid, gids })
    }

    /// Whether it may open a node for reading and writing (root always may).
    pub fn may_open(&self, meta: &std::fs::Metadata) -> bool {
        use std::os::unix::fs::MetadataExt;
        if self.uid == 0 {
            return true;
        }
        let mode = meta.mode();
        let bits = if meta.uid() == self.uid {
            mode >> 6
        } else if self.gids.contains(&meta.gid()) {
            mode >> 3
        } else {
            mode
        };
        bits & 0o6 == 0o6
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PciFunction {
    pub bdf: String,
    pub vendor: u16,
    pub device: u16,
    /// Class, subclass and programming interface (0x030000 for VGA).
    pub class: u32,
    pub driver: Option<String>,
    pub iommu_group: Option<String>,
}

impl PciFunction {
    pub fn is_display(&self) -> bool {
        self.class >> 16 == DISPLAY_CLASS
    }
    fn is_bridge(&self) -> bool {
        self.class >> 8 == BRIDGE_CLASS
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct IommuGroup {
    pub id: String,
    pub members: Vec<PciFunction>,
}

#[derive(Clone, Debug, Default)]
pub struct VfioHost {
    pub sys: Sysfs,
}

fn hex(text: &str) -> u32 {
    u32::from_str_radix(text.trim().trim_start_matches("0x"), 16).unwrap_or(0)
}

impl VfioHost {
    pub fn new(sys: Sysfs) -> Self {
        VfioHost { sys }
    }

    fn dev(&self, bdf: &str) -> PathBuf {
        self.sys.path("/sys/bus/pci/devices").join(bdf)
    }

    /// The sysfs directory VFIO opens the function through.
    pub fn sysfs_path(&self, bdf: &str) -> Result<PathBuf, VfioHostError> {
        let dir = self.dev(bdf);
        if !dir.exists() {
            return Err(VfioHostError::NoSuchDevice(bdf.to_string()));
        }
        Ok(dir)
    }

    pub fn function(&self, bdf: &str) -> Result<PciFunction, VfioHostError> {
        let d = self.sysfs_path(bdf)?;
        Ok(PciFunction {
            bdf: bdf.to_string(),
            vendor: hex(&self.sys.read(&d.join("vendor"))?) as u16,
            device: hex(&self.sys.read(&d.join("device"))?) as u16,
            class: hex(&self.sys.read(&d.join("class"))?),
            driver: self.sys.link_name(&d.join("driver")),
            iommu_group: self.sys.link_name(&d.join("iommu_group")),
        })
    }

    /// Every PCI function, display controllers first.
    pub fn functions(&self) -> Result<Vec<PciFunction>, VfioHostError> {
        let mut all = self
            .sys
            .list(&self.sys.path("/sys/bus/pci/devices"))?
            .iter()
            .map(|bdf| self.function(bdf))
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by_key(|f| (!f.is_display(), f.bdf.clone()));
        Ok(all)
    }

    pub fn group(&self, id: &str) -> Result<IommuGroup, VfioHostError> {
        let dir = self
            .sys
            .path("/sys/kernel/iommu_groups")
            .join(id)
            .join("devices");
        let members = self
            .sys
            .list(&dir)?
            .iter()
            .map(|bdf| self.function(bdf))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(IommuGroup {
            id: id.to_string(),
            members,
        })
    }

    /// The group of `bdf`, which must have one.
    pub fn group_of(&self, bdf: &str) -> Result<IommuGroup, VfioHostError> {
        let f = self.function(bdf)?;
        let id = f
            .iommu_group
            .ok_or_else(|| VfioHostError::NoIommu(bdf.to_string()))?;
        self.group(&id)
    }

    /// Fine to open with VFIO: the function is bound to vfio-pci, every other member of its
    /// group to vfio-pci or to no driver (bridges may keep theirs), and no process holds the
    /// group open.
    pub fn check_viable(&self, bdf: &str) -> Result<IommuGroup, VfioHostError> {
        let group = self.group_of(bdf)?;
        let own = self.function(bdf)?;
        if own.driver.as_deref() != Some(VFIO_DRIVER) {
            return Err(VfioHostError::NotBound {
                bdf: bdf.to_string(),
                driver: own.driver.unwrap_or_else(|| "no driver".into()),
            });
        }
        let in_the_way: Vec<(String, String)> = group
            .members
            .iter()
            .filter(|m| !m.is_bridge())
            .filter_map(|m| match m.driver.as_deref() {
                None | Some(VFIO_DRIVER) => None,
                Some(other) => Some((m.bdf.clone(), other.to_string())),
            })
            .collect();
        if !in_the_way.is_empty() {
            return Err(VfioHostError::GroupNotViable {
                bdf: bdf.to_string(),
                group: group.id,
                in_the_way,
            });
        }
        if let Some(pid) = self.group_holder(&group.id)? {
            return Err(VfioHostError::Busy {
                bdf: bdf.to_string(),
                group: group.id,
                pid,
            });
        }
        let node = format!("/dev/vfio/{}", group.id);
        if let (Ok(meta), Some(who)) = (std::fs::metadata(self.sys.path(&node)), Identity::own()) {
            if !who.may_open(&meta) {
                return Err(VfioHostError::NoPermission {
                    bdf: bdf.to_string(),
                    node,
                });
            }
        }
        Ok(group)
    }

    /// The process that has /dev/vfio/<group> open, if any.
    pub fn group_holder(&self, group: &str) -> Result<Option<String>, VfioHostError> {
        let proc = self.sys.path("/proc");
        let node = std::path::Path::new("/dev/vfio").join(group);
        for pid in self
            .sys
            .list(&proc)?
            .into_iter()
            .filter(|p| p.bytes().all(|b| b.is_ascii_digit()))
        {
            let fd_dir = proc.join(&pid).join("fd");
            for fd in self.sys.list(&fd_dir).unwrap_or_default() {
                if std::fs::read_link(fd_dir.join(&fd)).is_ok_and(|t| t == node) {
                    return Ok(Some(pid));
                }
            }
        }
        Ok(None)
    }

    /// Binds one function to vfio-pci: driver_override, unbind from its driver, reprobe.
    pub fn bind_one(&self, bdf: &str, driver: Option<&str>) -> Result<(), SysfsError> {
        if driver == Some(VFIO_DRIVER) {
            return Ok(());
        }
        let dir = self.dev(bdf);
        self.sys.write(&dir.join("driver_override"), VFIO_DRIVER)?;
        if driver.is_some() {
            self.sys.write(&dir.join("driver/unbind"), bdf)?;
        }
        self.sys
            .write(&self.sys.path("/sys/bus/pci/drivers_probe"), bdf)
    }

    /// Binds every member of `bdf`'s group (bridges excepted) to vfio-pci.
    pub fn bind(&self, bdf: &str) -> Result<IommuGroup, VfioHostError> {
        let group = self.group_of(bdf)?;
        if !self.sys.path("/sys/bus/pci/drivers/vfio-pci").exists() {
            return Err(VfioHostError::NoVfioDriver);
        }
        for member in group.members.iter().filter(|m| !m.is_bridge()) {
            self.bind_one(&member.bdf, member.driver.as_deref())?;
        }
        self.group(&group.id)
    }

    /// Gives every vfio-pci member of `bdf`'s group back to the host's drivers (refused while
    /// a VM holds the group).
    pub fn unbind(&self, bdf: &str) -> Result<IommuGroup, VfioHostError> {
        let group = self.group_of(bdf)?;
        if let Some(pid) = self.group_holder(&group.id)? {
            return Err(VfioHostError::Busy {
                bdf: bdf.to_string(),
                group: group.id,
                pid,
            });
        }
        for member in &group.members {
            if member.driver.as_deref() != Some(VFIO_DRIVER) {
                continue;
            }
            let dir = self.dev(&member.bdf);
            // An empty override: the device matches drivers by its IDs again.
            self.sys.write(&dir.join("driver_override"), "")?;
            self.sys.write(&dir.join("driver/unbind"), &member.bdf)?;
            self.sys
                .write(&self.sys.path("/sys/bus/pci/drivers_probe"), &member.bdf)?;
        }
        self.group(&group.id)
    }
}

#[cfg(test)]
#[path = "vfio_host_tests.rs"]
mod tests;
