//! The Venus wire rules: little-endian 4-byte words, 8-byte sizes and ids, arrays as a u64 count
//! then the elements, strings and blobs padded to 4 bytes, pointers as a u64 0/1. The decoder
//! checks every count, length and id it reads and fails instead of trusting one.

use std::{cell::UnsafeCell, ffi::c_char, ffi::c_void};

use thiserror::Error;

/// VK_COMMAND_GENERATE_REPLY_BIT_EXT: the driver waits for this command's reply.
pub const COMMAND_GENERATE_REPLY: u32 = 1;

/// Most memory one command may make the decoder allocate.
pub const ARENA_BUDGET: usize = 64 << 20;
/// Deepest pNext chain accepted.
const MAX_CHAIN_DEPTH: u32 = 64;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("stream ended inside a command (needed {needed} bytes at offset {offset})")]
    Truncated { offset: usize, needed: usize },
    #[error("command type {0} ({name}) is not served", name = super::generated::command_name(*.0))]
    UnknownCommand(u32),
    #[error("{0}")]
    Invalid(String),
    #[error("object id {id:#x} is not a live object of type {objtype}")]
    BadObject { id: u64, objtype: i32 },
    #[error("sType {stype} may not appear in the pNext chain of {base}")]
    UnexpectedStype { stype: i32, base: &'static str },
    #[error("a command needs more than {ARENA_BUDGET} bytes of decoded arguments")]
    TooLarge,
    #[error("{0} is not served")]
    Unsupported(&'static str),
}

/// Marks generated C mirrors whose all-zero bit pattern is a valid value.
///
/// # Safety
/// Implementors must be plain old data for which all-zero bytes are valid.
pub unsafe trait Zeroed: Copy {}

macro_rules! zeroed_scalars { ($($t:ty),*) => { $(
    // SAFETY: integers and floats are valid as all-zero bytes.
    unsafe impl Zeroed for $t {}
)* } }
zeroed_scalars!(u8, i8, u16, i16, u32, i32, u64, i64, usize, f32, f64);
// SAFETY: a null pointer is all-zero bytes.
unsafe impl Zeroed for *const c_char {}
// SAFETY: an array of values valid as zero is valid as zero.
unsafe impl<T: Zeroed, const N: usize> Zeroed for [T; N] {}

/// A value of all-zero bytes.
pub fn zeroed<T: Zeroed>() -> T {
    // SAFETY: `Zeroed` promises that all-zero bytes are a valid T.
    unsafe { std::mem::zeroed() }
}

/// A bump allocator for one command's decoded arguments, with a byte budget.
pub struct Arena {
    chunks: UnsafeCell<Vec<(Box<[u64]>, usize)>>,
    used: UnsafeCell<usize>,
}

impl Default for Arena {
    fn default() -> Self {
        Arena {
            chunks: UnsafeCell::new(Vec::new()),
            used: UnsafeCell::new(0),
        }
    }
}

impl Arena {
    /// Forgets every allocation; needs `&mut`, so no decoded reference outlives it.
    pub fn reset(&mut self) {
        let chunks = self.chunks.get_mut();
        chunks.truncate(1);
        if let Some(c) = chunks.first_mut() {
            c.1 = 0;
        }
        *self.used.get_mut() = 0;
    }

    /// `n` zeroed values of `T`, valid until the next `reset`.
    // A bump allocator: each call hands out a region no other call returns (until `reset`, which
    // takes `&mut self`), so the `&mut` results never alias.
    #[allow(clippy::mut_from_ref)]
    pub fn alloc<T: Zeroed>(&self, n: usize) -> Result<&mut [T], DecodeError> {
        const { assert!(align_of::<T>() <= 8) };
        let bytes = n.checked_mul(size_of::<T>()).filter(|&b| b <= ARENA_BUDGET);
        let words = bytes.ok_or(DecodeError::TooLarge)?.div_ceil(8);
        if n == 0 || words == 0 {
            return Ok(&mut []);
        }
        // SAFETY: the arena is not Sync, and no reference into `chunks` escapes this call: only
        // pointers into the boxed chunks, whose heap storage never moves or shrinks before `reset`.
        let chunks = unsafe { &mut *self.chunks.get() };
        // SAFETY: as above, for the byte counter.
        let used = unsafe { &mut *self.used.get() };
        *used = used
            .checked_add(words * 8)
            .filter(|&u| u <= ARENA_BUDGET)
            .ok_or(DecodeError::TooLarge)?;
        let fits = chunks.last().is_some_and(|(c, off)| c.len() - off >= words);
        if !fits {
            let size = words.max(8192);
            chunks.push((vec![0u64; size].into_boxed_slice(), 0));
        }
        let (chunk, off) = chunks.last_mut().unwrap();
        let start = *off;
        *off += words;
        let region = &mut chunk[start..start + words];
        region.fill(0);
        // SAFETY: `region` is `words * 8 >= n * size_of::<T>()` zeroed bytes, 8-aligned (>= T's
        // alignment), used by nobody else until `reset`; all-zero is a valid T (Zeroed).
        Ok(unsafe { std::slice::from_raw_parts_mut(region.as_mut_ptr().cast::<T>(), n) })
    }
}

#[cfg(test)]
mod arena_tests {
    use super::*;

    #[test]
    fn huge_counts_are_refused_not_overflowed() {
        let arena = Arena::default();
        assert_eq!(
            arena.alloc::<u64>(usize::MAX / 4).err(),
            Some(DecodeError::TooLarge)
        );
        assert_eq!(
            arena.alloc::<u8>(usize::MAX).err(),
            Some(DecodeError::TooLarge)
        );
        assert_eq!(
            arena.alloc::<u8>(ARENA_BUDGET + 1).err(),
            Some(DecodeError::TooLarge)
        );
        let half = arena.alloc::<u8>(ARENA_BUDGET / 2).unwrap();
        assert!(half.iter().all(|&b| b == 0));
        assert_eq!(
            arena.alloc::<u8>(ARENA_BUDGET / 2 + 8).err(),
            Some(DecodeError::TooLarge),
            "the budget is per command"
        );
    }
}

/// Read position in one command stream.
pub struct Cursor<'a> {
    data: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data, pos: 0 }
    }

    pub fn position(&self) -> usize {
        self.pos
    }

    pub fn has_command(&self) -> bool {
        self.pos < self.data.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        let end = end.ok_or(DecodeError::Truncated {
            offset: self.pos,
            needed: n,
        })?;
        let s = &self.data[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    /// `n` bytes and the padding up to the next 4-byte boundary.
    pub fn padded(&mut self, n: usize) -> Result<&'a [u8], DecodeError> {
        let padded = n.checked_add(3).ok_or(DecodeError::TooLarge)? & !3;
        Ok(&self.take(padded)?[..n])
    }

    pub fn u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_le_bytes(self.take(4)?.try_into().unwrap()))
    }

    pub fn u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_le_bytes(self.take(8)?.try_into().unwrap()))
    }

    pub fn peek_u32(&self) -> Option<u32> {
        self.data
            .get(self.pos..self.pos + 4)
            .map(|b| u32::from_le_bytes(b.try_into().unwrap()))
    }

    pub fn peek_u64(&self) -> Option<u64> {
        self.data
            .get(self.pos..self.pos + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap()))
    }
}

