//! The host-visible shared-memory region (virtio shmid 1) behind BAR 2: host blobs the device
//! maps are mmapped here and given to the hypervisor as memory slots at BAR 2 + offset, so the
//! guest reaches them without exits. The slots follow BAR 2 when the guest moves it.

use std::collections::BTreeMap;
use std::os::fd::AsRawFd;
use std::sync::{Arc, Mutex};

use gpu_interface::BlobMapping;
use tracing::{debug, warn};
use virtio_gpu::{SharedMemoryMapper, ShmError};

use crate::hypervisor::Vm;

const PAGE: u64 = 4096;

struct Mapping {
    slot: u32,
    host_addr: u64,
    size: u64,
}

struct State {
    vm: Arc<dyn Vm>,
    size: u64,
    /// Where BAR 2 is decoded now, if anywhere.
    base: Option<u64>,
    free_slots: Vec<u32>,
    maps: BTreeMap<u64, Mapping>,
}

impl State {
    fn register(&self, offset: u64, m: &Mapping) {
        if let Some(base) = self.base {
            let gpa = base + offset;
            if let Err(err) = self
                .vm
                .set_user_memory_region(m.slot, gpa, m.size, m.host_addr)
            {
                warn!(%err, gpa, "virtio-gpu shm: mapping a blob into the guest failed");
            }
        }
    }

    fn unregister(&self, offset: u64, m: &Mapping) {
        if let Some(base) = self.base {
            if let Err(err) = self
                .vm
                .set_user_memory_region(m.slot, base + offset, 0, m.host_addr)
            {
                warn!(%err, "virtio-gpu shm: removing a blob slot failed");
            }
        }
    }
}

/// The region shared between the transport (which knows where BAR 2 is) and the device (which
/// maps and unmaps blobs through [`SharedMemoryMapper`]).
#[derive(Clone)]
pub struct ShmRegion {
    state: Arc<Mutex<State>>,
}

impl ShmRegion {
    /// A region of `size` bytes (a power of two) using memory slots `slots` of `vm`; at most
    /// `slots.len()` blobs are mapped at once.
    pub fn new(vm: Arc<dyn Vm>, size: u64, slots: Vec<u32>) -> Self {
        let state = State {
            vm,
            size,
            base: None,
            free_slots: slots,
            maps: BTreeMap::new(),
        };
        ShmRegion {
            state: Arc::new(Mutex::new(state)),
        }
    }

    pub fn size(&self) -> u64 {
        self.lock().size
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// BAR 2 moved to `base` (or stopped decoding): every mapped blob follows it.
    pub fn relocate(&self, base: Option<u64>) {
        let mut state = self.lock();
        for (offset, m) in &state.maps {
            state.unregister(*offset, m);
        }
        state.base = base;
        for (offset, m) in &state.maps {
            state.register(*offset, m);
        }
        debug!(
            ?base,
            blobs = state.maps.len(),
            "virtio-gpu shm: region placed"
        );
    }
}

impl SharedMemoryMapper for ShmRegion {
    fn region_size(&self) -> u64 {
        self.size()
    }

    fn map(&mut self, offset: u64, mapping: BlobMapping) -> Result<(), ShmError> {
        let mut state = self.lock();
        let size = mapping.size;
        if !offset.is_multiple_of(PAGE)
            || !size.is_multiple_of(PAGE)
            || !mapping.offset.is_multiple_of(PAGE)
            || size == 0
        {
            return Err(ShmError::Map(format!(
                "blob at {offset:#x}+{size:#x} is not page aligned"
            )));
        }
        if offset.checked_add(size).is_none_or(|end| end > state.size) {
            return Err(ShmError::Map(format!(
                "blob at {offset:#x}+{size:#x} leaves the region"
            )));
        }
        let Some(slot) = state.free_slots.pop() else {
            return Err(ShmError::Map("every shared-memory slot is in use".into()));
        };
        let file_offset = libc::off_t::try_from(mapping.offset)
            .map_err(|_| ShmError::Map("blob offset too large".into()))?;
        // SAFETY: a fresh shared mapping of `size` bytes of a file the backend handed us; the
        // kernel picks the address, so no existing memory is affected. It stays mapped until
        // `unmap` (or drop) removes the memory slot first.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size as usize,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                mapping.fd.as_raw_fd(),
                file_offset,
            )
        };
        if ptr == libc::MAP_FAILED {
            state.free_slots.push(slot);
            return Err(ShmError::Map(format!(
                "mmap: {}",
                std::io::Error::last_os_error()
            )));
        }
        let m = Mapping {
            slot,
            host_addr: ptr as u64,
            size,
        };
        state.register(offset, &m);
        state.maps.insert(offset, m);
        Ok(())
    }

    fn unmap(&mut self, offset: u64, size: u64) -> Result<(), ShmError> {
        let mut state = self.lock();
        let Some(m) = state.maps.remove(&offset) else {
            return Err(ShmError::Unmap(format!("nothing mapped at {offset:#x}")));
        };
        if m.size != size {
            warn!(
                offset,
                size,
                mapped = m.size,
                "virtio-gpu shm: unmap size differs"
            );
        }
        state.unregister(offset, &m);
        state.free_slots.push(m.slot);
        // SAFETY: `host_addr`/`size` are exactly what mmap returned in `map`, and the guest can
        // no longer reach it: its memory slot was removed just above.
        unsafe { libc::munmap(m.host_addr as *mut libc::c_void, m.size as usize) };
        Ok(())
    }
}

