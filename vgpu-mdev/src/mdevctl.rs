//! mdevctl's persistent definitions, in its own files so either tool sees the other's slices:
//! `/etc/mdevctl.d/<parent>/<uuid>`, a JSON object with `mdev_type`, `start` (`auto` or `manual`)
//! and `attrs` (an ordered list of one-entry objects, attribute name to value, written into the
//! device directory after it is created).

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::mdev::{parse_uuid, Mdev, MdevError};
use crate::sysfs::Sysfs;

#[derive(Debug, thiserror::Error)]
pub enum MdevctlError {
    #[error("{}: {err}", path.display())]
    Io { path: PathBuf, err: std::io::Error },
    #[error("{}: not an mdevctl definition: {err}", path.display())]
    Json {
        path: PathBuf,
        err: serde_json::Error,
    },
    #[error("no defined mediated device {0}")]
    NotDefined(String),
    #[error("mediated device {0} is defined already")]
    AlreadyDefined(String),
    #[error(transparent)]
    Mdev(#[from] MdevError),
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Start {
    Auto,
    #[default]
    Manual,
}

/// The file's content.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Config {
    pub mdev_type: String,
    pub start: Start,
    #[serde(default)]
    pub attrs: Vec<serde_json::Map<String, serde_json::Value>>,
}

/// A definition and where it lives.
#[derive(Clone, Debug, PartialEq)]
pub struct Defined {
    pub uuid: String,
    pub parent: String,
    pub config: Config,
}

/// The definitions under one root.
#[derive(Clone, Debug, Default)]
pub struct ConfigStore {
    pub sys: Sysfs,
}

impl ConfigStore {
    pub fn new(sys: Sysfs) -> Self {
        ConfigStore { sys }
    }

    fn dir(&self) -> PathBuf {
        self.sys.path("/etc/mdevctl.d")
    }

    fn io(path: &std::path::Path) -> impl FnOnce(std::io::Error) -> MdevctlError + '_ {
        move |err| MdevctlError::Io {
            path: path.to_path_buf(),
            err,
        }
    }

    /// Every definition, by parent then UUID; files that are not definitions are errors.
    pub fn list(&self) -> Result<Vec<Defined>, MdevctlError> {
        let mut out = Vec::new();
        for parent in self.sys.list(&self.dir()).map_err(MdevError::from)? {
            let pdir = self.dir().join(&parent);
            if !pdir.is_dir() {
                continue;
            }
            for name in self.sys.list(&pdir).map_err(MdevError::from)? {
                let Ok(uuid) = parse_uuid(&name) else {
                    continue; // editor backups and the like: mdevctl skips them too
                };
                let path = pdir.join(&name);
                let text = std::fs::read_to_string(&path).map_err(Self::io(&path))?;
                let config = serde_json::from_str(&text).map_err(|err| MdevctlError::Json {
                    path: path.clone(),
                    err,
                })?;
                out.push(Defined {
                    uuid,
                    parent: parent.clone(),
                    config,
                });
            }
        }
        Ok(out)
    }

    pub fn get(&self, uuid: &str) -> Result<Defined, MdevctlError> {
        let uuid = parse_uuid(uuid)?;
        self.list()?
            .into_iter()
            .find(|d| d.uuid == uuid)
            .ok_or(MdevctlError::NotDefined(uuid))
    }

    /// Writes a new definition (a UUID is defined once, whatever the parent).
    pub fn define(&self, parent: &str, uuid: &str, config: &Config) -> Result<(), MdevctlError> {
        let uuid = parse_uuid(uuid)?;
        if self.list()?.iter().any(|d| d.uuid == uuid) {
            return Err(MdevctlError::AlreadyDefined(uuid));
        }
        self.write(parent, &uuid, config)
    }

    fn write(&self, parent: &str, uuid: &str, config: &Config) -> Result<(), MdevctlError> {
        let pdir = self.dir().join(parent);
        std::fs::create_dir_all(&pdir).map_err(Self::io(&pdir))?;
        let path = pdir.join(uuid);
        let text = serde_json::to_string_pretty(config).expect("a Config serializes") + "\n";
        std::fs::write(&path, text).map_err(Self::io(&path))
    }

    pub fn undefine(&self, uuid: &str) -> Result<(), MdevctlError> {
        let d = self.get(uuid)?;
        let path = self.dir().join(&d.parent).join(&d.uuid);
        std::fs::remove_file(&path).map_err(Self::io(&path))
    }

    /// Changes a definition's type or start policy.
    pub fn modify(
        &self,
        uuid: &str,
        mdev_type: Option<&str>,
        start: Option<Start>,
    ) -> Result<(), MdevctlError> {
        let mut d = self.get(uuid)?;
        if let Some(t) = mdev_type {
            d.config.mdev_type = t.to_string();
        }
        if let Some(s) = start {
            d.config.start = s;
        }
        self.write(&d.parent, &d.uuid, &d.config)
    }

