//! What the guest gets once a vhost-user backend is gone: every request is completed here with
//! the device type's I/O error, so drivers report errors instead of waiting forever.
//!
//! The dead backend cannot tell how far it got, so the ring position is taken from the used
//! ring: requests the backend took but never completed are failed. A backend that completed out
//! of order leaves requests this cannot tell apart; the guest driver then sees a repeated id
//! and stops the queue (Linux marks it broken), which still ends in errors, not a hang.

use std::sync::atomic::Ordering;

use tracing::warn;
use virtio_queue::desc::split::Descriptor;
use virtio_queue::{DescriptorChain, Queue, QueueT};
use vm_memory::{Address, Bytes, GuestMemoryMmap as GuestRam};

use super::{VIRTIO_ID_BLOCK, VIRTIO_ID_FS, VIRTIO_ID_GPU};

/// virtio-blk status byte for a failed request.
pub const VIRTIO_BLK_S_IOERR: u8 = 1;
/// fuse_out_header.error: -EIO.
pub const FUSE_EIO: i32 = -5;
/// FUSE_FORGET and FUSE_BATCH_FORGET have no reply.
const FUSE_FORGET: u32 = 2;
const FUSE_BATCH_FORGET: u32 = 42;
/// virtio_gpu_ctrl_hdr.type for an unspecified error.
pub const VIRTIO_GPU_RESP_ERR_UNSPEC: u32 = 0x1200;

/// Starts serving `queue` here where the backend left it: after the last completed request.
pub fn adopt(queue: &mut Queue, mem: &GuestRam) {
    match queue.used_idx(mem, Ordering::Acquire) {
        Ok(used) => {
            queue.set_next_avail(used.0);
            queue.set_next_used(used.0);
        }
        Err(err) => warn!(%err, "vhost-user: reading the used index of a lost queue"),
    }
}

/// Fails every available request on `queue`; returns whether the driver wants an interrupt.
pub fn fail_available(device_type: u16, queue: &mut Queue, mem: &GuestRam) -> bool {
    let mut completed = false;
    while let Some(chain) = queue.pop_descriptor_chain(mem) {
        let head = chain.head_index();
        let written = fail_request(device_type, chain, mem);
        if let Err(err) = queue.add_used(mem, head, written) {
            warn!(%err, "vhost-user: completing a failed request");
            break;
        }
        completed = true;
    }
    completed && queue.needs_notification(mem).unwrap_or(true)
}

/// Writes the error reply for one request; returns the bytes written.
fn fail_request(device_type: u16, chain: DescriptorChain<&GuestRam>, mem: &GuestRam) -> u32 {
    let descriptors: Vec<_> = chain.collect();
    let (writable, readable): (Vec<&Descriptor>, Vec<&Descriptor>) =
        descriptors.iter().partition(|d| d.is_write_only());
    let read = |len: usize| {
        let mut bytes = Vec::with_capacity(len);
        for d in &readable {
            let take = (len - bytes.len()).min(d.len() as usize);
            let mut buf = vec![0u8; take];
            if mem.read_slice(&mut buf, d.addr()).is_err() {
                break;
            }
            bytes.extend(buf);
            if bytes.len() == len {
                break;
            }
        }
        bytes
    };
    let write = |bytes: &[u8]| {
        let mut done = 0;
        for d in &writable {
            let take = (bytes.len() - done).min(d.len() as usize);
            if mem
                .write_slice(&bytes[done..done + take], d.addr())
                .is_err()
            {
                break;
            }
            done += take;
            if done == bytes.len() {
                break;
            }
        }
        done as u32
    };
    match device_type {
        VIRTIO_ID_BLOCK => {
            // The status byte is the last byte the device may write.
            let Some(last) = writable.last().filter(|d| d.len() > 0) else {
                return 0;
            };
            let at = last.addr().checked_add(u64::from(last.len()) - 1);
            match at.map(|at| mem.write_obj(VIRTIO_BLK_S_IOERR, at)) {
                Some(Ok(())) => 1,
                _ => 0,
            }
        }
        VIRTIO_ID_FS => {
            // fuse_in_header: len, opcode, unique; fuse_out_header: len, error, unique.
            let header = read(16);
            if header.len() < 16 {
                return 0;
            }
            let opcode = u32::from_le_bytes(header[4..8].try_into().unwrap_or_default());
            if matches!(opcode, FUSE_FORGET | FUSE_BATCH_FORGET) {
                return 0;
            }
            let mut reply = Vec::with_capacity(16);
            reply.extend_from_slice(&16u32.to_le_bytes());
            reply.extend_from_slice(&FUSE_EIO.to_le_bytes());
            reply.extend_from_slice(&header[8..16]);
            write(&reply)
        }
        VIRTIO_ID_GPU => {
            // virtio_gpu_ctrl_hdr: type, flags, fence_id, ctx_id, ring_idx + padding; the
            // reply keeps the request's fence so a fenced request completes too.
            let mut reply = read(24);
            if reply.len() < 24 {
                return 0;
            }
            reply[..4].copy_from_slice(&VIRTIO_GPU_RESP_ERR_UNSPEC.to_le_bytes());
            write(&reply)
        }
        _ => 0,
    }
}
