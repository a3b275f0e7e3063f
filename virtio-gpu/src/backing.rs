//! Guest pages behind a resource (RESOURCE_ATTACH_BACKING, BLOB_MEM_GUEST): a list of guest
//! ranges seen as one flat byte space, and the row sources/sinks that move image rows between
//! it and a backend with one copy.

use std::ops::Range;

use gpu_interface::{GpuError, GpuResult, RowSink, RowSource};
use vm_memory::{Bytes, GuestAddress, GuestMemory, GuestMemoryBackend, Permissions};

use crate::diff::{first_difference, last_difference};
use crate::protocol::MemEntry;

/// The most entries one backing may have (Linux sends one per page run; QEMU allows 16384).
pub const MAX_BACKING_ENTRIES: usize = 16384;

/// The largest backing the device accepts (bytes), so sizes stay well inside u64 arithmetic.
pub const MAX_BACKING_BYTES: u64 = 1 << 34;

/// Why a backing list was refused.
#[derive(Debug, thiserror::Error)]
pub enum BackingError {
    #[error("{0} entries (at most {MAX_BACKING_ENTRIES})")]
    TooManyEntries(usize),
    #[error("entry {index} ({addr:#x} + {len}) is outside guest memory")]
    OutsideGuestMemory { index: usize, addr: u64, len: u32 },
    #[error("backing larger than {MAX_BACKING_BYTES} bytes")]
    TooLarge,
}

/// Guest ranges behind a resource.
#[derive(Debug, Clone, Default)]
pub struct Backing {
    entries: Vec<(GuestAddress, u32)>,
    /// Flat offset where each entry starts.
    starts: Vec<u64>,
    len: u64,
}

impl Backing {
    /// Checks every entry against guest memory.
    pub fn new<M: GuestMemory + ?Sized>(list: &[MemEntry], mem: &M) -> Result<Self, BackingError> {
        if list.len() > MAX_BACKING_ENTRIES {
            return Err(BackingError::TooManyEntries(list.len()));
        }
        let mut backing = Backing::default();
        for (index, e) in list.iter().enumerate() {
            let (addr, len) = (GuestAddress(e.addr.get()), e.length.get());
            if !mem.check_range(addr, len as usize, Permissions::ReadWrite) {
                return Err(BackingError::OutsideGuestMemory {
                    index,
                    addr: addr.0,
                    len,
                });
            }
            backing.starts.push(backing.len);
            backing.entries.push((addr, len));
            backing.len += u64::from(len);
            if backing.len > MAX_BACKING_BYTES {
                return Err(BackingError::TooLarge);
            }
        }
        Ok(backing)
    }

    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Visits the guest ranges covering `offset..offset + len`, in order.
    /// `hint` is the entry the previous call ended in (rows of a transfer come in order, so the
    /// next one usually starts there); it is checked, then updated.
    fn for_each_range(
        &self,
        offset: u64,
        len: usize,
        hint: &mut usize,
        mut f: impl FnMut(GuestAddress, std::ops::Range<usize>) -> GpuResult<()>,
    ) -> GpuResult<()> {
        let end = offset.checked_add(len as u64);
        if end.is_none_or(|end| end > self.len) {
            return Err(GpuError::InvalidParameter(
                "transfer outside the resource's backing",
            ));
        }
        // The entry holding `offset`: the last one starting at or before it.
        let holds = |i: usize| match (self.starts.get(i), self.entries.get(i)) {
            (Some(&start), Some(&(_, elen))) => start <= offset && offset < start + u64::from(elen),
            _ => false,
        };
        let next = hint.wrapping_add(1);
        let mut index = if holds(*hint) {
            *hint
        } else if holds(next) {
            next
        } else {
            self.starts
                .partition_point(|&s| s <= offset)
                .saturating_sub(1)
        };
        let mut done = 0usize;
        while done < len {
            let (Some(&(addr, elen)), Some(&start)) =
                (self.entries.get(index), self.starts.get(index))
            else {
                return Err(GpuError::InvalidParameter("transfer outside the backing"));
            };
            let pos = offset + done as u64;
            let within = pos - start;
            let avail = u64::from(elen).saturating_sub(within);
            let n = (avail.min((len - done) as u64)) as usize;
            if n > 0 {
                f(GuestAddress(addr.0 + within), done..done + n)?;
                done += n;
            }
            index += 1;
        }
        *hint = index.saturating_sub(1);
        Ok(())
    }