    /// Starts a defined device: creates it, then writes its attributes in order.
    pub fn start(&self, mdev: &Mdev, uuid: &str) -> Result<(), MdevctlError> {
        let d = self.get(uuid)?;
        mdev.create(&d.parent, &d.config.mdev_type, &d.uuid)?;
        self.apply_attrs(mdev, &d)
    }

    /// Writes a definition's attributes into its live device's directory.
    pub fn apply_attrs(&self, mdev: &Mdev, d: &Defined) -> Result<(), MdevctlError> {
        let dev = mdev.sys.path("/sys/bus/mdev/devices").join(&d.uuid);
        for attr in &d.config.attrs {
            for (name, value) in attr {
                let value = value
                    .as_str()
                    .map_or_else(|| value.to_string(), str::to_string);
                mdev.sys
                    .write(&dev.join(name), &value)
                    .map_err(MdevError::from)?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fake::FakeTree;

    const U1: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1001";
    const U2: &str = "83b8f4f2-509f-382f-3c1e-e6bfe0fa1002";

    #[test]
    fn definitions_round_trip_in_mdevctls_files() {
        let t = FakeTree::new("mdevctl");
        // As mdevctl 1.2 writes one.
        t.file(
            &format!("/etc/mdevctl.d/0000:00:02.0/{U1}"),
            r#"{"mdev_type": "i915-GVTg_V5_4", "start": "auto", "attrs": [{"x": "1"}]}"#,
        );
        t.file("/etc/mdevctl.d/0000:00:02.0/notes.txt~", "not a definition");
        let store = ConfigStore::new(Sysfs::at(&t.root));
        let d = store.get(U1).unwrap();
        assert_eq!(d.parent, "0000:00:02.0");
        assert_eq!(d.config.start, Start::Auto);
        assert_eq!(d.config.attrs[0]["x"], "1");
        let c = Config {
            mdev_type: "mbochs-1".into(),
            start: Start::Manual,
            attrs: vec![],
        };
        store.define("mbochs", U2, &c).unwrap();
        let written =
            std::fs::read_to_string(t.path(&format!("/etc/mdevctl.d/mbochs/{U2}"))).unwrap();
        let v: serde_json::Value = serde_json::from_str(&written).unwrap();
        assert_eq!(v["mdev_type"], "mbochs-1");
        assert_eq!(v["start"], "manual");
        assert!(v["attrs"].as_array().unwrap().is_empty());
        assert_eq!(store.list().unwrap().len(), 2);
        let again = store.define("other", U2, &c).unwrap_err();
        assert!(again.to_string().contains("defined already"), "{again}");
        store
            .modify(U2, Some("mbochs-2"), Some(Start::Auto))
            .unwrap();
        assert_eq!(store.get(U2).unwrap().config.mdev_type, "mbochs-2");
        store.undefine(U2).unwrap();
        assert!(matches!(store.get(U2), Err(MdevctlError::NotDefined(_))));
        t.file(&format!("/etc/mdevctl.d/mbochs/{U2}"), "{ broken");
        assert!(store
            .list()
            .unwrap_err()
            .to_string()
            .contains("not an mdevctl definition"));
    }

    #[test]
    fn starting_a_definition_creates_the_device_and_writes_its_attributes() {
        let t = FakeTree::new("mdevctl-start");
        let dev = "virtual/mbochs/mbochs";
        t.mdev_parent("mbochs", dev);
        t.mdev_type(dev, "mbochs-1", Some("small"), "vfio-pci", "4");
        let store = ConfigStore::new(Sysfs::at(&t.root));
        let mdev = Mdev::new(Sysfs::at(&t.root));
        let c = Config {
            mdev_type: "mbochs-1".into(),
            start: Start::Manual,
            attrs: vec![serde_json::from_str(r#"{"rate": "60"}"#).unwrap()],
        };
        store.define("mbochs", U1, &c).unwrap();
        store.start(&mdev, U1).unwrap_err(); // a fake kernel makes no device: no attribute file
        let create = t.path(&format!(
            "/sys/devices/{dev}/mdev_supported_types/mbochs-1/create"
        ));
        assert_eq!(std::fs::read_to_string(create).unwrap(), format!("{U1}\n"));
        // What the kernel would have made; then the attributes go in.
        t.mdev_instance(dev, "mbochs-1", U1);
        t.file(&format!("/sys/devices/{dev}/{U1}/rate"), "");
        store.apply_attrs(&mdev, &store.get(U1).unwrap()).unwrap();
        let rate = t.path(&format!("/sys/devices/{dev}/{U1}/rate"));
        assert_eq!(std::fs::read_to_string(rate).unwrap(), "60\n");
        let e = store.start(&mdev, U1).unwrap_err();
        assert!(e.to_string().contains("exists already"), "{e}");
    }
}
