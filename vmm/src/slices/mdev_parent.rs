//! The slice server as `vgpu mdev` sees it: the software-slice parent, over the control socket.

use std::path::PathBuf;

use vgpu_mdev::{
    mdev::{Instance, MdevError, MdevType},
    software::{SoftwareSlices, DEVICE_API, PARENT},
};

use super::control::{self, Reply, Request};

/// A running slice server, reached at its control socket.
pub struct ServerParent {
    control: PathBuf,
}

impl ServerParent {
    /// The server at `control`, or None where none answers (the parent is then absent).
    pub fn connect(control: PathBuf) -> Option<Self> {
        std::os::unix::net::UnixStream::connect(&control).ok()?;
        Some(Self { control })
    }

    fn call(&self, request: &Request) -> Result<Reply, MdevError> {
        control::call(&self.control, request).map_err(|e| MdevError::Software(e.to_string()))
    }
}

/// The mdev type id of a `[[type]]`: the parent's name, then the type's.
pub fn type_id(name: &str) -> String {
    format!("{PARENT}-{name}")
}

impl SoftwareSlices for ServerParent {
    fn types(&self) -> Result<Vec<MdevType>, MdevError> {
        let reply = self.call(&Request::List)?;
        Ok(reply
            .types
            .into_iter()
            .map(|t| MdevType {
                parent: PARENT.into(),
                id: type_id(&t.name),
                name: Some(t.name.clone()),
                description: Some(format!(
                    "software slice: {} MiB, weight {}",
                    t.memory >> 20,
                    t.weight
                )),
                device_api: DEVICE_API.into(),
                available_instances: t.available_instances,
            })
            .collect())
    }

    fn instances(&self) -> Result<Vec<Instance>, MdevError> {
        let reply = self.call(&Request::List)?;
        Ok(reply
            .slices
            .into_iter()
            .map(|s| Instance {
                uuid: s.uuid,
                parent: PARENT.into(),
                mdev_type: type_id(s.mdev_type.as_deref().unwrap_or(&s.name)),
            })
            .collect())
    }

    fn create(&self, mdev_type: &str, uuid: &str) -> Result<(), MdevError> {
        let name = mdev_type
            .strip_prefix(&format!("{PARENT}-"))
            .ok_or_else(|| MdevError::UnknownType {
                parent: PARENT.into(),
                mdev_type: mdev_type.into(),
            })?;
        self.call(&Request::Create {
            mdev_type: name.into(),
            uuid: uuid.into(),
        })
        .map(|_| ())
    }

    fn remove(&self, uuid: &str) -> Result<(), MdevError> {
        self.call(&Request::Remove { uuid: uuid.into() })
            .map(|_| ())
    }
}
