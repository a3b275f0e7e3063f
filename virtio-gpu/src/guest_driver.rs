//! A minimal in-process virtio-gpu *driver*: split virtqueues and buffers in a real
//! `GuestMemoryMmap`, written the way a guest kernel writes them. The CLI demo and the benchmark
//! use it to drive a [`GpuDevice`] exactly as a guest would, without a VM (tests use virtio-queue's
//! `MockSplitQueue` instead).

pub mod requests;

use std::time::{Duration, Instant};

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use crate::device::{GpuDevice, QueueKind};
use crate::error::DeviceError;

/// Why the driver failed.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    #[error("guest memory: {0}")]
    Memory(String),
    #[error("virtqueue setup: {0}")]
    Queue(#[from] virtio_queue::Error),
    #[error("device: {0}")]
    Device(#[from] DeviceError),
    #[error("no response for chain {0} within {1:?}")]
    Timeout(u16, Duration),
    #[error("out of guest memory for buffers")]
    OutOfMemory,
}

const QSIZE: u16 = 256;
/// Where the two queues live; buffers start above them.
const QUEUE_BASE: [u64; 2] = [0x0, 0x4000];
const HEAP_START: u64 = 0x1_0000;
const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

/// The driver's view of one split queue.
#[derive(Debug)]
struct Ring {
    desc: u64,
    avail: u64,
    used: u64,
    next_desc: u16,
    avail_idx: u16,
    used_seen: u16,
}

impl Ring {
    fn new(base: u64) -> Self {
        let desc = base;
        let avail = desc + 16 * u64::from(QSIZE);
        let used = (avail + 6 + 2 * u64::from(QSIZE) + 3) & !3;
        Ring {
            desc,
            avail,
            used,
            next_desc: 0,
            avail_idx: 0,
            used_seen: 0,
        }
    }
}

/// A guest with memory, a control queue and a cursor queue.
pub struct GuestDriver {
    pub mem: GuestMemoryMmap<()>,
    queues: [Queue; 2],
    rings: [Ring; 2],
    heap: u64,
    size: u64,
}

fn qi(kind: QueueKind) -> usize {
    match kind {
        QueueKind::Control => 0,
        QueueKind::Cursor => 1,
    }
}

fn mem_err(e: impl std::fmt::Display) -> DriverError {
    DriverError::Memory(e.to_string())
}

impl GuestDriver {
    /// A guest with `mem_size` bytes of memory at guest address 0.
    pub fn new(mem_size: usize) -> Result<Self, DriverError> {
        let mem =
            GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), mem_size)]).map_err(mem_err)?;
        let rings = QUEUE_BASE.map(Ring::new);
        let mut queues = [Queue::new(QSIZE)?, Queue::new(QSIZE)?];
        for (q, r) in queues.iter_mut().zip(&rings) {
            q.set_size(QSIZE);
            q.try_set_desc_table_address(GuestAddress(r.desc))?;
            q.try_set_avail_ring_address(GuestAddress(r.avail))?;
            q.try_set_used_ring_address(GuestAddress(r.used))?;
            q.set_ready(true);
        }
        Ok(GuestDriver {
            mem,
            queues,
            rings,
            heap: HEAP_START,
            size: mem_size as u64,
        })
    }

    /// Guest memory for `len` bytes, page aligned (never freed: the demo and bench are short).
    pub fn alloc(&mut self, len: usize) -> Result<GuestAddress, DriverError> {
        let len = (len as u64).max(1).div_ceil(4096) * 4096;
        if self.heap + len > self.size {
            return Err(DriverError::OutOfMemory);
        }
        let addr = GuestAddress(self.heap);
        self.heap += len;
        Ok(addr)
    }

    pub fn write(&self, addr: GuestAddress, bytes: &[u8]) -> Result<(), DriverError> {
        self.mem.write_slice(bytes, addr).map_err(mem_err)
    }

    pub fn read(&self, addr: GuestAddress, len: usize) -> Result<Vec<u8>, DriverError> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, addr).map_err(mem_err)?;
        Ok(v)
    }

    /// Publishes a chain of (addr, len, device-writable) descriptors; returns its head. The
    /// caller must not have more than the queue size in flight.
    pub fn post(
        &mut self,
        kind: QueueKind,
        descs: &[(GuestAddress, u32, bool)],
    ) -> Result<u16, DriverError> {
        let ring = &mut self.rings[qi(kind)];
        let n = descs.len() as u16;
        let start = if ring.next_desc + n > QSIZE {
            0
        } else {
            ring.next_desc
        };
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let i = i as u16;
            let mut flags = if write { F_WRITE } else { 0 };
            if i + 1 < n {
                flags |= F_NEXT;
            }
            let at = GuestAddress(ring.desc + 16 * u64::from(start + i));
            let mut d = [0u8; 16];
            d[0..8].copy_from_slice(&addr.0.to_le_bytes());
            d[8..12].copy_from_slice(&len.to_le_bytes());
            d[12..14].copy_from_slice(&flags.to_le_bytes());
            d[14..16].copy_from_slice(&(start + i + 1).to_le_bytes());
            self.mem.write_slice(&d, at).map_err(mem_err)?;
        }
        let slot = GuestAddress(ring.avail + 4 + 2 * u64::from(ring.avail_idx % QSIZE));
        self.mem.write_obj(start.to_le(), slot).map_err(mem_err)?;
        ring.avail_idx = ring.avail_idx.wrapping_add(1);
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        let idx = ring.avail_idx.to_le();
        self.mem
            .write_obj(idx, GuestAddress(ring.avail + 2))
            .map_err(mem_err)?;
        ring.next_desc = start + n;
        Ok(start)
    }

    /// Lets the device serve `kind` (and complete signalled fences).
    pub fn kick(&mut self, dev: &mut GpuDevice, kind: QueueKind) -> Result<(), DriverError> {
        dev.process_queue(kind, &mut self.queues[qi(kind)], &self.mem)?;
        if kind == QueueKind::Control {
            dev.process_fences(&mut self.queues[0], &self.mem)?;
        }
        Ok(())
    }

    /// Used entries (head, written length) since the last call.
    pub fn take_used(&mut self, kind: QueueKind) -> Result<Vec<(u32, u32)>, DriverError> {
        let ring = &mut self.rings[qi(kind)];
        let idx: u16 = self
            .mem
            .read_obj(GuestAddress(ring.used + 2))
            .map_err(mem_err)?;
        let mut out = Vec::new();
        while ring.used_seen != idx {
            let at = GuestAddress(ring.used + 4 + 8 * u64::from(ring.used_seen % QSIZE));
            let id: u32 = self.mem.read_obj(at).map_err(mem_err)?;
            let len: u32 = self.mem.read_obj(GuestAddress(at.0 + 4)).map_err(mem_err)?;
            out.push((id, len));
            ring.used_seen = ring.used_seen.wrapping_add(1);
        }
        Ok(out)
    }

    /// Sends one control request and waits (polling fences) for its response.
    pub fn send(&mut self, dev: &mut GpuDevice, request: &[u8]) -> Result<Vec<u8>, DriverError> {
        let req = self.alloc(request.len())?;
        self.write(req, request)?;
        let resp = self.alloc(4096)?;
        let head = self.post(
            QueueKind::Control,
            &[(req, request.len() as u32, false), (resp, 4096, true)],
        )?;
        let timeout = Duration::from_secs(5);
        let start = Instant::now();
        loop {
            self.kick(dev, QueueKind::Control)?;
            let used = self.take_used(QueueKind::Control)?;
            if let Some(&(_, len)) = used.iter().find(|u| u.0 == u32::from(head)) {
                return self.read(resp, len as usize);
            }
            if start.elapsed() > timeout {
                return Err(DriverError::Timeout(head, timeout));
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    }

    /// Sends one cursor-queue request (no response).
    pub fn send_cursor(&mut self, dev: &mut GpuDevice, request: &[u8]) -> Result<(), DriverError> {
        let req = self.alloc(request.len())?;
        self.write(req, request)?;
        self.post(QueueKind::Cursor, &[(req, request.len() as u32, false)])?;
        self.kick(dev, QueueKind::Cursor)?;
        self.take_used(QueueKind::Cursor)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::software::SoftwareBackend;
    use crate::protocol::*;
    use crate::GpuConfig;

    #[test]
    fn drives_the_device_through_real_rings() {
        let mut dev = GpuDevice::new(Box::new(SoftwareBackend::new()), GpuConfig::default());
        let mut g = GuestDriver::new(16 << 20).unwrap();
        // More requests than the queue has slots: the rings wrap.
        for _ in 0..300 {
            let resp = g.send(&mut dev, &requests::get_display_info()).unwrap();
            assert_eq!(
                requests::response_type(&resp),
                VIRTIO_GPU_RESP_OK_DISPLAY_INFO
            );
            assert_eq!(&resp[24..32], &[0; 8], "scanout 0 at (0, 0)");
            assert_eq!(&resp[32..36], &1024u32.to_le_bytes());
        }
        let create = requests::create_2d(1, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, 0, 4);
        let resp = g.send(&mut dev, &create).unwrap();
        assert_eq!(
            requests::response_type(&resp),
            VIRTIO_GPU_RESP_ERR_INVALID_PARAMETER
        );
        let mv = requests::cursor(VIRTIO_GPU_CMD_MOVE_CURSOR, 0, 1, 2, 0, (0, 0));
        g.send_cursor(&mut dev, &mv).unwrap();
    }
}
