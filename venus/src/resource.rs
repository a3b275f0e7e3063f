//! Shared-memory resources (blobs): a memfd the driver maps too, mapped here once. Every access
//! from a guest-supplied offset goes through the bounds-checked methods.

use std::{
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::atomic::AtomicU32,
};

#[derive(Debug, thiserror::Error)]
pub enum ResourceError {
    #[error("memfd_create or ftruncate failed: {0}")]
    Create(std::io::Error),
    #[error("mmap of {size} bytes failed: {err}")]
    Map { size: usize, err: std::io::Error },
    #[error("access of {len} bytes at {offset} is outside a {size}-byte resource")]
    OutOfBounds {
        offset: usize,
        len: usize,
        size: usize,
    },
    #[error("offset {0} is not 4-byte aligned")]
    Unaligned(usize),
    #[error("resource size 0 or over the limit")]
    BadSize,
}

/// Largest shared-memory blob one client may create.
pub const MAX_BLOB_SIZE: usize = 1 << 32;

pub struct SharedMemory {
    fd: OwnedFd,
    ptr: *mut u8,
    size: usize,
}

// SAFETY: the mapping is plain shared memory owned by this value; concurrent access goes through
// volatile copies or atomics, as with any memory the driver on the other side also writes.
unsafe impl Send for SharedMemory {}
// SAFETY: as above; no method hands out a Rust reference to non-atomic shared bytes.
unsafe impl Sync for SharedMemory {}

impl SharedMemory {
    pub fn new(size: usize) -> Result<Self, ResourceError> {
        if size == 0 || size > MAX_BLOB_SIZE {
            return Err(ResourceError::BadSize);
        }
        // SAFETY: memfd_create with a NUL-terminated name and no pointers kept.
        let raw = unsafe { libc::memfd_create(c"venus-blob".as_ptr(), libc::MFD_CLOEXEC) };
        if raw < 0 {
            return Err(ResourceError::Create(std::io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a fresh fd that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: ftruncate on our own fd.
        if unsafe { libc::ftruncate(fd.as_raw_fd(), size as libc::off_t) } != 0 {
            return Err(ResourceError::Create(std::io::Error::last_os_error()));
        }
        // SAFETY: a new shared mapping of our fd; checked for failure below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                size,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ResourceError::Map {
                size,
                err: std::io::Error::last_os_error(),
            });
        }
        Ok(SharedMemory {
            fd,
            ptr: ptr.cast(),
            size,
        })
    }

    pub fn size(&self) -> usize {
        self.size
    }

    /// The mapping's address, for importing it as Vulkan host memory.
    pub fn host_pointer(&self) -> *mut std::ffi::c_void {
        self.ptr.cast()
    }

    pub fn fd(&self) -> &OwnedFd {
        &self.fd
    }

    fn check(&self, offset: usize, len: usize) -> Result<(), ResourceError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(ResourceError::OutOfBounds {
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Copies `out.len()` bytes from `offset` (a snapshot: the other side may be writing).
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<(), ResourceError> {
        self.check(offset, out.len())?;
        // SAFETY: `offset` is inside the mapping (checked).
        let src = unsafe { self.ptr.add(offset) };
        // SAFETY: the range is inside the mapping (checked); `out` is our own buffer.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        Ok(())
    }

    pub fn write(&self, offset: usize, data: &[u8]) -> Result<(), ResourceError> {
        self.check(offset, data.len())?;
        // SAFETY: `offset` is inside the mapping (checked).
        let dst = unsafe { self.ptr.add(offset) };
        // SAFETY: the range is inside the mapping (checked) and does not overlap `data`.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), dst, data.len()) };
        Ok(())
    }

    /// A 32-bit atomic inside the mapping (ring head, tail, status).
    pub fn atomic_u32(&self, offset: usize) -> Result<&AtomicU32, ResourceError> {
        self.check(offset, 4)?;
        if !offset.is_multiple_of(4) {
            return Err(ResourceError::Unaligned(offset));
        }
        // SAFETY: in bounds (checked).
        let p = unsafe { self.ptr.add(offset) }.cast::<AtomicU32>();
        // SAFETY: in bounds and 4-aligned (the mapping is page-aligned); AtomicU32 has u32's
        // layout, and the reference lives no longer than `self`, which keeps the mapping.
        Ok(unsafe { &*p })
    }
}

impl Drop for SharedMemory {
    fn drop(&mut self) {
        // SAFETY: unmapping our own mapping once; no references outlive `self`.
        unsafe { libc::munmap(self.ptr.cast(), self.size) };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_are_checked() {
        let m = SharedMemory::new(4096).unwrap();
        m.write(4092, &[1, 2, 3, 4]).unwrap();
        let mut b = [0u8; 4];
        m.read(4092, &mut b).unwrap();
        assert_eq!(b, [1, 2, 3, 4]);
        assert!(m.write(4093, &[0; 4]).is_err());
        assert!(m.read(usize::MAX, &mut b).is_err());
        assert!(m.atomic_u32(2).is_err());
        assert!(m.atomic_u32(4096).is_err());
        assert!(SharedMemory::new(0).is_err());
    }
}
