//! A virtio device as a PCI function: capabilities, BAR 0 register blocks, MSI-X, and the
//! ioeventfds behind the notification area.

use std::any::Any;
use std::os::fd::RawFd;
use std::sync::Arc;

use tracing::{debug, info, warn};
use virtio_queue::{Queue, QueueT};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

use super::common::{CommonConfig, CommonEvent, Queues, COMMON_CFG_SIZE};
use super::{
    status, VirtioDevice, VirtioPciError, NO_VECTOR, VIRTIO_F_VERSION_1, VIRTIO_RING_F_EVENT_IDX,
};
use crate::hypervisor::{IoEventAddress, Vm};
use crate::pci::config::COMMAND_BUS_MASTER;
use crate::pci::{BarSpec, MsiSink, Msix, PciConfig, PciDevice, PciIds};
use vm_memory::GuestMemoryMmap as GuestRam;

/// BAR 0 layout: one page per structure.
pub const COMMON_OFFSET: u64 = 0x0000;
pub const ISR_OFFSET: u64 = 0x1000;
pub const DEVICE_CFG_OFFSET: u64 = 0x2000;
pub const DEVICE_CFG_SIZE: u64 = 0x1000;
pub const NOTIFY_OFFSET: u64 = 0x3000;
pub const NOTIFY_MULTIPLIER: u32 = 4;
pub const MSIX_TABLE_OFFSET: u64 = 0x4000;
pub const MSIX_PBA_OFFSET: u64 = 0x6000;
pub const BAR0_SIZE: u64 = 0x8000;
/// BAR 2 is the host-visible shared-memory region (shmid 1) when the device has one.
pub const SHM_BAR: usize = 2;
pub const SHM_ID_HOST_VISIBLE: u8 = 1;
const MAX_QUEUES: usize = 64;

/// virtio_pci_cap cfg_type values.
const CAP_COMMON: u8 = 1;
const CAP_NOTIFY: u8 = 2;
const CAP_ISR: u8 = 3;
const CAP_DEVICE: u8 = 4;
const CAP_SHARED_MEMORY: u8 = 8;

/// A virtio device on PCI.
pub struct VirtioPciDevice {
    config: PciConfig,
    msix: Msix,
    msix_cap: usize,
    common: CommonConfig,
    queues: Vec<Queue>,
    vectors: Vec<u16>,
    isr: u8,
    device: Box<dyn VirtioDevice>,
    device_features: u64,
    mem: GuestRam,
    /// One eventfd per queue; registered as ioeventfds where BAR 0 is mapped.
    notify: Vec<EventFd>,
    /// One eventfd per queue for a backend serving the queues elsewhere to signal used buffers.
    calls: Vec<EventFd>,
    /// Per queue, the vector whose irqfd that backend signals instead (interrupting the guest
    /// without us), or `None` while it signals `calls`. Meaningful while `handed_over`.
    direct: Vec<Option<u16>>,
    /// The rings are with a backend elsewhere (activate succeeded, no reset since).
    handed_over: bool,
    failure_reported: bool,
    vm: Option<Arc<dyn Vm>>,
    ioeventfds_at: Option<u64>,
    /// Signalled when what the worker waits on changes under it (the driver started or reset
    /// the device from a vCPU): a worker with no poll interval would otherwise sleep on.
    rearm: EventFd,
    /// What the worker was last told: served elsewhere, poll interval, poll descriptors.
    waits_published: Option<WorkerWaits>,
}

/// What the worker should wait on: the backend's call fds (queues served elsewhere) or the
/// kicks, how often to poll, and the device's poll descriptors.
pub type WorkerWaits = (bool, Option<std::time::Duration>, Vec<(RawFd, EventSet)>);

/// Builds a vendor capability (virtio_pci_cap, or virtio_pci_cap64 when `offset`/`len` need it).
fn virtio_cap(cfg_type: u8, bar: u8, id: u8, offset: u64, len: u64, extra: &[u8]) -> Vec<u8> {
    let wide = cfg_type == CAP_SHARED_MEMORY;
    let cap_len = 16 + extra.len() + if wide { 8 } else { 0 };
    let mut cap = vec![0x09, 0, cap_len as u8, cfg_type, bar, id, 0, 0];
    cap.extend_from_slice(&(offset as u32).to_le_bytes());
    cap.extend_from_slice(&(len as u32).to_le_bytes());
    cap.extend_from_slice(extra);
    if wide {
        cap.extend_from_slice(&((offset >> 32) as u32).to_le_bytes());
        cap.extend_from_slice(&((len >> 32) as u32).to_le_bytes());
    }
    cap
}

