//! A guest driver for the tests: descriptor chains in a real `GuestMemoryMmap`, laid out with
//! virtio-queue's `MockSplitQueue`, and request builders for every command.
#![allow(dead_code)]

use gpu_interface::DisplayMode;
use virtio_gpu::backend::software::stream::{self, Command};
use virtio_gpu::backend::software::SoftwareBackend;
use virtio_gpu::protocol::*;
use virtio_gpu::{GpuConfig, GpuDevice, QueueKind};
use virtio_queue::desc::split::Descriptor as SplitDescriptor;
use virtio_queue::desc::RawDescriptor;
use virtio_queue::mock::MockSplitQueue;
use virtio_queue::Queue;
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use zerocopy::{FromBytes, IntoBytes};

// The driver-side request builders the crate has; not every test binary uses each.
#[allow(unused_imports)]
pub use virtio_gpu::guest_driver::requests::{ctx_create, header as hdr, map_blob};

pub const QSIZE: u16 = 256;
pub const MEM_SIZE: usize = 32 << 20;
const QUEUE_BASE: [u64; 2] = [0x0, 0x8000];
pub const HEAP_START: u64 = 0x10_0000;
pub const RESP_LEN: u32 = 4096;

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;

pub struct Guest {
    /// Leaked so the mock queues (which borrow it) can live beside it; a test process is short.
    pub mem: &'static GuestMemoryMmap<()>,
    pub dev: GpuDevice,
    mocks: [MockSplitQueue<'static, GuestMemoryMmap<()>>; 2],
    queues: [Queue; 2],
    next_desc: [u16; 2],
    used_seen: [u16; 2],
    heap: u64,
}

fn qi(kind: QueueKind) -> usize {
    match kind {
        QueueKind::Control => 0,
        QueueKind::Cursor => 1,
    }
}

/// A posted request: its chain head and where the device writes the response.
#[derive(Debug, Clone, Copy)]
pub struct Posted {
    pub head: u16,
    pub resp: GuestAddress,
}

impl Guest {
    pub fn new() -> Self {
        Self::with_config(GpuConfig {
            scanouts: vec![DisplayMode::new(640, 480), DisplayMode::new(800, 600)],
            edid: true,
        })
    }

    pub fn with_config(config: GpuConfig) -> Self {
        Self::with_backend(Box::new(SoftwareBackend::new()), config)
    }

    #[allow(dead_code)] // not every test binary drives another backend
    pub fn with_backend(backend: Box<dyn gpu_interface::GpuBackend>, config: GpuConfig) -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        let mem: &'static GuestMemoryMmap<()> = Box::leak(Box::new(mem));
        let dev = GpuDevice::new(backend, config);
        let mocks = QUEUE_BASE.map(|base| MockSplitQueue::create(mem, GuestAddress(base), QSIZE));
        let queues = [0, 1].map(|i| mocks[i].create_queue::<Queue>().unwrap());
        let mut g = Guest {
            mem,
            dev,
            mocks,
            queues,
            next_desc: [0; 2],
            used_seen: [0; 2],
            heap: HEAP_START,
        };
        let features = g.dev.device_features();
        g.dev.ack_features(features);
        g
    }

