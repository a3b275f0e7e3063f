//! Reading requests out of descriptor chains and writing responses back.
//!
//! A virtio-gpu request is the device-readable part of a chain (header, command, trailing data);
//! the response goes into the device-writable part. The spec requires readable descriptors to
//! come first; a chain that breaks that rule, holds more than [`MAX_REQUEST_BYTES`] or points
//! outside guest memory is refused whole.

use std::ops::Deref;

use virtio_queue::DescriptorChain;
use vm_memory::{Bytes, GuestAddress, GuestMemory, Permissions};

/// The largest request the device reads (a SUBMIT_3D stream, or an attach-backing list of the
/// maximum number of entries, fits easily).
pub const MAX_REQUEST_BYTES: usize = 4 << 20;

/// The most descriptors one chain may have (the queue size bounds it too).
pub const MAX_DESCRIPTORS: usize = 1024;

/// Why a chain could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ChainError {
    #[error("device-readable descriptor after a device-writable one")]
    ReadableAfterWritable,
    #[error("request larger than {MAX_REQUEST_BYTES} bytes")]
    RequestTooLarge,
    #[error("more than {MAX_DESCRIPTORS} descriptors")]
    TooManyDescriptors,
    #[error("descriptor outside guest memory: {0}")]
    GuestMemory(#[from] vm_memory::GuestMemoryError),
    #[error("response of {needed} bytes does not fit the {available}-byte writable buffer")]
    ResponseTooLarge { needed: usize, available: u64 },
}

/// The device-writable buffers of a chain, where the response goes.
#[derive(Debug, Clone, Default)]
pub struct ResponseBuffer {
    pub descriptors: Vec<(GuestAddress, u32)>,
    pub len: u64,
}

/// A request read from a chain.
#[derive(Debug)]
pub struct Request {
    pub head: u16,
    pub bytes: Vec<u8>,
    pub response: ResponseBuffer,
}

/// Reads the device-readable bytes of `chain` and notes its writable buffers.
pub fn read_request<M, T>(chain: DescriptorChain<T>, mem: &M) -> Result<Request, ChainError>
where
    M: GuestMemory + ?Sized,
    T: Deref,
    T::Target: GuestMemory,
{
    let head = chain.head_index();
    let mut bytes = Vec::new();
    let mut response = ResponseBuffer::default();
    for (count, desc) in chain.enumerate() {
        if count >= MAX_DESCRIPTORS {
            return Err(ChainError::TooManyDescriptors);
        }
        if desc.is_write_only() {
            if !mem.check_range(desc.addr(), desc.len() as usize, Permissions::Write) {
                return Err(ChainError::GuestMemory(
                    vm_memory::GuestMemoryError::InvalidGuestAddress(desc.addr()),
                ));
            }
            response.descriptors.push((desc.addr(), desc.len()));
            response.len += u64::from(desc.len());
            continue;
        }
        if !response.descriptors.is_empty() {
            return Err(ChainError::ReadableAfterWritable);
        }
        let start = bytes.len();
        let end = start
            .checked_add(desc.len() as usize)
            .filter(|&end| end <= MAX_REQUEST_BYTES)
            .ok_or(ChainError::RequestTooLarge)?;
        bytes.resize(end, 0);
        mem.read_slice(&mut bytes[start..end], desc.addr())?;
    }
    Ok(Request {
        head,
        bytes,
        response,
    })
}

/// Writes `data` into the writable buffers; returns the number of bytes written.
pub fn write_response<M: GuestMemory + ?Sized>(
    mem: &M,
    buffer: &ResponseBuffer,
    data: &[u8],
) -> Result<u32, ChainError> {
    if (data.len() as u64) > buffer.len {
        return Err(ChainError::ResponseTooLarge {
            needed: data.len(),
            available: buffer.len,
        });
    }
    let mut rest = data;
    for &(addr, len) in &buffer.descriptors {
        if rest.is_empty() {
            break;
        }
        let n = rest.len().min(len as usize);
        let (now, later) = rest.split_at(n);
        mem.write_slice(now, addr)?;
        rest = later;
    }
    Ok(data.len() as u32)
}