    /// Copies `dst.len()` bytes at `offset` of the backing into `dst`.
    pub fn read<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        dst: &mut [u8],
    ) -> GpuResult<()> {
        self.read_hinted(mem, offset, dst, &mut 0)
    }

    /// [`Backing::read`], starting the entry search at `hint` (see `for_each_range`).
    fn read_hinted<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        dst: &mut [u8],
        hint: &mut usize,
    ) -> GpuResult<()> {
        self.for_each_range(offset, dst.len(), hint, |addr, range| {
            let out = dst
                .get_mut(range)
                .ok_or(GpuError::InvalidParameter("range"))?;
            // Fast path: one region lookup and a memcpy (the generic read walks an iterator).
            let direct = mem.physical_memory().map(|p| p.get_slice(addr, out.len()));
            if let Some(Ok(slice)) = direct {
                if slice.copy_to(out) == out.len() {
                    return Ok(());
                }
            }
            mem.read_slice(out, addr)
                .map_err(|_| GpuError::InvalidParameter("backing outside guest memory"))
        })
    }

    /// Updates `current` to the backing's bytes at `offset`, compared in place in guest memory:
    /// only the span from the first to the last differing byte is copied. Returns that span, or
    /// `None` where a range is not plain mapped memory (the caller then copies and compares).
    fn update_hinted<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        current: &mut [u8],
        hint: &mut usize,
    ) -> GpuResult<Option<Range<usize>>> {
        let (mut pieces, mut plain) = (Vec::with_capacity(4), true);
        self.for_each_range(offset, current.len(), hint, |addr, range| {
            match mem
                .physical_memory()
                .map(|p| p.get_slice(addr, range.len()))
            {
                Some(Ok(slice)) if slice.len() == range.len() => pieces.push((slice, range)),
                _ => plain = false,
            }
            Ok(())
        })?;
        if !plain {
            return Ok(None);
        }
        let first = pieces.iter().find_map(|(slice, range)| {
            first_difference_in_place(slice, &current[range.clone()]).map(|i| range.start + i)
        });
        let Some(first) = first else {
            return Ok(Some(0..0));
        };
        let last = pieces
            .iter()
            .rev()
            .find_map(|(slice, range)| {
                last_difference_in_place(slice, &current[range.clone()]).map(|i| range.start + i)
            })
            .unwrap_or(first)
            .max(first);
        for (slice, range) in &pieces {
            let (lo, hi) = (range.start.max(first), range.end.min(last + 1));
            if lo < hi {
                let part = slice
                    .subslice(lo - range.start, hi - lo)
                    .map_err(|_| GpuError::InvalidParameter("backing range"))?;
                part.copy_to(&mut current[lo..hi]);
            }
        }
        Ok(Some(first..last + 1))
    }

    /// Copies `src` to `offset` of the backing.
    pub fn write<M: GuestMemory + ?Sized>(
        &self,
        mem: &M,
        offset: u64,
        src: &[u8],
    ) -> GpuResult<()> {
        self.for_each_range(offset, src.len(), &mut 0, |addr, range| {
            let input = src.get(range).ok_or(GpuError::InvalidParameter("range"))?;
            let direct = mem
                .physical_memory()
                .map(|p| p.get_slice(addr, input.len()));
            if let Some(Ok(slice)) = direct {
                if slice.len() == input.len() {
                    slice.copy_from(input);
                    return Ok(());
                }
            }
            mem.write_slice(input, addr)
                .map_err(|_| GpuError::InvalidParameter("backing outside guest memory"))
        })
    }
}

/// Guest bytes are compared in blocks of this size with memcmp; only the block where they
/// differ is copied out and searched.
const GUEST_BLOCK: usize = 256;

/// Whether `guest` (mapped guest memory) and `ours` (same length) hold the same bytes.
fn same_in_place<B: vm_memory::bitmap::BitmapSlice>(
    guest: &vm_memory::VolatileSlice<'_, B>,
    ours: &[u8],
) -> bool {
    let guard = guest.ptr_guard();
    // SAFETY: `guard` points at `guest.len()` mapped bytes of guest memory (bounds-checked by
    // get_slice; the guard keeps the mapping) and `ours` is our own buffer of the same length.
    // memcmp reads both through raw pointers, so no Rust reference to guest memory exists; a
    // guest writing these bytes meanwhile gets an answer for some mix of its old and new
    // bytes, as it would from vm-memory's own copies.
    let order = unsafe {
        libc::memcmp(
            guard.as_ptr().cast::<libc::c_void>(),
            ours.as_ptr().cast::<libc::c_void>(),
            ours.len().min(guest.len()),
        )
    };
    order == 0
}

