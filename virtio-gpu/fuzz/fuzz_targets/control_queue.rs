//! Random descriptor chains and request bytes through the chain reader, the command decoder and
//! the dispatcher of a `GpuDevice` (software backend) over a small `GuestMemoryMmap`.
//!
//! Input: a sequence of records `[selector, n_desc, (addr: u16, len: u16, flags: u8) * n, len:
//! u16, bytes...]`. The bytes go to a data area; descriptors point anywhere in (or past) guest
//! memory. When `selector` is even the request's header type is replaced by a real command type,
//! so the fuzzer reaches every handler quickly. A few valid resources and a context exist first.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_gpu::backend::software::SoftwareBackend;
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, GpuDevice, QueueKind};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

const MEM: usize = 1 << 20;
const QSIZE: u16 = 64;
const DATA: u64 = 0x4_0000;

const COMMANDS: [u32; 26] = [
    VIRTIO_GPU_CMD_GET_DISPLAY_INFO,
    VIRTIO_GPU_CMD_RESOURCE_CREATE_2D,
    VIRTIO_GPU_CMD_RESOURCE_UNREF,
    VIRTIO_GPU_CMD_SET_SCANOUT,
    VIRTIO_GPU_CMD_RESOURCE_FLUSH,
    VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D,
    VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING,
    VIRTIO_GPU_CMD_RESOURCE_DETACH_BACKING,
    VIRTIO_GPU_CMD_GET_CAPSET_INFO,
    VIRTIO_GPU_CMD_GET_CAPSET,
    VIRTIO_GPU_CMD_GET_EDID,
    VIRTIO_GPU_CMD_RESOURCE_ASSIGN_UUID,
    VIRTIO_GPU_CMD_RESOURCE_CREATE_BLOB,
    VIRTIO_GPU_CMD_SET_SCANOUT_BLOB,
    VIRTIO_GPU_CMD_CTX_CREATE,
    VIRTIO_GPU_CMD_CTX_DESTROY,
    VIRTIO_GPU_CMD_CTX_ATTACH_RESOURCE,
    VIRTIO_GPU_CMD_CTX_DETACH_RESOURCE,
    VIRTIO_GPU_CMD_RESOURCE_CREATE_3D,
    VIRTIO_GPU_CMD_TRANSFER_TO_HOST_3D,
    VIRTIO_GPU_CMD_TRANSFER_FROM_HOST_3D,
    VIRTIO_GPU_CMD_SUBMIT_3D,
    VIRTIO_GPU_CMD_RESOURCE_MAP_BLOB,
    VIRTIO_GPU_CMD_RESOURCE_UNMAP_BLOB,
    VIRTIO_GPU_CMD_UPDATE_CURSOR,
    VIRTIO_GPU_CMD_MOVE_CURSOR,
];

struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(*b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes([self.u8()?, self.u8()?]))
    }
    fn bytes(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Posts a chain of (addr, len, flags) descriptors at `start` and publishes it.
fn post(mock: &MockSplitQueue<GuestMemoryMmap>, start: u16, descs: &[(u64, u32, u16)]) {
    for (i, &(addr, len, flags)) in descs.iter().enumerate() {
        let i = i as u16;
        let mut flags = flags & 2; // WRITE only; NEXT is ours, INDIRECT stays off
        if usize::from(i) + 1 < descs.len() {
            flags |= 1;
        }
        let d = SplitDescriptor::new(addr, len, flags, start + i + 1);
        let _ = mock.desc_table().store(start + i, RawDescriptor::from(d));
    }
    let idx = mock.avail().idx().load();
    if let Ok(r) = mock.avail().ring().ref_at(usize::from(idx % QSIZE)) {
        r.store(start);
    }
    mock.avail().idx().store(idx.wrapping_add(1));
}

fuzz_target!(|data: &[u8]| {
    let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM)]).unwrap();
    let mocks = [0u64, 0x2000].map(|base| MockSplitQueue::create(&mem, GuestAddress(base), QSIZE));
    let mut queues: Vec<Queue> = mocks.iter().map(|m| m.create_queue().unwrap()).collect();
    let config = GpuConfig {
        scanouts: vec![gpu_interface::DisplayMode::new(64, 64); 2],
        edid: true,
    };
    let backend = SoftwareBackend::with_memory_limit(32 << 20);
    let mut dev = GpuDevice::new(Box::new(backend), config);
    let features = dev.device_features();
    dev.ack_features(features);

    let mut input = Input(data);
    let mut next = [0u16; 2];
    for _round in 0..32 {
        let Some(selector) = input.u8() else { break };
        let n = usize::from(input.u8().unwrap_or(2) % 4) + 1;
        let mut descs = Vec::with_capacity(n);
        for _ in 0..n {
            let addr = u64::from(input.u16().unwrap_or(0)) * 16;
            let len = u32::from(input.u16().unwrap_or(64));
            let flags = u16::from(input.u8().unwrap_or(0));
            descs.push((addr, len, flags));
        }
        let len = usize::from(input.u16().unwrap_or(0) % 2048);
        let mut req = input.bytes(len).to_vec();
        if selector % 2 == 0 && req.len() >= 4 {
            let cmd = COMMANDS[usize::from(selector / 2) % COMMANDS.len()];
            req[..4].copy_from_slice(&cmd.to_le_bytes());
        }
        let _ = mem.write_slice(&req, GuestAddress(DATA));
        // The first descriptor reads the request; the others go where the fuzzer says.
        descs[0] = (DATA, req.len() as u32, 0);
        let q = usize::from(selector % 5 == 1);
        let kind = if q == 1 {
            QueueKind::Cursor
        } else {
            QueueKind::Control
        };
        let start = if next[q] + n as u16 > QSIZE {
            0
        } else {
            next[q]
        };
        post(&mocks[q], start, &descs);
        next[q] = start + n as u16;
        let _ = dev.process_queue(kind, &mut queues[q], &mem);
        let _ = dev.process_fences(&mut queues[0], &mem);
        let _ = dev.screenshot(u32::from(selector % 3));
        // Config space accesses at fuzzed offsets and lengths.
        let (offset, n) = (u64::from(selector % 24), usize::from(selector % 9));
        dev.write_config(offset, &req[..n.min(req.len())]);
        let mut config = [0u8; 8];
        dev.read_config(offset, &mut config[..n.min(8)]);
    }
    dev.reset();
});
