//! What the device core knows about resources and scanouts, independent of the backend: kinds,
//! sizes, guest backing, UUIDs, blob mappings and which scanout shows what.

use std::collections::{HashMap, HashSet};

use gpu_interface::{DisplayMode, PixelFormat, Rect, Resource3dDesc};

use crate::backing::Backing;
use crate::error::CmdError;

/// A guest-memory blob shown on a scanout: the backend holds a 2D "shadow" resource with the same
/// id, and the core pushes guest pixels into it on SET_SCANOUT_BLOB and RESOURCE_FLUSH.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shadow {
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub stride: u32,
    pub offset: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ResourceKind {
    TwoD {
        width: u32,
        height: u32,
        format: PixelFormat,
    },
    ThreeD(Resource3dDesc),
    /// BLOB_MEM_GUEST: lives only in guest pages; never reaches the backend (except as a shadow).
    GuestBlob {
        size: u64,
    },
    /// BLOB_MEM_HOST3D / HOST3D_GUEST: the backend owns the memory.
    HostBlob {
        size: u64,
        mappable: bool,
    },
}

#[derive(Debug)]
pub struct Resource {
    pub kind: ResourceKind,
    pub backing: Option<Backing>,
    pub uuid: Option<[u8; 16]>,
    /// (offset, size) in the host-visible region while mapped.
    pub mapped: Option<(u64, u64)>,
    pub shadow: Option<Shadow>,
    pub contexts: HashSet<u32>,
    /// What it holds of the slice's quota, given back when it is destroyed.
    pub charge: Option<gpu_interface::QuotaCharge>,
}

impl Resource {
    pub fn new(kind: ResourceKind) -> Self {
        Resource {
            kind,
            backing: None,
            uuid: None,
            mapped: None,
            shadow: None,
            contexts: HashSet::new(),
            charge: None,
        }
    }

    /// Whether the backend holds this resource (everything but a guest blob without shadow).
    pub fn in_backend(&self) -> bool {
        !matches!(self.kind, ResourceKind::GuestBlob { .. }) || self.shadow.is_some()
    }

    /// Bytes per pixel for transfers: 4 for images, 1 for PIPE_BUFFER (target 0) resources.
    pub fn bytes_per_pixel(&self) -> u32 {
        match self.kind {
            ResourceKind::TwoD { format, .. } => format.bytes_per_pixel(),
            ResourceKind::ThreeD(d) if d.target == 0 => 1,
            _ => 4,
        }
    }
}

/// The device's resource table.
#[derive(Debug, Default)]
pub struct Resources {
    map: HashMap<u32, Resource>,
}

/// The most resources a guest may hold at once.
pub const MAX_RESOURCES: usize = 1 << 16;

impl Resources {
    pub fn get(&self, id: u32) -> Result<&Resource, CmdError> {
        self.map.get(&id).ok_or(CmdError::InvalidResourceId(id))
    }

    pub fn get_mut(&mut self, id: u32) -> Result<&mut Resource, CmdError> {
        self.map.get_mut(&id).ok_or(CmdError::InvalidResourceId(id))
    }

    /// Checks that `id` may name a new resource.
    pub fn check_new(&self, id: u32) -> Result<(), CmdError> {
        if id == 0 || self.map.contains_key(&id) {
            return Err(CmdError::InvalidResourceId(id));
        }
        if self.map.len() >= MAX_RESOURCES {
            return Err(CmdError::OutOfMemory("too many resources"));
        }
        Ok(())
    }

    pub fn insert(&mut self, id: u32, resource: Resource) {
        self.map.insert(id, resource);
    }

    pub fn remove(&mut self, id: u32) -> Result<Resource, CmdError> {
        self.map.remove(&id).ok_or(CmdError::InvalidResourceId(id))
    }

    pub fn ids(&self) -> Vec<u32> {
        self.map.keys().copied().collect()
    }

    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Resource> {
        self.map.values_mut()
    }

    pub fn values(&self) -> impl Iterator<Item = &Resource> {
        self.map.values()
    }

    pub fn clear(&mut self) {
        self.map.clear();
    }
}

/// One scanout as the guest configured it.
#[derive(Debug, Clone, Default)]
pub struct Scanout {
    /// The display mode the host offers; `None` when the display is unplugged.
    pub mode: Option<DisplayMode>,
    pub resource: Option<u32>,
    pub rect: Rect,
    pub cursor: Option<u32>,
    /// The listener was told of a new surface (black) and has no pixels of it yet: the next
    /// flush sends all of its damage, not only what changed in the resource.
    pub listener_blank: bool,
}