impl VirtioPciDevice {
    /// Wraps `device`. `msi` delivers its MSI-X vectors (one per queue plus one for config
    /// changes); `vm`, when given, gets an ioeventfd per queue so notifications skip the vCPU
    /// exit (a [`super::Worker`] must then serve them).
    pub fn new(
        device: Box<dyn VirtioDevice>,
        mem: GuestRam,
        msi: Box<dyn MsiSink>,
        vm: Option<Arc<dyn Vm>>,
    ) -> Result<Self, VirtioPciError> {
        let sizes = device.queue_max_sizes();
        if sizes.is_empty() || sizes.len() > MAX_QUEUES {
            return Err(VirtioPciError::QueueCount(sizes.len()));
        }
        let queues = sizes
            .iter()
            .map(|&s| Queue::new(s).map_err(|_| VirtioPciError::Queue(s)))
            .collect::<Result<Vec<_>, _>>()?;
        let vector_count = sizes.len() as u16 + 1;
        let msix = Msix::new(vector_count, msi)?;
        let device_type = device.device_type();
        let mut config = PciConfig::new(PciIds {
            vendor: super::VIRTIO_PCI_VENDOR,
            device: super::VIRTIO_PCI_DEVICE_BASE + device_type,
            // Modern-only devices have revision 1 and a subsystem ID of 0x40 or more.
            revision: 1,
            class: if device_type == 16 { 0x03 } else { 0xff },
            subclass: if device_type == 16 { 0x80 } else { 0x00 },
            prog_if: 0,
            subsystem_vendor: super::VIRTIO_PCI_VENDOR,
            subsystem: 0x40 + device_type,
            header_type: 0,
        });
        config.add_bar(BarSpec {
            index: 0,
            size: BAR0_SIZE,
            is_64bit: true,
            prefetchable: false,
        })?;
        let notify_len = sizes.len() as u64 * u64::from(NOTIFY_MULTIPLIER);
        let caps = [
            virtio_cap(CAP_COMMON, 0, 0, COMMON_OFFSET, COMMON_CFG_SIZE, &[]),
            virtio_cap(CAP_ISR, 0, 0, ISR_OFFSET, 4, &[]),
            virtio_cap(CAP_DEVICE, 0, 0, DEVICE_CFG_OFFSET, DEVICE_CFG_SIZE, &[]),
            virtio_cap(
                CAP_NOTIFY,
                0,
                0,
                NOTIFY_OFFSET,
                notify_len,
                &NOTIFY_MULTIPLIER.to_le_bytes(),
            ),
        ];
        for cap in caps {
            config.add_capability(&cap, &[])?;
        }
        if let Some(size) = device.shm_size() {
            let size = size.next_power_of_two();
            config.add_bar(BarSpec {
                index: SHM_BAR,
                size,
                is_64bit: true,
                prefetchable: true,
            })?;
            let cap = virtio_cap(
                CAP_SHARED_MEMORY,
                SHM_BAR as u8,
                SHM_ID_HOST_VISIBLE,
                0,
                size,
                &[],
            );
            config.add_capability(&cap, &[])?;
        }
        let (body, mask) =
            msix.capability((0, MSIX_TABLE_OFFSET as u32), (0, MSIX_PBA_OFFSET as u32));
        let msix_cap = config.add_capability(&body, &mask)?;
        let eventfds = || {
            (0..sizes.len())
                .map(|_| EventFd::new(EFD_NONBLOCK))
                .collect::<Result<Vec<_>, _>>()
        };
        let (notify, calls) = (eventfds()?, eventfds()?);
        let device_features =
            device.device_features() | VIRTIO_F_VERSION_1 | device.ring_features();
        Ok(VirtioPciDevice {
            config,
            msix,
            msix_cap,
            common: CommonConfig::default(),
            vectors: vec![NO_VECTOR; queues.len()],
            queues,
            isr: 0,
            device,
            device_features,
            mem,
            notify,
            calls,
            direct: vec![None; sizes.len()],
            handed_over: false,
            failure_reported: false,
            vm,
            ioeventfds_at: None,
            rearm: EventFd::new(EFD_NONBLOCK)?,
            waits_published: None,
        })
    }

    /// Clones of the per-queue notification eventfds, for a worker to wait on.
    pub fn notify_fds(&self) -> std::io::Result<Vec<EventFd>> {
        self.notify.iter().map(EventFd::try_clone).collect()
    }

    /// Clones of the per-queue used-buffer eventfds a backend serving the queues elsewhere writes.
    pub fn call_fds(&self) -> std::io::Result<Vec<EventFd>> {
        self.calls.iter().map(EventFd::try_clone).collect()
    }