    fn mock(&self, q: usize) -> &MockSplitQueue<'static, GuestMemoryMmap<()>> {
        &self.mocks[q]
    }

    /// Guest memory for a buffer of `len` bytes (bump allocator, 64-byte aligned).
    pub fn alloc(&mut self, len: usize) -> GuestAddress {
        let len = (len as u64 + 63) & !63;
        if self.heap + len > MEM_SIZE as u64 {
            self.heap = HEAP_START;
        }
        let addr = GuestAddress(self.heap);
        self.heap += len.max(64);
        addr
    }

    pub fn put(&mut self, bytes: &[u8]) -> GuestAddress {
        let addr = self.alloc(bytes.len());
        self.mem.write_slice(bytes, addr).unwrap();
        addr
    }

    /// Posts one chain of (addr, len, device-writable) descriptors; returns its head.
    pub fn post_descs(&mut self, kind: QueueKind, descs: &[(GuestAddress, u32, bool)]) -> u16 {
        let q = qi(kind);
        let n = descs.len() as u16;
        let start = if self.next_desc[q] + n > QSIZE {
            0
        } else {
            self.next_desc[q]
        };
        let mock = self.mock(q);
        for (i, &(addr, len, write)) in descs.iter().enumerate() {
            let i = i as u16;
            let mut flags = if write { F_WRITE } else { 0 };
            if i + 1 < n {
                flags |= F_NEXT;
            }
            let desc = SplitDescriptor::new(addr.0, len, flags, start + i + 1);
            mock.desc_table()
                .store(start + i, RawDescriptor::from(desc))
                .unwrap();
        }
        let idx = mock.avail().idx().load();
        mock.avail()
            .ring()
            .ref_at((idx % QSIZE) as usize)
            .unwrap()
            .store(start);
        mock.avail().idx().store(idx.wrapping_add(1));
        self.next_desc[q] = start + n;
        start
    }

    /// Posts `request` (readable) and a `resp_len`-byte writable buffer.
    pub fn post(&mut self, kind: QueueKind, request: &[u8], resp_len: u32) -> Posted {
        let req = self.put(request);
        let resp = self.alloc(resp_len as usize);
        self.mem
            .write_slice(&vec![0xee; resp_len as usize], resp)
            .unwrap();
        let mut descs = vec![(req, request.len() as u32, false)];
        if resp_len > 0 {
            descs.push((resp, resp_len, true));
        }
        let head = self.post_descs(kind, &descs);
        Posted { head, resp }
    }

    pub fn process(&mut self, kind: QueueKind) -> bool {
        let q = qi(kind);
        self.dev
            .process_queue(kind, &mut self.queues[q], self.mem)
            .unwrap()
    }

    pub fn process_fences(&mut self) -> bool {
        self.dev
            .process_fences(&mut self.queues[0], self.mem)
            .unwrap()
    }

    /// Used entries (head, len) added since the last call.
    pub fn used(&mut self, kind: QueueKind) -> Vec<(u32, u32)> {
        let q = qi(kind);
        let mock = self.mock(q);
        let idx = mock.used().idx().load();
        let mut out = Vec::new();
        let mut seen = self.used_seen[q];
        while seen != idx {
            let e = mock
                .used()
                .ring()
                .ref_at((seen % QSIZE) as usize)
                .unwrap()
                .load();
            out.push((e.id(), e.len()));
            seen = seen.wrapping_add(1);
        }
        self.used_seen[q] = seen;
        out
    }

    pub fn read(&self, addr: GuestAddress, len: usize) -> Vec<u8> {
        let mut v = vec![0u8; len];
        self.mem.read_slice(&mut v, addr).unwrap();
        v
    }

    /// Sends a control command and returns its response (which must arrive now).
    pub fn cmd(&mut self, request: &[u8]) -> Vec<u8> {
        let p = self.post(QueueKind::Control, request, RESP_LEN);
        self.process(QueueKind::Control);
        let used = self.used(QueueKind::Control);
        let (_, len) = *used
            .iter()
            .find(|(id, _)| *id == u32::from(p.head))
            .unwrap_or_else(|| panic!("no used entry for head {} in {used:?}", p.head));
        self.read(p.resp, len as usize)
    }

    /// Sends a control command and returns the response type.
    pub fn cmd_type(&mut self, request: &[u8]) -> u32 {
        resp_type(&self.cmd(request))
    }

    pub fn cursor(&mut self, request: &[u8]) {
        let p = self.post(QueueKind::Cursor, request, 0);
        self.process(QueueKind::Cursor);
        assert!(self
            .used(QueueKind::Cursor)
            .contains(&(u32::from(p.head), 0)));
    }
}

pub fn resp_type(resp: &[u8]) -> u32 {
    CtrlHeader::read_from_prefix(resp)
        .map(|(h, _)| h.type_.get())
        .unwrap_or(0)
}

pub fn ctx_hdr(type_: u32, ctx_id: u32) -> CtrlHeader {
    CtrlHeader {
        ctx_id: ctx_id.into(),
        ..hdr(type_)
    }
}

pub fn fenced(mut h: CtrlHeader, fence_id: u64, ring: Option<u8>) -> CtrlHeader {
    h.flags = VIRTIO_GPU_FLAG_FENCE.into();
    h.fence_id = fence_id.into();
    if let Some(r) = ring {
        h.flags = (VIRTIO_GPU_FLAG_FENCE | VIRTIO_GPU_FLAG_INFO_RING_IDX).into();
        h.ring_idx = r;
    }
    h
}

pub fn rect(x: u32, y: u32, w: u32, h: u32) -> Rect {
    Rect {
        x: x.into(),
        y: y.into(),
        width: w.into(),
        height: h.into(),
    }
}

pub fn create_2d(id: u32, format: u32, w: u32, h: u32) -> Vec<u8> {
    ResourceCreate2d {
        hdr: hdr(VIRTIO_GPU_CMD_RESOURCE_CREATE_2D),
        resource_id: id.into(),
        format: format.into(),
        width: w.into(),
        height: h.into(),
    }
    .as_bytes()
    .to_vec()
}

pub fn attach_backing(id: u32, entries: &[(u64, u32)]) -> Vec<u8> {
    let mut v = ResourceAttachBacking {
        hdr: hdr(VIRTIO_GPU_CMD_RESOURCE_ATTACH_BACKING),
        resource_id: id.into(),
        nr_entries: (entries.len() as u32).into(),
    }
    .as_bytes()
    .to_vec();
    for &(addr, len) in entries {
        v.extend_from_slice(
            MemEntry {
                addr: addr.into(),
                length: len.into(),
                padding: 0.into(),
            }
            .as_bytes(),
        );
    }
    v
}