/// The first byte where `guest` and `ours` differ: whole-range compare, then blocks, then
/// bytes of a copied block.
fn first_difference_in_place<B: vm_memory::bitmap::BitmapSlice>(
    guest: &vm_memory::VolatileSlice<'_, B>,
    ours: &[u8],
) -> Option<usize> {
    if same_in_place(guest, ours) {
        return None;
    }
    (0..ours.len()).step_by(GUEST_BLOCK).find_map(|start| {
        let len = GUEST_BLOCK.min(ours.len() - start);
        difference_in_block(guest, &ours[start..start + len], start, false)
    })
}

/// The last byte where `guest` and `ours` differ.
fn last_difference_in_place<B: vm_memory::bitmap::BitmapSlice>(
    guest: &vm_memory::VolatileSlice<'_, B>,
    ours: &[u8],
) -> Option<usize> {
    if same_in_place(guest, ours) {
        return None;
    }
    let blocks = ours.len().div_ceil(GUEST_BLOCK);
    (0..blocks)
        .rev()
        .map(|b| b * GUEST_BLOCK)
        .find_map(|start| {
            let len = GUEST_BLOCK.min(ours.len() - start);
            difference_in_block(guest, &ours[start..start + len], start, true)
        })
}

/// The first (or `last`) differing byte of the block of `guest` at `start` against `ours`.
fn difference_in_block<B: vm_memory::bitmap::BitmapSlice>(
    guest: &vm_memory::VolatileSlice<'_, B>,
    ours: &[u8],
    start: usize,
    last: bool,
) -> Option<usize> {
    let block = guest.subslice(start, ours.len()).ok()?;
    if same_in_place(&block, ours) {
        return None;
    }
    let mut copy = [0u8; GUEST_BLOCK];
    let copy = &mut copy[..ours.len()];
    block.copy_to(copy);
    let at = if last {
        last_difference(copy, ours)
    } else {
        first_difference(copy, ours)
    };
    at.map(|i| start + i)
}

/// Where rows of a transfer lie in the backing: row `i` (numbered z-major, as the backends
/// number them) starts at `offset + (i / rows_per_layer) * layer_stride + (i % rows_per_layer) *
/// stride`.
#[derive(Debug, Clone, Copy)]
pub struct RowLayout {
    pub offset: u64,
    pub stride: u64,
    pub rows_per_layer: u32,
    pub layer_stride: u64,
}

impl RowLayout {
    /// Rows of one 2D rectangle: `rows` rows `stride` bytes apart, the first at `offset`.
    pub fn rows_2d(offset: u64, stride: u64, rows: u32) -> Self {
        RowLayout {
            offset,
            stride,
            rows_per_layer: rows,
            layer_stride: 0,
        }
    }

    fn row_offset(&self, row: u32) -> GpuResult<u64> {
        let per = self.rows_per_layer.max(1);
        let (layer, y) = (u64::from(row / per), u64::from(row % per));
        layer
            .checked_mul(self.layer_stride)
            .and_then(|l| y.checked_mul(self.stride)?.checked_add(l))
            .and_then(|o| o.checked_add(self.offset))
            .ok_or(GpuError::InvalidParameter("transfer offset overflows"))
    }
}

/// Rows read straight from guest memory into backend storage.
pub struct GuestRows<'a, M: GuestMemory + ?Sized> {
    pub mem: &'a M,
    pub backing: &'a Backing,
    pub layout: RowLayout,
    /// The backing entry the last row ended in (start with 0).
    pub entry_hint: usize,
}

impl<'a, M: GuestMemory + ?Sized> GuestRows<'a, M> {
    /// Rows of `backing` (in `mem`) laid out as `layout`.
    pub fn new(mem: &'a M, backing: &'a Backing, layout: RowLayout) -> Self {
        GuestRows {
            mem,
            backing,
            layout,
            entry_hint: 0,
        }
    }
}

impl<M: GuestMemory + ?Sized> RowSource for GuestRows<'_, M> {
    fn fill_row(&mut self, row: u32, dst: &mut [u8]) -> GpuResult<()> {
        let offset = self.layout.row_offset(row)?;
        self.backing
            .read_hinted(self.mem, offset, dst, &mut self.entry_hint)
    }

    fn update_row(&mut self, row: u32, current: &mut [u8]) -> GpuResult<Option<Range<usize>>> {
        let offset = self.layout.row_offset(row)?;
        self.backing
            .update_hinted(self.mem, offset, current, &mut self.entry_hint)
    }
}