    /// Whether another process serves the queues now (the worker then waits on the call fds).
    pub fn queues_served_elsewhere(&self) -> bool {
        self.device.queues_served_elsewhere()
    }

    /// What the worker should wait on now; it is told again (through [`Self::rearm_fd`]) when
    /// that changes outside the worker.
    pub fn worker_waits(&mut self) -> WorkerWaits {
        let waits = self.current_waits();
        self.waits_published = Some(waits.clone());
        waits
    }

    /// Readable when the worker should ask [`Self::worker_waits`] again.
    pub fn rearm_fd(&self) -> std::io::Result<EventFd> {
        self.rearm.try_clone()
    }

    fn current_waits(&self) -> WorkerWaits {
        (
            self.device.queues_served_elsewhere(),
            self.device.poll_interval(),
            self.device.poll_fds(),
        )
    }

    /// After a vCPU's access: wakes the worker if what it waits on changed.
    fn rearm_worker(&mut self) {
        if self
            .waits_published
            .as_ref()
            .is_some_and(|published| *published != self.current_waits())
        {
            if let Err(err) = self.rearm.write(1) {
                warn!(%err, "virtio-pci: waking the worker failed");
            }
            self.waits_published = None;
        }
    }

    /// The backend serving the queues elsewhere signalled used buffers on queue `index`.
    pub fn used_elsewhere(&mut self, index: usize) {
        if index < self.queues.len() && self.common.status & status::DRIVER_OK != 0 {
            self.signal_used(index);
        }
    }

    /// The device behind the transport, for host-side requests (screenshots, mode changes).
    pub fn device_any(&mut self) -> &mut dyn Any {
        self.device.as_any_mut()
    }

    pub fn status(&self) -> u8 {
        self.common.status
    }

    /// Serves queue `index` after the guest notified it.
    pub fn process_queue(&mut self, index: usize) {
        // A device that failed on its own (a lost backend) goes on completing requests with
        // errors; bad rings stop the queues until the driver resets.
        let stopped =
            self.common.status & status::DEVICE_NEEDS_RESET != 0 && !self.failure_reported;
        if self.common.status & status::DRIVER_OK == 0
            || stopped
            || !self.queues.get(index).is_some_and(|q| q.ready())
        {
            return;
        }
        if self.device.queues_served_elsewhere() {
            // A trapped notification (no ioeventfd): pass the kick on to whoever serves it.
            if let Err(err) = self.notify[index].write(1) {
                warn!(%err, queue = index, "virtio-pci: forwarding a kick failed");
            }
            return;
        }
        if !self.queues[index].is_valid(&self.mem) {
            warn!(
                queue = index,
                "virtio-pci: queue set up outside guest memory; device needs reset"
            );
            self.common.status |= status::DEVICE_NEEDS_RESET;
            self.signal_config();
            return;
        }
        let mut notify = false;
        // With EVENT_IDX, re-arming publishes avail_event (without it the driver stops kicking);
        // buffers that arrived meanwhile are served before going back to sleep.
        for _ in 0..64 {
            notify |= self
                .device
                .process_queue(index, &mut self.queues, &self.mem);
            match self.queues[index].enable_notification(&self.mem) {
                Ok(true) => continue,
                Ok(false) => break,
                Err(err) => {
                    warn!(%err, queue = index, "virtio-pci: re-arming notifications failed");
                    break;
                }
            }
        }
        if notify {
            self.signal_used(index);
        }
        self.poll_device();
    }

    /// Completes asynchronous work (fences) and forwards config changes.
    pub fn poll_device(&mut self) {
        if self.common.status & status::DRIVER_OK == 0 {
            return;
        }
        for index in self.device.poll(&mut self.queues, &self.mem) {
            self.signal_used(index);
        }
        // After the poll, which may be what noticed the failure (a backend hanging up).
        if !self.failure_reported && self.device.failed() {
            self.needs_reset();
        }
        let mut config_changed = self.device.take_config_changed();
        if self.failure_reported && self.device.recovered() {
            info!("virtio-pci: the device works again");
            self.failure_reported = false;
            self.common.status &= !status::DEVICE_NEEDS_RESET;
            config_changed = true;
        }
        if config_changed {
            self.signal_config();
        }
    }

    fn signal_used(&mut self, index: usize) {
        self.isr |= 1;
        if self.msix.enabled() {
            let vector = self.vectors[index];
            if vector != NO_VECTOR {
                self.msix.trigger(vector);
            }
        }
    }

