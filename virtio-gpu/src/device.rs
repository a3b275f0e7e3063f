//! [`GpuDevice`]: the transport-agnostic virtio-gpu device. Transports (virtio-pci, vhost-user)
//! hand it queues and guest memory; it serves every available chain and fills the used rings.

use std::collections::HashMap;

use gpu_interface::{
    CapsetInfo, DisplayListener, DisplayMode, FenceTimeline, Frame, GpuBackend, GpuError,
    GpuResult, QuotaCharge, SliceLimits,
};
use virtio_queue::{Queue, QueueT};
use vm_memory::GuestMemory;

use crate::chain::{self, ResponseBuffer};
use crate::config::{ConfigSpace, GpuConfig};
use crate::error::{CmdError, DeviceError};
use crate::fences::{FenceQueue, PendingResponse};
use crate::protocol::*;
use crate::resources::{Resources, Scanout};
use crate::shm::SharedMemoryMapper;

/// Which virtqueue a chain came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueKind {
    Control,
    Cursor,
}

/// What the device knows of a context.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    #[allow(dead_code)]
    pub capset_id: u32,
}

/// A virtio-gpu device driven by a [`GpuBackend`].
pub struct GpuDevice {
    pub(crate) backend: Box<dyn GpuBackend>,
    pub(crate) config: GpuConfig,
    pub(crate) config_space: ConfigSpace,
    pub(crate) acked_features: u64,
    pub(crate) capsets: Vec<CapsetInfo>,
    pub(crate) resources: Resources,
    pub(crate) contexts: HashMap<u32, Context>,
    pub(crate) scanouts: Vec<Scanout>,
    pub(crate) fences: FenceQueue,
    pub(crate) listener: Option<Box<dyn DisplayListener>>,
    pub(crate) shm: Option<Box<dyn SharedMemoryMapper>>,
    /// The slice the device serves (none: no quota).
    pub(crate) limits: SliceLimits,
}

impl std::fmt::Debug for GpuDevice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GpuDevice")
            .field("backend", &self.backend.name())
            .field("scanouts", &self.scanouts.len())
            .field("capsets", &self.capsets)
            .finish_non_exhaustive()
    }
}

impl GpuDevice {
    /// A device with `config.scanouts` displays (1..=16) served by `backend`.
    pub fn new(backend: Box<dyn GpuBackend>, config: GpuConfig) -> GpuDevice {
        let capsets = backend.capsets();
        let scanouts: Vec<Scanout> = config
            .initial_modes()
            .into_iter()
            .map(|mode| Scanout {
                mode,
                ..Scanout::default()
            })
            .collect();
        let config_space = ConfigSpace {
            events_read: 0,
            num_scanouts: scanouts.len() as u32,
            num_capsets: capsets.len() as u32,
        };
        GpuDevice {
            backend,
            config,
            config_space,
            acked_features: 0,
            capsets,
            resources: Resources::default(),
            contexts: HashMap::new(),
            scanouts,
            fences: FenceQueue::default(),
            listener: None,
            shm: None,
            limits: SliceLimits::none(),
        }
    }

    /// Serves a slice: resources the guest creates from now on charge its quota (their host
    /// copies; a venus context's device memory is charged by the context), and the backend's
    /// contexts serve under it.
    pub fn set_slice_limits(&mut self, limits: SliceLimits) {
        self.backend.set_slice_limits(limits.clone());
        self.limits = limits;
    }

    /// Charges `bytes` of a new resource to the slice's quota.
    pub(crate) fn charge(&self, bytes: u64) -> Result<Option<QuotaCharge>, CmdError> {
        self.limits.charge(bytes).map_err(|e| {
            tracing::warn!("virtio-gpu: {e}");
            CmdError::OutOfMemory("over the slice's memory quota")
        })
    }