/// A scalar as the wire carries it (8- and 16-bit values in a word of their own, packed in arrays).
pub trait WireScalar: Copy + Zeroed {
    const PACKED_SIZE: usize;
    fn read(c: &mut Cursor<'_>) -> Result<Self, DecodeError>;
    fn from_packed(b: &[u8]) -> Self;
    fn write(self, e: &mut Encoder);
    fn to_packed(self, out: &mut Vec<u8>);
}

macro_rules! wire_word {
    ($t:ty, $packed:expr, $words:ident) => {
        impl WireScalar for $t {
            const PACKED_SIZE: usize = $packed;
            fn read(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
                Ok(c.$words()? as $t)
            }
            fn from_packed(b: &[u8]) -> Self {
                <$t>::from_le_bytes(b.try_into().unwrap())
            }
            fn write(self, e: &mut Encoder) {
                e.buf.extend_from_slice(&(self as $words).to_le_bytes()[..]);
            }
            fn to_packed(self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        }
    };
}
wire_word!(u8, 1, u32);
wire_word!(i8, 1, u32);
wire_word!(u16, 2, u32);
wire_word!(i16, 2, u32);
wire_word!(u32, 4, u32);
wire_word!(i32, 4, u32);
wire_word!(u64, 8, u64);
wire_word!(i64, 8, u64);
wire_word!(usize, 8, u64);

impl WireScalar for f32 {
    const PACKED_SIZE: usize = 4;
    fn read(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(f32::from_bits(c.u32()?))
    }
    fn from_packed(b: &[u8]) -> Self {
        f32::from_le_bytes(b.try_into().unwrap())
    }
    fn write(self, e: &mut Encoder) {
        e.buf.extend_from_slice(&self.to_le_bytes());
    }
    fn to_packed(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

impl WireScalar for f64 {
    const PACKED_SIZE: usize = 8;
    fn read(c: &mut Cursor<'_>) -> Result<Self, DecodeError> {
        Ok(f64::from_bits(c.u64()?))
    }
    fn from_packed(b: &[u8]) -> Self {
        f64::from_le_bytes(b.try_into().unwrap())
    }
    fn write(self, e: &mut Encoder) {
        e.buf.extend_from_slice(&self.to_le_bytes());
    }
    fn to_packed(self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.to_le_bytes());
    }
}

/// Reads an array of `n` scalars, packed or a word each.
fn read_scalars<T: WireScalar>(c: &mut Cursor<'_>, out: &mut [T]) -> Result<(), DecodeError> {
    if T::PACKED_SIZE < 4 {
        let bytes = c.padded(out.len() * T::PACKED_SIZE)?;
        for (x, b) in out.iter_mut().zip(bytes.chunks_exact(T::PACKED_SIZE)) {
            *x = T::from_packed(b);
        }
    } else {
        for x in out.iter_mut() {
            *x = T::read(c)?;
        }
    }
    Ok(())
}

/// A handle argument: the driver's object id and the host handle it names.
#[derive(Clone, Copy, Debug, Default)]
pub struct Handle {
    pub id: u64,
    pub raw: u64,
}

/// Object id -> host handle, typed by VkObjectType.
pub trait Lookup {
    fn lookup(&self, id: u64, objtype: i32) -> Option<u64>;
}

/// The first two members every extensible struct shares.
#[repr(C)]
#[allow(non_snake_case)]
pub struct BaseStructure {
    pub sType: i32,
    pub pNext: *const c_void,
}

/// Decodes one command's arguments from a stream, allocating in the command's arena.
pub struct Decoder<'a, 'd> {
    c: &'a mut Cursor<'d>,
    arena: &'a Arena,
    objects: &'a dyn Lookup,
    chain_depth: u32,
}

macro_rules! decoder_scalars { ($($t:ident),*) => { $(
    pub fn $t(&mut self) -> Result<$t, DecodeError> { <$t as WireScalar>::read(self.c) }
)* } }

impl<'a, 'd> Decoder<'a, 'd> {
    pub fn new(c: &'a mut Cursor<'d>, arena: &'a Arena, objects: &'a dyn Lookup) -> Self {
        Decoder {
            c,
            arena,
            objects,
            chain_depth: 0,
        }
    }

    decoder_scalars!(u8, i8, u16, i16, u32, i32, u64, i64, usize, f32, f64);

    pub fn fatal(&self, what: &str) -> DecodeError {
        DecodeError::Invalid(format!("{what} (at offset {})", self.c.position()))
    }

    pub fn unexpected_stype(&self, stype: i32, base: &'static str) -> DecodeError {
        DecodeError::UnexpectedStype { stype, base }
    }

    pub fn unsupported<T>(&self, what: &'static str) -> Result<T, DecodeError> {
        Err(DecodeError::Unsupported(what))
    }

    pub fn alloc<T: Zeroed>(&self, n: usize) -> Result<&'a mut [T], DecodeError> {
        self.arena.alloc(n)
    }

    pub fn stype(&mut self, expected: i32) -> Result<i32, DecodeError> {
        let s = self.i32()?;
        if s != expected {
            return Err(self.fatal(&format!("sType {s}, expected {expected}")));
        }
        Ok(s)
    }

    pub fn enter_chain(&mut self) -> Result<(), DecodeError> {
        self.chain_depth += 1;
        if self.chain_depth > MAX_CHAIN_DEPTH {
            return Err(self.fatal("pNext chain too deep"));
        }
        Ok(())
    }

    pub fn leave_chain(&mut self) {
        self.chain_depth -= 1;
    }

    pub fn simple_pointer(&mut self) -> Result<bool, DecodeError> {
        match self.u64()? {
            0 => Ok(false),
            1 => Ok(true),
            n => Err(self.fatal(&format!("pointer marker {n}"))),
        }
    }

    /// An array's element count, which must match `expected` (the count member); a missing
    /// array (0) is accepted where the member is optional or the count is 0.
    pub fn array_len(&mut self, expected: usize, lenient: bool) -> Result<usize, DecodeError> {
        let n = self.u64()?;
        if n == 0 {
            if expected != 0 && !lenient {
                return Err(self.fatal(&format!("missing array of {expected}")));
            }
            return Ok(0);
        }
        if n != expected as u64 {
            return Err(self.fatal(&format!("array of {n}, count says {expected}")));
        }
        Ok(expected)
    }

    pub fn array_size_eq(&mut self, expected: usize) -> Result<(), DecodeError> {
        let n = self.u64()?;
        if n != expected as u64 {
            return Err(self.fatal(&format!("fixed array of {n}, expected {expected}")));
        }
        Ok(())
    }

    fn lookup(&self, id: u64, objtype: i32, required: bool) -> Result<u64, DecodeError> {
        if id == 0 {
            return if required {
                Err(DecodeError::BadObject { id, objtype })
            } else {
                Ok(0)
            };
        }
        self.objects
            .lookup(id, objtype)
            .ok_or(DecodeError::BadObject { id, objtype })
    }

    pub fn handle(&mut self, objtype: i64, required: bool) -> Result<u64, DecodeError> {
        let id = self.u64()?;
        self.lookup(id, objtype as i32, required)
    }

    pub fn handle_arg(&mut self, objtype: i64, required: bool) -> Result<Handle, DecodeError> {
        let id = self.u64()?;
        Ok(Handle {
            id,
            raw: self.lookup(id, objtype as i32, required)?,
        })
    }

    pub fn handle_slice(
        &mut self,
        count: usize,
        objtype: i64,
        lenient: bool,
    ) -> Result<&'a [u64], DecodeError> {
        let n = self.array_len(count, lenient)?;
        let xs = self.alloc::<u64>(n)?;
        for x in xs.iter_mut() {
            *x = self.handle(objtype, true)?;
        }
        Ok(xs)
    }

    pub fn handle_array(
        &mut self,
        count: usize,
        objtype: i64,
        lenient: bool,
    ) -> Result<*const u64, DecodeError> {
        Ok(ptr_or_null(self.handle_slice(count, objtype, lenient)?))
    }

    /// Object ids the driver chose for objects a command creates.
    pub fn u64_slice(&mut self, n: usize) -> Result<&'a mut [u64], DecodeError> {
        let xs = self.alloc::<u64>(n)?;
        for x in xs.iter_mut() {
            *x = self.u64()?;
        }
        Ok(xs)
    }