    fn signal_config(&mut self) {
        self.isr |= 2;
        self.common.config_generation = self.common.config_generation.wrapping_add(1);
        if self.msix.enabled() && self.common.msix_config != NO_VECTOR {
            self.msix.trigger(self.common.msix_config);
        }
    }

    fn needs_reset(&mut self) {
        warn!("virtio-pci: device failed; it needs a reset");
        self.failure_reported = true;
        self.common.status |= status::DEVICE_NEEDS_RESET;
        self.signal_config();
    }

    fn reset(&mut self) {
        debug!("virtio-pci: device reset");
        self.failure_reported = false;
        self.device.reset();
        for q in &mut self.queues {
            q.reset();
        }
        self.vectors.fill(NO_VECTOR);
        self.direct.fill(None);
        self.handed_over = false;
        self.common.reset();
        self.isr = 0;
    }

    fn status_changed(&mut self, old: u8) {
        let new = self.common.status;
        if new & status::FEATURES_OK != 0 && old & status::FEATURES_OK == 0 {
            let features = self.common.driver_features;
            if features & !self.device_features != 0 || features & VIRTIO_F_VERSION_1 == 0 {
                warn!(
                    features,
                    offered = self.device_features,
                    "virtio-pci: features refused"
                );
                self.common.status &= !status::FEATURES_OK;
                return;
            }
            let event_idx = features & VIRTIO_RING_F_EVENT_IDX != 0;
            for q in &mut self.queues {
                q.set_event_idx(event_idx);
            }
            self.device.ack_features(features);
        }
        if new & status::DRIVER_OK != 0 && old & status::DRIVER_OK == 0 {
            if self.config.command() & COMMAND_BUS_MASTER == 0 {
                debug!("virtio-pci: DRIVER_OK without bus mastering enabled");
            }
            // A device whose backend is gone still gets the rings' eventfds, for a backend
            // that comes back; until then its requests are served (failed) here.
            if self.device.queues_served_elsewhere() || self.device.failed() {
                self.hand_over();
                if self.device.queues_served_elsewhere() {
                    return;
                }
            }
            for index in 0..self.queues.len() {
                self.process_queue(index);
            }
        }
    }

    /// Gives the rings to the backend that serves them, each with the eventfd it is to signal:
    /// the queue's vector's irqfd where that can be delivered directly, our own otherwise.
    fn hand_over(&mut self) {
        let mut calls = Vec::with_capacity(self.queues.len());
        for index in 0..self.queues.len() {
            let (target, fd) = call_target(&self.msix, &self.vectors, &self.calls, index);
            match fd.try_clone() {
                Ok(fd) => calls.push(fd),
                Err(err) => {
                    warn!(%err, "virtio-pci: duplicating a call eventfd");
                    self.needs_reset();
                    return;
                }
            }
            self.direct[index] = target;
        }
        match self.device.activate(&self.queues, &self.notify, &calls) {
            Ok(()) => self.handed_over = true,
            Err(err) => {
                warn!(%err, "virtio-pci: handing the queues to their backend failed");
                self.needs_reset();
            }
        }
    }

    /// After an MSI-X or vector change: points each backend-served queue at the eventfd it
    /// should signal now (a masked vector's signals must come through us to stay pending).
    fn retarget_calls(&mut self) {
        // Also while the backend is gone: the device keeps the target for one that returns.
        if !self.handed_over {
            return;
        }
        for index in 0..self.queues.len() {
            let (target, fd) = call_target(&self.msix, &self.vectors, &self.calls, index);
            if target != self.direct[index] {
                debug!(
                    queue = index,
                    ?target,
                    "virtio-pci: backend call retargeted"
                );
                self.device.set_call(index, fd);
                self.direct[index] = target;
            }
        }
    }

    fn write_common(&mut self, offset: u64, data: &[u8]) {
        let vectors = self.msix.vectors();
        let mut queues = Queues {
            queues: &mut self.queues,
            vectors: &mut self.vectors,
        };
        match self.common.write(offset, data, &mut queues, vectors) {
            CommonEvent::None => self.retarget_calls(),
            CommonEvent::Reset => self.reset(),
            CommonEvent::Status { old } => self.status_changed(old),
        }
    }