    /// The backend's name ("software", "vulkan", "rutabaga").
    pub fn backend_name(&self) -> &'static str {
        self.backend.name()
    }

    /// Device-specific feature bits (VIRTIO_GPU_F_*); transports add VIRTIO_F_VERSION_1 etc.
    /// VIRGL (the guest kernel's 3D mode: CONTEXT_INIT and EXECBUFFER) is offered only when the
    /// backend has a capset a guest's 3D driver speaks: virgl's, or venus's.
    pub fn device_features(&self) -> u64 {
        let mut f = (1u64 << VIRTIO_GPU_F_RESOURCE_UUID)
            | (1 << VIRTIO_GPU_F_RESOURCE_BLOB)
            | (1 << VIRTIO_GPU_F_CONTEXT_INIT);
        if self.config.edid {
            f |= 1 << VIRTIO_GPU_F_EDID;
        }
        let three_d = [
            VIRTIO_GPU_CAPSET_VIRGL,
            VIRTIO_GPU_CAPSET_VIRGL2,
            VIRTIO_GPU_CAPSET_VENUS,
        ];
        if self.capsets.iter().any(|c| three_d.contains(&c.id)) {
            f |= 1 << VIRTIO_GPU_F_VIRGL;
        }
        f
    }

    /// Records the features the driver accepted (bits the device did not offer are dropped).
    pub fn ack_features(&mut self, features: u64) {
        self.acked_features = features & self.device_features();
    }

    pub(crate) fn has_feature(&self, bit: u32) -> bool {
        self.acked_features & (1 << bit) != 0
    }

    /// Reads `virtio_gpu_config` (events_read, events_clear, num_scanouts, num_capsets).
    pub fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.config_space.read(offset, data);
    }

    /// Writes `virtio_gpu_config`; only events_clear is writable (write-1-to-clear).
    pub fn write_config(&mut self, offset: u64, data: &[u8]) {
        if !self.config_space.write(offset, data) {
            tracing::warn!(offset, len = data.len(), "virtio-gpu: ignored config write");
        }
    }

    /// A display listener learns of scanout and cursor changes.
    pub fn set_display_listener(&mut self, listener: Box<dyn DisplayListener>) {
        self.listener = Some(listener);
    }

    /// Maps host blobs into the transport's host-visible region; without one, RESOURCE_MAP_BLOB
    /// fails with ERR_UNSPEC.
    pub fn set_shm_mapper(&mut self, mapper: Box<dyn SharedMemoryMapper>) {
        self.shm = Some(mapper);
    }

    /// Drops the mapper (its transport went away); RESOURCE_MAP_BLOB fails until the next one.
    pub fn remove_shm_mapper(&mut self) {
        self.shm = None;
    }

    /// Changes a scanout's mode as a host display would (`None` unplugs it) and raises
    /// VIRTIO_GPU_EVENT_DISPLAY. Returns true when the transport should send a config-change
    /// interrupt; false for an unknown scanout or an unchanged mode.
    pub fn set_display_mode(&mut self, scanout: u32, mode: Option<DisplayMode>) -> bool {
        let Some(s) = self.scanouts.get_mut(scanout as usize) else {
            tracing::warn!(
                scanout,
                "virtio-gpu: set_display_mode on an unknown scanout"
            );
            return false;
        };
        if s.mode == mode {
            return false;
        }
        s.mode = mode;
        self.config_space.raise_display_event();
        true
    }

    /// The composed scanout (primary plane and cursor), for screenshots.
    pub fn screenshot(&mut self, scanout: u32) -> GpuResult<Frame> {
        if scanout as usize >= self.scanouts.len() {
            return Err(GpuError::InvalidScanoutId(scanout));
        }
        self.backend.read_scanout(scanout)
    }

    /// Whether fenced responses are still waiting; a transport polls [`Self::process_fences`]
    /// (e.g. every millisecond) while this is true.
    pub fn fences_pending(&self) -> bool {
        !self.fences.is_empty()
    }

    /// Device reset: drops every resource, context, mapping and pending fence; the backend stays
    /// usable for the next driver.
    pub fn reset(&mut self) {
        for i in 0..self.scanouts.len() as u32 {
            let _ = self.backend.set_scanout(i, None, Default::default());
            let _ = self.backend.set_cursor(i, None);
            let shown = self
                .scanouts
                .get(i as usize)
                .is_some_and(|s| s.resource.is_some());
            if let (true, Some(l)) = (shown, self.listener.as_mut()) {
                l.scanout_changed(i, None);
            }
            if let Some(s) = self.scanouts.get_mut(i as usize) {
                s.resource = None;
                s.cursor = None;
            }
        }
        for id in self.resources.ids() {
            if let Err(e) = crate::commands::resource::unref(self, id) {
                tracing::warn!(id, "virtio-gpu reset: {e}");
            }
        }
        for ctx_id in self.contexts.keys().copied().collect::<Vec<_>>() {
            let _ = self.backend.destroy_context(ctx_id);
        }
        self.contexts.clear();
        self.fences.clear();
        // Fences the backend still owes belong to the old driver: drain and forget them.
        let _ = self.backend.poll_fences();
        let modes: Vec<_> = self.scanouts.iter().map(|s| s.mode).collect();
        self.scanouts = modes
            .into_iter()
            .map(|mode| Scanout {
                mode,
                ..Scanout::default()
            })
            .collect();
        self.config_space.events_read = 0;
        self.acked_features = 0;
    }

    /// Pops every available chain of `queue`, serves it and pushes used entries. Returns true if
    /// the driver should be notified.
    pub fn process_queue<M: GuestMemory>(
        &mut self,
        kind: QueueKind,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, DeviceError> {
        let mut used = false;
        while let Some(chain) = queue.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let request = match chain::read_request(chain, mem) {
                Ok(r) => r,
                Err(e) => {
                    tracing::warn!(head, "virtio-gpu: refusing descriptor chain: {e}");
                    queue.add_used(mem, head, 0)?;
                    used = true;
                    continue;
                }
            };
            if let Some(len) =
                self.serve(kind, request.head, &request.bytes, &request.response, mem)
            {
                queue.add_used(mem, head, len)?;
                used = true;
            }
        }
        if kind == QueueKind::Control {
            used |= self.complete_fences(queue, mem)?;
        }
        Ok(used && queue.needs_notification(mem)?)
    }

    /// Completes fenced control commands whose fences have signalled. Returns true if the driver
    /// should be notified.
    pub fn process_fences<M: GuestMemory>(
        &mut self,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, DeviceError> {
        let used = self.complete_fences(queue, mem)?;
        Ok(used && queue.needs_notification(mem)?)
    }

    fn complete_fences<M: GuestMemory>(
        &mut self,
        queue: &mut Queue,
        mem: &M,
    ) -> Result<bool, DeviceError> {
        for (timeline, fence_id) in self.backend.poll_fences() {
            self.fences.signal(timeline, fence_id);
        }
        let ready = self.fences.take_ready();
        let used = !ready.is_empty();
        for p in ready {
            let len = write_or_warn(mem, &p.buffer, &p.response);
            queue.add_used(mem, p.head, len)?;
        }
        Ok(used)
    }

    /// Serves one request; returns the used length, or `None` when the response waits for a
    /// fence.
    fn serve<M: GuestMemory>(
        &mut self,
        kind: QueueKind,
        head: u16,
        bytes: &[u8],
        buffer: &ResponseBuffer,
        mem: &M,
    ) -> Option<u32> {
        if kind == QueueKind::Cursor {
            crate::commands::cursor::serve(self, bytes);
            return Some(0);
        }
        if buffer.len < std::mem::size_of::<CtrlHeader>() as u64 {
            tracing::warn!(
                head,
                "virtio-gpu: control request without room for a response"
            );
            return Some(0);
        }
        let (hdr, response) = crate::commands::execute(self, bytes, mem);
        let fenced = hdr.is_some_and(|h| h.flags.get() & VIRTIO_GPU_FLAG_FENCE != 0);
        let (Some(hdr), true, false) = (hdr, fenced, self.fences.is_full()) else {
            return Some(write_or_warn(mem, buffer, &response));
        };
        let timeline = if hdr.flags.get() & VIRTIO_GPU_FLAG_INFO_RING_IDX != 0 {
            FenceTimeline::Ring {
                ctx_id: hdr.ctx_id.get(),
                ring_idx: hdr.ring_idx,
            }
        } else {
            FenceTimeline::Global
        };
        let fence_id = hdr.fence_id.get();
        // A fence the backend refuses (say, of a destroyed context) completes in order anyway.
        let signalled = match self.backend.create_fence(timeline, fence_id) {
            Ok(()) => false,
            Err(e) => {
                tracing::warn!(fence_id, ?timeline, "virtio-gpu: fence refused: {e}");
                true
            }
        };
        let pending = PendingResponse {
            head,
            buffer: buffer.clone(),
            response,
        };
        self.fences.push(timeline, fence_id, signalled, pending);
        None
    }
}

/// Writes a response; a response that does not fit is replaced by a bare ERR_UNSPEC header.
fn write_or_warn<M: GuestMemory>(mem: &M, buffer: &ResponseBuffer, response: &[u8]) -> u32 {
    match chain::write_response(mem, buffer, response) {
        Ok(len) => len,
        Err(e) => {
            tracing::warn!("virtio-gpu: response not delivered: {e}");
            let hdr = CtrlHeader {
                type_: VIRTIO_GPU_RESP_ERR_UNSPEC.into(),
                ..zerocopy::FromZeros::new_zeroed()
            };
            chain::write_response(mem, buffer, zerocopy::IntoBytes::as_bytes(&hdr)).unwrap_or(0)
        }
    }
}

// Transports move the device to their worker threads.
const _: () = {
    const fn assert_send<T: Send>() {}
    assert_send::<GpuDevice>();
};