pub fn transfer_2d(id: u32, r: Rect, offset: u64) -> Vec<u8> {
    TransferToHost2d {
        hdr: hdr(VIRTIO_GPU_CMD_TRANSFER_TO_HOST_2D),
        r,
        offset: offset.into(),
        resource_id: id.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

pub fn set_scanout(scanout: u32, id: u32, r: Rect) -> Vec<u8> {
    SetScanout {
        hdr: hdr(VIRTIO_GPU_CMD_SET_SCANOUT),
        r,
        scanout_id: scanout.into(),
        resource_id: id.into(),
    }
    .as_bytes()
    .to_vec()
}

pub fn flush(id: u32, r: Rect) -> Vec<u8> {
    ResourceFlush {
        hdr: hdr(VIRTIO_GPU_CMD_RESOURCE_FLUSH),
        r,
        resource_id: id.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

pub fn simple(type_: u32, id: u32) -> Vec<u8> {
    // RESOURCE_UNREF, DETACH_BACKING, ASSIGN_UUID, UNMAP_BLOB share this layout.
    ResourceUnref {
        hdr: hdr(type_),
        resource_id: id.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

pub fn update_cursor(
    type_: u32,
    scanout: u32,
    x: u32,
    y: u32,
    id: u32,
    hot: (u32, u32),
) -> Vec<u8> {
    UpdateCursor {
        hdr: hdr(type_),
        pos: CursorPos {
            scanout_id: scanout.into(),
            x: x.into(),
            y: y.into(),
            padding: 0.into(),
        },
        resource_id: id.into(),
        hot_x: hot.0.into(),
        hot_y: hot.1.into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec()
}

/// Writes a `w` x `h` XRGB image in guest memory, pixel (x, y) = `f(x, y)` as (r, g, b).
pub fn guest_image(g: &mut Guest, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) -> GuestAddress {
    let mut data = vec![0u8; (w * h * 4) as usize];
    for y in 0..h {
        for x in 0..w {
            let [r, gg, b] = f(x, y);
            let o = ((y * w + x) * 4) as usize;
            data[o..o + 4].copy_from_slice(&[b, gg, r, 0xff]);
        }
    }
    g.put(&data)
}

/// Creates resource `id` (w x h XRGB8888) backed by a guest image and uploads it.
pub fn uploaded_resource(g: &mut Guest, id: u32, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    let addr = guest_image(g, w, h, f);
    assert_eq!(
        g.cmd_type(&create_2d(id, VIRTIO_GPU_FORMAT_B8G8R8X8_UNORM, w, h)),
        VIRTIO_GPU_RESP_OK_NODATA
    );
    assert_eq!(
        g.cmd_type(&attach_backing(id, &[(addr.0, w * h * 4)])),
        VIRTIO_GPU_RESP_OK_NODATA
    );
    assert_eq!(
        g.cmd_type(&transfer_2d(id, rect(0, 0, w, h), 0)),
        VIRTIO_GPU_RESP_OK_NODATA
    );
}

pub fn submit(h: CtrlHeader, cmds: &[Command]) -> Vec<u8> {
    let mut stream_bytes = Vec::new();
    for c in cmds {
        stream::encode(c, &mut stream_bytes);
    }
    submit_bytes(h, &stream_bytes)
}

/// SUBMIT_3D carrying `stream` as it is.
pub fn submit_bytes(h: CtrlHeader, stream: &[u8]) -> Vec<u8> {
    let mut v = CmdSubmit {
        hdr: h,
        size: (stream.len() as u32).into(),
        padding: 0.into(),
    }
    .as_bytes()
    .to_vec();
    v.extend_from_slice(stream);
    v
}

pub fn setup_ctx(g: &mut Guest, ctx: u32) {
    assert_eq!(
        g.cmd_type(&ctx_create(ctx, 0, "test")),
        VIRTIO_GPU_RESP_OK_NODATA
    );
}

/// A host-visible region that records mappings and reads blobs through their fds.
#[allow(dead_code)] // used by the blob and venus tests
pub struct RecordingMapper {
    pub size: u64,
    pub maps: std::sync::Arc<std::sync::Mutex<Vec<(u64, gpu_interface::BlobMapping)>>>,
}

impl virtio_gpu::SharedMemoryMapper for RecordingMapper {
    fn region_size(&self) -> u64 {
        self.size
    }
    fn map(
        &mut self,
        offset: u64,
        mapping: gpu_interface::BlobMapping,
    ) -> Result<(), virtio_gpu::ShmError> {
        self.maps.lock().unwrap().push((offset, mapping));
        Ok(())
    }
    fn unmap(&mut self, offset: u64, _size: u64) -> Result<(), virtio_gpu::ShmError> {
        let mut maps = self.maps.lock().unwrap();
        let before = maps.len();
        maps.retain(|(o, _)| *o != offset);
        if maps.len() == before {
            Err(virtio_gpu::ShmError::Unmap("not mapped".into()))
        } else {
            Ok(())
        }
    }
}