    fn move_ioeventfds(&mut self, new: Option<u64>) {
        let Some(vm) = self.vm.clone() else {
            return;
        };
        if let Some(old) = self.ioeventfds_at.take() {
            for (q, fd) in self.notify.iter().enumerate() {
                let addr = old + NOTIFY_OFFSET + q as u64 * u64::from(NOTIFY_MULTIPLIER);
                if let Err(err) = vm.unregister_ioeventfd(fd, IoEventAddress::Mmio(addr)) {
                    warn!(%err, queue = q, "virtio-pci: unregistering ioeventfd");
                }
            }
        }
        let Some(base) = new else {
            return;
        };
        for (q, fd) in self.notify.iter().enumerate() {
            let addr = base + NOTIFY_OFFSET + q as u64 * u64::from(NOTIFY_MULTIPLIER);
            if let Err(err) = vm.register_ioeventfd(fd, IoEventAddress::Mmio(addr), None) {
                // Notifications still work, through the trapped BAR write.
                warn!(%err, queue = q, "virtio-pci: registering ioeventfd");
            }
        }
        self.ioeventfds_at = Some(base);
    }
}

/// The eventfd queue `index`'s backend should signal: its vector's irqfd while the vector can
/// be delivered directly (`Some(vector)`), else the transport's own call eventfd.
fn call_target<'a>(
    msix: &'a Msix,
    vectors: &[u16],
    calls: &'a [EventFd],
    index: usize,
) -> (Option<u16>, &'a EventFd) {
    let vector = vectors[index];
    match (vector != NO_VECTOR)
        .then(|| msix.direct_fd(vector))
        .flatten()
    {
        Some(fd) => (Some(vector), fd),
        None => (None, &calls[index]),
    }
}

impl PciDevice for VirtioPciDevice {
    fn config(&self) -> &PciConfig {
        &self.config
    }

    fn config_mut(&mut self) -> &mut PciConfig {
        &mut self.config
    }

    fn config_written(&mut self, offset: usize, len: usize) {
        let control = self.msix_cap + 2;
        if offset < control + 2 && offset + len > control {
            self.msix.set_control(self.config.read_u16(control));
            self.retarget_calls();
        }
    }

    fn bar_read(&mut self, bar: usize, offset: u64, data: &mut [u8]) {
        if bar != 0 {
            data.fill(0);
            return;
        }
        match offset {
            o if o < COMMON_CFG_SIZE => {
                let queues = Queues {
                    queues: &mut self.queues,
                    vectors: &mut self.vectors,
                };
                self.common.read(o, data, self.device_features, &queues);
            }
            o if (ISR_OFFSET..ISR_OFFSET + 4).contains(&o) => {
                // Reading the ISR acknowledges it.
                data.fill(0);
                if let (ISR_OFFSET, Some(first)) = (o, data.first_mut()) {
                    *first = std::mem::take(&mut self.isr);
                }
            }
            o if (DEVICE_CFG_OFFSET..DEVICE_CFG_OFFSET + DEVICE_CFG_SIZE).contains(&o) => {
                self.device.read_config(o - DEVICE_CFG_OFFSET, data);
            }
            o if (MSIX_TABLE_OFFSET..MSIX_TABLE_OFFSET + self.msix.table_size()).contains(&o) => {
                self.msix.read_table(o - MSIX_TABLE_OFFSET, data);
            }
            o if (MSIX_PBA_OFFSET..MSIX_PBA_OFFSET + self.msix.pba_size()).contains(&o) => {
                self.msix.read_pba(o - MSIX_PBA_OFFSET, data);
            }
            _ => data.fill(0),
        }
    }

    fn bar_write(&mut self, bar: usize, offset: u64, data: &[u8]) {
        if bar != 0 {
            warn!(bar, offset, "virtio-pci: write to a BAR without registers");
            return;
        }
        let notify_end = NOTIFY_OFFSET + self.queues.len() as u64 * u64::from(NOTIFY_MULTIPLIER);
        match offset {
            o if o < COMMON_CFG_SIZE => self.write_common(o, data),
            o if (DEVICE_CFG_OFFSET..DEVICE_CFG_OFFSET + DEVICE_CFG_SIZE).contains(&o) => {
                self.device.write_config(o - DEVICE_CFG_OFFSET, data);
            }
            o if (NOTIFY_OFFSET..notify_end).contains(&o) => {
                self.process_queue(((o - NOTIFY_OFFSET) / u64::from(NOTIFY_MULTIPLIER)) as usize);
            }
            o if (MSIX_TABLE_OFFSET..MSIX_TABLE_OFFSET + self.msix.table_size()).contains(&o) => {
                self.msix.write_table(o - MSIX_TABLE_OFFSET, data);
                self.retarget_calls();
            }
            _ => warn!(
                offset,
                len = data.len(),
                "virtio-pci: write to a read-only or unused offset"
            ),
        }
        self.rearm_worker();
    }

    fn bar_moved(&mut self, bar: usize, _old: Option<u64>, new: Option<u64>) {
        match bar {
            0 => self.move_ioeventfds(new),
            SHM_BAR => self.device.shm_moved(new),
            _ => {}
        }
    }
}