impl<M: GuestMemory + ?Sized> RowSink for GuestRows<'_, M> {
    fn take_row(&mut self, row: u32, src: &[u8]) -> GpuResult<()> {
        let offset = self.layout.row_offset(row)?;
        self.backing.write(self.mem, offset, src)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    fn entry(addr: u64, len: u32) -> MemEntry {
        MemEntry {
            addr: addr.into(),
            length: len.into(),
            padding: 0.into(),
        }
    }

    #[test]
    fn reads_across_entries_and_rejects_outside() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x10000)]).unwrap();
        mem.write_slice(&[1, 2, 3, 4], GuestAddress(0x1ffe))
            .unwrap();
        mem.write_slice(&[5, 6], GuestAddress(0x8000)).unwrap();
        let b = Backing::new(&[entry(0x1000, 0x1000), entry(0x8000, 16)], &mem).unwrap();
        assert_eq!(b.len(), 0x1010);
        let mut buf = [0u8; 4];
        b.read(&mem, 0xffe, &mut buf).unwrap();
        assert_eq!(buf, [1, 2, 5, 6]);
        assert!(b.read(&mem, 0x100e, &mut buf).is_err(), "past the end");
        // The entry hint is only a hint: stale, past the end or wrong, reads stay right.
        for hint in [0, 1, 2, usize::MAX] {
            let (mut h, mut buf) = (hint, [0u8; 4]);
            b.read_hinted(&mem, 0xffe, &mut buf, &mut h).unwrap();
            assert_eq!((buf, h), ([1, 2, 5, 6], 1), "hint {hint}");
            let mut two = [0u8; 2];
            b.read_hinted(&mem, 0xffe, &mut two, &mut h).unwrap();
            assert_eq!((two, h), ([1, 2], 0), "back to the first entry");
        }
        assert!(b.read(&mem, u64::MAX - 1, &mut buf).is_err(), "overflow");
        assert!(Backing::new(&[entry(0xf000, 0x2000)], &mem).is_err());
        assert!(Backing::new(&[entry(u64::MAX - 4, 0x10)], &mem).is_err());
        let many = vec![entry(0, 1); MAX_BACKING_ENTRIES + 1];
        assert!(matches!(
            Backing::new(&many, &mem),
            Err(BackingError::TooManyEntries(_))
        ));
    }
}

#[cfg(test)]
mod update_row_tests {
    use super::*;
    use vm_memory::GuestMemoryMmap;

    /// A small deterministic generator (xorshift), so failures repeat.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self, below: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % below as u64) as usize
        }
    }

    #[test]
    fn update_row_copies_exactly_the_span_that_differs_across_scattered_entries() {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[
            (GuestAddress(0), 0x10000),
            (GuestAddress(0x20000), 0x10000),
        ])
        .unwrap();
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        for base in [0u64, 0x20000] {
            let noise: Vec<u8> = (0..0x10000).map(|_| rng.next(256) as u8).collect();
            mem.write_slice(&noise, GuestAddress(base)).unwrap();
        }
        for round in 0..300 {
            // Entries of random lengths, some in the second region, out of order.
            let mut list = Vec::new();
            let mut total = 0u32;
            while total < 3000 {
                let len = 1 + rng.next(700) as u32;
                let base = if rng.next(2) == 0 { 0 } else { 0x20000 };
                let addr = base + rng.next(0x10000 - len as usize) as u64;
                list.push(MemEntry {
                    addr: addr.into(),
                    length: len.into(),
                    padding: 0.into(),
                });
                total += len;
            }
            let backing = Backing::new(&list, &mem).unwrap();
            let (offset, len) = (rng.next(200) as u64, 1 + rng.next(2500));
            let mut guest_row = vec![0u8; len];
            backing.read(&mem, offset, &mut guest_row).unwrap();
            // What we hold: the guest's row with 0, 1 or a few bytes changed.
            let mut ours = guest_row.clone();
            let changes = rng.next(4);
            for _ in 0..changes {
                let at = rng.next(len);
                ours[at] = ours[at].wrapping_add(1 + rng.next(255) as u8);
            }
            let first = ours.iter().zip(&guest_row).position(|(a, b)| a != b);
            let last = ours.iter().zip(&guest_row).rposition(|(a, b)| a != b);
            let want = match (first, last) {
                (Some(f), Some(l)) => f..l + 1,
                _ => 0..0,
            };
            let before = ours.clone();
            let got = backing
                .update_hinted(&mem, offset, &mut ours, &mut 0)
                .unwrap();
            assert_eq!(got, Some(want.clone()), "round {round}");
            assert_eq!(ours, guest_row, "round {round}: row not brought up to date");
            // Nothing outside the span was written (it already matched).
            assert_eq!(ours[..want.start], before[..want.start], "round {round}");
        }
    }
}
