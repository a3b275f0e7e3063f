//! Typed object tables: the driver's object id -> the host handle, tagged with VkObjectType so
//! an id of one type used as another is an error, not a confused host call.

use std::{collections::HashMap, sync::RwLock};

use crate::protocol::wire::Lookup;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    objtype: i32,
    raw: u64,
    /// The host device the object belongs to (0: none, e.g. instances and devices).
    owner: u64,
}

#[derive(Default)]
struct Tables {
    by_id: HashMap<u64, Entry>,
    /// (objtype, host handle) -> id, for objects the host names to us (freed command buffers
    /// and descriptor sets, the children of a destroyed pool or device).
    by_handle: HashMap<(i32, u64), u64>,
}

impl Tables {
    /// Removes entry `id` and its handle index entry (if that names this id).
    fn unlink(&mut self, id: u64) -> Option<Entry> {
        let e = self.by_id.remove(&id)?;
        if self.by_handle.get(&(e.objtype, e.raw)) == Some(&id) {
            self.by_handle.remove(&(e.objtype, e.raw));
        }
        Some(e)
    }
}

#[derive(Default)]
pub struct ObjectTable {
    tables: RwLock<Tables>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ObjectError {
    #[error("object id {0:#x} is 0 or already in use")]
    IdInUse(u64),
    #[error("object id {id:#x} is not a live object of type {objtype}")]
    NotFound { id: u64, objtype: i32 },
}

impl ObjectTable {
    pub fn insert(&self, id: u64, objtype: i32, raw: u64) -> Result<(), ObjectError> {
        self.insert_owned(id, objtype, raw, 0)
    }

    /// As `insert`, for a child of host device `owner` (see `take_owned`).
    pub fn insert_owned(
        &self,
        id: u64,
        objtype: i32,
        raw: u64,
        owner: u64,
    ) -> Result<(), ObjectError> {
        let mut t = self.tables.write().unwrap();
        if id == 0 || t.by_id.contains_key(&id) {
            return Err(ObjectError::IdInUse(id));
        }
        t.by_id.insert(
            id,
            Entry {
                objtype,
                raw,
                owner,
            },
        );
        t.by_handle.insert((objtype, raw), id);
        Ok(())
    }

    /// As `insert`, but an id already naming this very object is fine: the driver enumerates
    /// physical devices and gets queues again with the ids it chose the first time.
    pub fn insert_or_same(&self, id: u64, objtype: i32, raw: u64) -> Result<(), ObjectError> {
        if self.lookup(id, objtype) == Some(raw) {
            return Ok(());
        }
        self.insert(id, objtype, raw)
    }

    pub fn remove(&self, id: u64, objtype: i32) -> Result<u64, ObjectError> {
        let mut t = self.tables.write().unwrap();
        match t.by_id.get(&id) {
            Some(e) if e.objtype == objtype => Ok(t.unlink(id).unwrap().raw),
            _ => Err(ObjectError::NotFound { id, objtype }),
        }
    }

    /// The id of the live object of one type whose host handle is `raw`.
    pub fn id_of(&self, objtype: i32, raw: u64) -> Option<u64> {
        self.tables
            .read()
            .unwrap()
            .by_handle
            .get(&(objtype, raw))
            .copied()
    }

    /// Forgets the object the host knows as `raw`, if the table has it.
    pub fn remove_handle(&self, objtype: i32, raw: u64) {
        if let Some(id) = self.id_of(objtype, raw) {
            let _ = self.remove(id, objtype);
        }
    }

    /// Forgets every object of host device `owner`: (id, objtype, host handle) of each, for the
    /// caller to destroy before the device (a driver that destroys a device with live children,
    /// or a client that went away).
    pub fn take_owned(&self, owner: u64) -> Vec<(u64, i32, u64)> {
        let mut t = self.tables.write().unwrap();
        let ids: Vec<u64> = t
            .by_id
            .iter()
            .filter(|(_, e)| owner != 0 && e.owner == owner)
            .map(|(&id, _)| id)
            .collect();
        ids.into_iter()
            .map(|id| {
                let e = t.unlink(id).unwrap();
                (id, e.objtype, e.raw)
            })
            .collect()
    }

    pub fn len(&self) -> usize {
        self.tables.read().unwrap().by_id.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lookup for ObjectTable {
    fn lookup(&self, id: u64, objtype: i32) -> Option<u64> {
        let t = self.tables.read().unwrap();
        t.by_id
            .get(&id)
            .filter(|e| e.objtype == objtype)
            .map(|e| e.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_devices_children_are_taken_with_it_and_no_others() {
        let t = ObjectTable::default();
        t.insert(1, 3, 0xd1).unwrap(); // the device itself: owned by no device
        t.insert_owned(2, 9, 0xb1, 0xd1).unwrap();
        t.insert_owned(3, 8, 0xa1, 0xd1).unwrap();
        t.insert_owned(4, 9, 0xb2, 0xd2).unwrap();
        let mut taken = t.take_owned(0xd1);
        taken.sort();
        assert_eq!(taken, vec![(2, 9, 0xb1), (3, 8, 0xa1)]);
        assert_eq!(t.lookup(2, 9), None);
        assert_eq!(t.id_of(9, 0xb1), None, "the handle index forgets them too");
        assert_eq!(t.lookup(4, 9), Some(0xb2), "another device's child stays");
        assert_eq!(t.lookup(1, 3), Some(0xd1));
        assert!(t.take_owned(0).is_empty(), "owner 0 is nobody");
    }

    #[test]
    fn ids_are_typed_and_unique() {
        let t = ObjectTable::default();
        t.insert(7, 9, 0x1000).unwrap();
        assert_eq!(t.lookup(7, 9), Some(0x1000));
        assert_eq!(
            t.lookup(7, 10),
            None,
            "a buffer id used as an image is not found"
        );
        assert_eq!(t.insert(7, 9, 0x2000), Err(ObjectError::IdInUse(7)));
        assert_eq!(t.insert(0, 9, 0x2000), Err(ObjectError::IdInUse(0)));
        assert_eq!(
            t.remove(7, 10),
            Err(ObjectError::NotFound { id: 7, objtype: 10 })
        );
        assert_eq!(t.id_of(9, 0x1000), Some(7));
        assert_eq!(
            t.insert_or_same(7, 9, 0x1000),
            Ok(()),
            "the same object again"
        );
        assert_eq!(t.insert_or_same(7, 9, 0x3000), Err(ObjectError::IdInUse(7)));
        assert_eq!(t.remove(7, 9), Ok(0x1000));
        assert_eq!(t.id_of(9, 0x1000), None);
        assert!(t.is_empty());
        t.insert(8, 9, 0x4000).unwrap();
        t.remove_handle(9, 0x4000);
        assert!(t.is_empty(), "forgotten by its host handle");
    }
}