impl Drop for State {
    fn drop(&mut self) {
        for (offset, m) in std::mem::take(&mut self.maps) {
            self.unregister(offset, &m);
            // SAFETY: as in `unmap`: our own mapping, slot removed first.
            unsafe { libc::munmap(m.host_addr as *mut libc::c_void, m.size as usize) };
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::os::fd::{FromRawFd, OwnedFd};

    use gpu_interface::MapCache;

    use super::*;
    use crate::hypervisor::mock::MockHypervisor;
    use crate::hypervisor::Hypervisor;

    /// A memfd of `len` bytes.
    pub(crate) fn memfd(len: u64) -> OwnedFd {
        // SAFETY: valid NUL-terminated name and flags; returns a new fd or -1 (checked).
        let fd = unsafe { libc::memfd_create(c"shm-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        // SAFETY: `fd` is a valid memfd; ftruncate only sizes it.
        let rc = unsafe { libc::ftruncate(fd.as_raw_fd(), len as libc::off_t) };
        assert_eq!(rc, 0);
        fd
    }

    fn blob(size: u64) -> BlobMapping {
        BlobMapping {
            fd: memfd(size),
            offset: 0,
            size,
            cache: MapCache::Cached,
        }
    }

    #[test]
    fn blobs_become_memory_slots_that_follow_the_bar() {
        let hv = MockHypervisor::new();
        let vm: Arc<dyn Vm> = Arc::from(hv.create_vm().unwrap());
        let region = ShmRegion::new(vm, 1 << 20, vec![10, 11]);
        let mut mapper = region.clone();
        mapper.map(0x2000, blob(0x1000)).unwrap();
        assert!(
            hv.state.lock().unwrap().memory_slots.is_empty(),
            "BAR 2 not placed yet"
        );
        region.relocate(Some(0xd000_0000));
        let slots = hv.state.lock().unwrap().memory_slots.clone();
        assert_eq!(slots[&11].0, 0xd000_2000);
        assert_eq!(slots[&11].1, 0x1000);
        mapper.map(0x10000, blob(0x2000)).unwrap();
        assert!(mapper.map(0x20000, blob(0x1000)).is_err(), "out of slots");
        region.relocate(Some(0xe000_0000));
        let slots = hv.state.lock().unwrap().memory_slots.clone();
        assert_eq!((slots[&11].0, slots[&10].0), (0xe000_2000, 0xe001_0000));
        mapper.unmap(0x2000, 0x1000).unwrap();
        assert!(!hv.state.lock().unwrap().memory_slots.contains_key(&11));
        assert!(mapper.unmap(0x2000, 0x1000).is_err());
    }

    #[test]
    fn misplaced_blobs_are_refused() {
        let hv = MockHypervisor::new();
        let vm: Arc<dyn Vm> = Arc::from(hv.create_vm().unwrap());
        let mut region = ShmRegion::new(vm, 1 << 20, vec![3]);
        assert!(region.map(0x800, blob(0x1000)).is_err(), "unaligned offset");
        assert!(region.map(0xff000, blob(0x2000)).is_err(), "past the end");
        region.map(0xff000, blob(0x1000)).unwrap();
    }
}
