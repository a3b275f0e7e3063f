//! Typed object tables: the driver's object id -> the host handle, tagged with VkObjectType so
//! an id of one type used as another is an error, not a confused host call.

use std::{collections::HashMap, sync::RwLock};

use crate::protocol::wire::Lookup;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Entry {
    objtype: i32,
    raw: u64,
}

#[derive(Default)]
pub struct ObjectTable {
    map: RwLock<HashMap<u64, Entry>>,
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
        let mut map = self.map.write().unwrap();
        if id == 0 || map.contains_key(&id) {
            return Err(ObjectError::IdInUse(id));
        }
        map.insert(id, Entry { objtype, raw });
        Ok(())
    }

    pub fn remove(&self, id: u64, objtype: i32) -> Result<u64, ObjectError> {
        let mut map = self.map.write().unwrap();
        match map.get(&id) {
            Some(e) if e.objtype == objtype => Ok(map.remove(&id).unwrap().raw),
            _ => Err(ObjectError::NotFound { id, objtype }),
        }
    }

    /// The ids of live objects of one type whose host handle is `raw`.
    pub fn id_of(&self, objtype: i32, raw: u64) -> Option<u64> {
        let map = self.map.read().unwrap();
        map.iter()
            .find(|(_, e)| e.objtype == objtype && e.raw == raw)
            .map(|(&id, _)| id)
    }

    pub fn lookup_raw(&self, id: u64, objtype: i32) -> Option<u64> {
        self.lookup(id, objtype)
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Lookup for ObjectTable {
    fn lookup(&self, id: u64, objtype: i32) -> Option<u64> {
        let map = self.map.read().unwrap();
        map.get(&id).filter(|e| e.objtype == objtype).map(|e| e.raw)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        assert_eq!(t.remove(7, 9), Ok(0x1000));
        assert!(t.is_empty());
    }
}
