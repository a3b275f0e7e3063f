//! Guest RAM: one memfd (so it can be shared with vhost-user back ends) mapped with vm-memory,
//! laid out around the 32-bit MMIO hole, and registered with the hypervisor slot by slot.

use std::fs::File;
use std::os::fd::FromRawFd;

use vm_memory::{FileOffset, GuestAddress, GuestMemoryBackend, GuestMemoryMmap, GuestMemoryRegion};

use crate::hypervisor::{HypervisorError, Vm};

/// Guest RAM type used throughout the VMM.
pub type GuestRam = GuestMemoryMmap;

/// Start of the 32-bit MMIO hole (PCI BARs, ECAM, IOAPIC, LAPIC); RAM resumes at 4 GiB.
pub const MMIO_HOLE_START: u64 = 0xc000_0000;
pub const MMIO_HOLE_END: u64 = 0x1_0000_0000;
/// The most RAM a guest gets: what ends below the 64-bit BAR window.
pub const MAX_MEMORY: u64 = crate::pci::MMIO64_START - (MMIO_HOLE_END - MMIO_HOLE_START);
/// The smallest guest that makes sense (real-mode micro-guests need very little).
pub const MIN_MEMORY: u64 = 1 << 20;

/// Why guest memory could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum MemoryError {
    #[error(
        "guest memory size {0:#x} must be a multiple of 4 KiB, at least 1 MiB and at most 511 GiB"
    )]
    BadSize(u64),
    #[error("memfd_create failed")]
    Memfd(#[source] std::io::Error),
    #[error("sizing the guest memory file failed")]
    Truncate(#[source] std::io::Error),
    #[error("mapping guest memory failed")]
    Map(#[source] vm_memory::mmap::FromRangesError),
    #[error("registering guest memory with the hypervisor failed")]
    Register(#[source] HypervisorError),
    #[error("the legacy window cannot be taken out of guest RAM (too little low memory)")]
    NoWindow,
}

/// The guest-physical ranges that `size` bytes of RAM occupy: below the hole, then above 4 GiB.
pub fn ram_ranges(size: u64) -> Vec<(u64, u64)> {
    let low = size.min(MMIO_HOLE_START);
    let mut ranges = vec![(0, low)];
    if size > low {
        ranges.push((MMIO_HOLE_END, size - low));
    }
    ranges
}

/// Guest RAM and the memfd behind it.
pub struct Memory {
    pub ram: GuestRam,
    pub memfd: File,
}

impl Memory {
    /// Allocates `size` bytes of memfd-backed guest RAM (not yet registered with any VM).
    pub fn new(size: u64) -> Result<Memory, MemoryError> {
        if !(MIN_MEMORY..=MAX_MEMORY).contains(&size) || size & 0xfff != 0 {
            return Err(MemoryError::BadSize(size));
        }
        // SAFETY: the name is a valid NUL-terminated string and the flags are valid; the call
        // returns a new fd or -1.
        let fd = unsafe { libc::memfd_create(c"vgpu-guest-ram".as_ptr(), libc::MFD_CLOEXEC) };
        if fd < 0 {
            return Err(MemoryError::Memfd(std::io::Error::last_os_error()));
        }
        // SAFETY: `fd` is a fresh descriptor that nothing else owns.
        let memfd = unsafe { File::from_raw_fd(fd) };
        memfd.set_len(size).map_err(MemoryError::Truncate)?;

        let mut offset = 0;
        let mut regions = Vec::new();
        for (guest, len) in ram_ranges(size) {
            let file = memfd.try_clone().map_err(MemoryError::Memfd)?;
            regions.push((
                GuestAddress(guest),
                len as usize,
                Some(FileOffset::new(file, offset)),
            ));
            offset += len;
        }
        let ram = GuestMemoryMmap::from_ranges_with_files(regions).map_err(MemoryError::Map)?;
        for region in ram.iter() {
            // Huge pages where the host allows them for shared memory (shmem_enabled=advise):
            // fewer faults to fill guest RAM and to pin it for a passed-through device's DMA.
            // SAFETY: the range is exactly this region's mapping; madvise only sets a hint.
            unsafe {
                libc::madvise(
                    region.as_ptr().cast(),
                    region.len() as usize,
                    libc::MADV_HUGEPAGE,
                )
            };
        }
        Ok(Memory { ram, memfd })
    }

    /// Registers every RAM region with `vm`, in slots 0, 1, ...; returns the next free slot.
    pub fn register(&self, vm: &dyn Vm) -> Result<u32, MemoryError> {
        let mut slot = 0;
        for region in self.ram.iter() {
            let host = region.as_ptr() as u64;
            vm.set_user_memory_region(slot, region.start_addr().0, region.len(), host)
                .map_err(MemoryError::Register)?;
            slot += 1;
        }
        Ok(slot)
    }

    /// Takes `[start, start + len)` (the legacy VGA window) out of RAM slot 0, so the guest's
    /// accesses there reach the MMIO bus: slot 0 ends at `start` and `new_slot` holds the RAM
    /// above the window. Only before the guest runs (the slot is briefly gone).
    pub fn open_window(
        &self,
        vm: &dyn Vm,
        start: u64,
        len: u64,
        new_slot: u32,
    ) -> Result<(), MemoryError> {
        let region = self.ram.iter().next().ok_or(MemoryError::NoWindow)?;
        let end = start.checked_add(len).ok_or(MemoryError::NoWindow)?;
        if region.start_addr().0 != 0
            || region.len() <= end
            || start & 0xfff != 0
            || len & 0xfff != 0
        {
            return Err(MemoryError::NoWindow);
        }
        let host = region.as_ptr() as u64;
        let set = |slot, gpa: u64, size: u64| {
            vm.set_user_memory_region(slot, gpa, size, host + gpa)
                .map_err(MemoryError::Register)
        };
        // KVM cannot shrink a slot in place: it goes and comes back smaller.
        set(0, 0, 0)?;
        set(0, 0, start)?;
        set(new_slot, end, region.len() - end)
    }

    pub fn size(&self) -> u64 {
        self.ram.iter().map(|r| r.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hypervisor::{mock::MockHypervisor, Hypervisor};
    use vm_memory::Bytes;

    #[test]
    fn large_guests_skip_the_mmio_hole() {
        assert_eq!(ram_ranges(64 << 20), vec![(0, 64 << 20)]);
        assert_eq!(
            ram_ranges(4 << 30),
            vec![
                (0, MMIO_HOLE_START),
                (MMIO_HOLE_END, (4 << 30) - MMIO_HOLE_START)
            ]
        );
    }

    #[test]
    fn memory_is_shared_through_the_memfd_and_registered() {
        use std::os::unix::fs::FileExt;
        let mem = Memory::new(2 << 20).unwrap();
        mem.ram
            .write_obj(0x1234_5678u32, GuestAddress(0x1000))
            .unwrap();
        let mut buf = [0u8; 4];
        mem.memfd.read_exact_at(&mut buf, 0x1000).unwrap();
        assert_eq!(u32::from_le_bytes(buf), 0x1234_5678);

        let hv = MockHypervisor::new();
        let vm = hv.create_vm().unwrap();
        assert_eq!(mem.register(vm.as_ref()).unwrap(), 1);
        let slots = &hv.state.lock().unwrap().memory_slots;
        assert_eq!(slots[&0].0, 0);
        assert_eq!(slots[&0].1, 2 << 20);
        assert_eq!(mem.size(), 2 << 20);
    }

    #[test]
    fn rejects_odd_sizes() {
        assert!(matches!(Memory::new(4096), Err(MemoryError::BadSize(_))));
        assert!(matches!(
            Memory::new((2 << 20) + 1),
            Err(MemoryError::BadSize(_))
        ));
    }
}