    pub fn fixed_array<T: WireScalar>(&mut self, out: &mut [T]) -> Result<(), DecodeError> {
        self.array_size_eq(out.len())?;
        read_scalars(self.c, out)
    }

    pub fn scalar_slice<T: WireScalar + 'a>(
        &mut self,
        count: usize,
        lenient: bool,
    ) -> Result<&'a [T], DecodeError> {
        let n = self.array_len(count, lenient)?;
        let xs = self.alloc::<T>(n)?;
        read_scalars(self.c, xs)?;
        Ok(xs)
    }

    pub fn scalar_array<T: WireScalar + 'a>(
        &mut self,
        count: usize,
        lenient: bool,
    ) -> Result<*const T, DecodeError> {
        Ok(ptr_or_null(self.scalar_slice(count, lenient)?))
    }

    pub fn blob_slice(&mut self, count: usize, lenient: bool) -> Result<&'a [u8], DecodeError> {
        let n = self.array_len(count, lenient)?;
        let xs = self.alloc::<u8>(n)?;
        xs.copy_from_slice(self.c.padded(n)?);
        Ok(xs)
    }

    pub fn blob(&mut self, count: usize, lenient: bool) -> Result<*const c_void, DecodeError> {
        Ok(ptr_or_null(self.blob_slice(count, lenient)?).cast())
    }

    /// A fixed-size char array (a name): its size must be the array's, and it ends in NUL.
    pub fn char_array(&mut self, out: &mut [c_char], n: usize) -> Result<(), DecodeError> {
        self.array_size_eq(n)?;
        let bytes = self.c.padded(n)?;
        for (o, &b) in out.iter_mut().zip(bytes) {
            *o = b as c_char;
        }
        if let Some(last) = out.last_mut() {
            *last = 0;
        }
        Ok(())
    }

    /// A NUL-terminated string (size includes the NUL), or null for size 0.
    pub fn string(&mut self) -> Result<*const c_char, DecodeError> {
        let n = usize::try_from(self.u64()?).map_err(|_| DecodeError::TooLarge)?;
        if n == 0 {
            return Ok(std::ptr::null());
        }
        let bytes = self.c.padded(n)?;
        let xs = self.alloc::<u8>(n)?;
        xs.copy_from_slice(bytes);
        xs[n - 1] = 0;
        Ok(xs.as_ptr().cast())
    }

    pub fn string_array(
        &mut self,
        count: usize,
        optional: bool,
    ) -> Result<*const *const c_char, DecodeError> {
        let n = self.array_len(count, optional)?;
        let xs = self.alloc::<*const c_char>(n)?;
        for x in xs.iter_mut() {
            *x = self.string()?;
            if x.is_null() {
                return Err(self.fatal("null string in a string array"));
            }
        }
        Ok(if n == 0 {
            std::ptr::null()
        } else {
            xs.as_ptr()
        })
    }
}

