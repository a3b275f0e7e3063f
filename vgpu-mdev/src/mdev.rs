//! Mediated devices as the kernel shows them: parents under `/sys/class/mdev_bus/<parent>`,
//! their types under `<parent>/mdev_supported_types/<type>/` (name, description, device_api,
//! available_instances, `create`), and instances under `/sys/bus/mdev/devices/<uuid>` (links into
//! the parent's device directory, with `mdev_type` and `remove`).

use std::path::PathBuf;

use serde::Serialize;

use crate::sysfs::{Sysfs, SysfsError};

#[derive(Debug, thiserror::Error)]
pub enum MdevError {
    #[error(transparent)]
    Sysfs(#[from] SysfsError),
    #[error("no mediated-device parent {0} (is its driver loaded?)")]
    UnknownParent(String),
    #[error("parent {parent} has no type {mdev_type}")]
    UnknownType { parent: String, mdev_type: String },
    #[error("type {mdev_type} of {parent} has no instances left")]
    NoInstancesLeft { parent: String, mdev_type: String },
    #[error("mediated device {0} is in use")]
    InUse(String),
    #[error("no mediated device {0}")]
    NoSuchInstance(String),
    #[error("mediated device {0} exists already")]
    Exists(String),
    #[error("{0:?} is not a UUID")]
    BadUuid(String),
    #[error("software slices: {0}")]
    Software(String),
}

/// One type a parent offers.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MdevType {
    pub parent: String,
    /// The type's directory name (`mbochs-1`, `i915-GVTg_V5_4`, `nvidia-63`).
    pub id: String,
    pub name: Option<String>,
    pub description: Option<String>,
    pub device_api: String,
    pub available_instances: u64,
}

/// One live instance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Instance {
    pub uuid: String,
    pub parent: String,
    pub mdev_type: String,
}

/// Checks the 8-4-4-4-12 hex form and gives it in lower case (as the kernel names devices).
pub fn parse_uuid(s: &str) -> Result<String, MdevError> {
    let groups: Vec<&str> = s.split('-').collect();
    let lens = [8, 4, 4, 4, 12];
    let ok = groups.len() == 5
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == n && g.chars().all(|c| c.is_ascii_hexdigit()));
    if ok {
        Ok(s.to_ascii_lowercase())
    } else {
        Err(MdevError::BadUuid(s.to_string()))
    }
}

/// The mediated devices under one root.
#[derive(Clone, Debug, Default)]
pub struct Mdev {
    pub sys: Sysfs,
}

impl Mdev {
    pub fn new(sys: Sysfs) -> Self {
        Mdev { sys }
    }

    fn parent_dir(&self, parent: &str) -> PathBuf {
        self.sys.path("/sys/class/mdev_bus").join(parent)
    }

    fn device_dir(&self, uuid: &str) -> PathBuf {
        self.sys.path("/sys/bus/mdev/devices").join(uuid)
    }

    pub fn parents(&self) -> Result<Vec<String>, MdevError> {
        Ok(self.sys.list(&self.sys.path("/sys/class/mdev_bus"))?)
    }

    /// The types of `parent`, with how many more instances each can have now.
    pub fn types(&self, parent: &str) -> Result<Vec<MdevType>, MdevError> {
        let dir = self.parent_dir(parent);
        if !dir.exists() {
            return Err(MdevError::UnknownParent(parent.to_string()));
        }
        let types_dir = dir.join("mdev_supported_types");
        let mut types = Vec::new();
        for id in self.sys.list(&types_dir)? {
            let t = types_dir.join(&id);
            let optional = |attr: &str| self.sys.read(&t.join(attr)).ok();
            types.push(MdevType {
                parent: parent.to_string(),
                name: optional("name"),
                description: optional("description"),
                device_api: self.sys.read(&t.join("device_api"))?,
                available_instances: self.sys.read_u64(&t.join("available_instances"))?,
                id,
            });
        }
        Ok(types)
    }

    /// Every type of every parent.
    pub fn all_types(&self) -> Result<Vec<MdevType>, MdevError> {
        let mut all = Vec::new();
        for p in self.parents()? {
            all.extend(self.types(&p)?);
        }
        Ok(all)
    }

    pub fn instances(&self) -> Result<Vec<Instance>, MdevError> {
        let dir = self.sys.path("/sys/bus/mdev/devices");
        let mut out = Vec::new();
        for uuid in self.sys.list(&dir)? {
            out.push(self.instance(&uuid)?);
        }
        Ok(out)
    }

    pub fn instance(&self, uuid: &str) -> Result<Instance, MdevError> {
        let uuid = parse_uuid(uuid)?;
        let dev = self.device_dir(&uuid);
        // The device lives in its parent's directory; its type is a link to the type's.
        let real =
            std::fs::canonicalize(&dev).map_err(|_| MdevError::NoSuchInstance(uuid.clone()))?;
        let parent = real
            .parent()
            .and_then(|p| p.file_name())
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| MdevError::NoSuchInstance(uuid.clone()))?;
        let mdev_type = self
            .sys
            .link_name(&dev.join("mdev_type"))
            .ok_or_else(|| MdevError::NoSuchInstance(uuid.clone()))?;
        Ok(Instance {
            uuid,
            parent,
            mdev_type,
        })
    }

    /// Creates instance `uuid` of `mdev_type` on `parent` (the kernel makes the device).
    pub fn create(&self, parent: &str, mdev_type: &str, uuid: &str) -> Result<(), MdevError> {
        let uuid = parse_uuid(uuid)?;
        let t = self
            .types(parent)?
            .into_iter()
            .find(|t| t.id == mdev_type)
            .ok_or_else(|| MdevError::UnknownType {
                parent: parent.to_string(),
                mdev_type: mdev_type.to_string(),
            })?;
        if self.device_dir(&uuid).exists() {
            return Err(MdevError::Exists(uuid));
        }
        if t.available_instances == 0 {
            return Err(MdevError::NoInstancesLeft {
                parent: parent.to_string(),
                mdev_type: mdev_type.to_string(),
            });
        }
        let create = self
            .parent_dir(parent)
            .join("mdev_supported_types")
            .join(mdev_type)
            .join("create");
        self.sys.write(&create, &uuid).map_err(|e| match &e {
            // The pool ran out between our look and the write.
            SysfsError::Io { err, .. } if err.raw_os_error() == Some(libc_enospc()) => {
                MdevError::NoInstancesLeft {
                    parent: parent.to_string(),
                    mdev_type: mdev_type.to_string(),
                }
            }
            _ => MdevError::Sysfs(e),
        })
    }

    /// Removes instance `uuid`; the kernel refuses (EBUSY) while a VM has it open.
    pub fn remove(&self, uuid: &str) -> Result<(), MdevError> {
        let uuid = parse_uuid(uuid)?;
        let remove = self.device_dir(&uuid).join("remove");
        if !remove.exists() {
            return Err(MdevError::NoSuchInstance(uuid));
        }
        self.sys.write(&remove, "1").map_err(|e| match &e {
            SysfsError::Io { err, .. } if err.raw_os_error() == Some(libc_ebusy()) => {
                MdevError::InUse(uuid.clone())
            }
            _ => MdevError::Sysfs(e),
        })
    }
}

/// errno values the kernel answers attribute writes with (Linux's numbers on every arch we run).
const fn libc_enospc() -> i32 {
    28
}

const fn libc_ebusy() -> i32 {
    16
}

#[cfg(test)]
#[path = "mdev_tests.rs"]
mod tests;