/// Builds one reply.
#[derive(Default)]
pub struct Encoder {
    buf: Vec<u8>,
    unsupported: Option<&'static str>,
}

macro_rules! encoder_scalars { ($($t:ident),*) => { $(
    pub fn $t(&mut self, v: $t) { v.write(self) }
)* } }

impl Encoder {
    encoder_scalars!(u8, i8, u16, i16, u32, i32, u64, i64, usize, f32, f64);

    pub fn array_size(&mut self, n: usize) {
        self.u64(n as u64);
    }

    pub fn fixed_array<T: WireScalar>(&mut self, v: &[T]) {
        self.scalars(v)
    }

    pub fn scalars<T: WireScalar>(&mut self, v: &[T]) {
        if T::PACKED_SIZE < 4 {
            let start = self.buf.len();
            for &x in v {
                x.to_packed(&mut self.buf);
            }
            let pad = (4 - (self.buf.len() - start) % 4) % 4;
            self.buf.extend(std::iter::repeat_n(0, pad));
        } else {
            for &x in v {
                x.write(self);
            }
        }
    }

    pub fn char_array(&mut self, v: &[c_char]) {
        let bytes: Vec<u8> = v.iter().map(|&c| c as u8).collect();
        self.bytes(&bytes);
    }

    pub fn bytes(&mut self, v: &[u8]) {
        self.buf.extend_from_slice(v);
        let pad = (4 - v.len() % 4) % 4;
        self.buf.extend(std::iter::repeat_n(0, pad));
    }

    pub fn unsupported(&mut self, what: &'static str) {
        self.unsupported.get_or_insert(what);
    }

    /// The encoded reply, or what could not be encoded.
    pub fn finish(self) -> Result<Vec<u8>, DecodeError> {
        match self.unsupported {
            Some(what) => Err(DecodeError::Unsupported(what)),
            None => Ok(self.buf),
        }
    }
}

/// A pointer for the host: null for an empty slice (a count query), else the slice's start.
pub fn ptr_or_null<T>(s: &[T]) -> *const T {
    if s.is_empty() {
        std::ptr::null()
    } else {
        s.as_ptr()
    }
}

/// As `ptr_or_null`, for outputs the host fills.
pub fn mut_ptr_or_null<T>(s: &mut [T]) -> *mut T {
    if s.is_empty() {
        std::ptr::null_mut()
    } else {
        s.as_mut_ptr()
    }
}

/// A decoded input struct as a C pointer (null when the driver sent none).
pub fn opt_ptr<T>(s: Option<&T>) -> *const c_void {
    s.map_or(std::ptr::null(), |s| (s as *const T).cast())
}
