//! The transport driven the way a guest drives it: config space through the PCI root, registers
//! through the MMIO bus, rings in real guest memory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use vmm_sys_util::eventfd::EventFd;

use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

use super::transport::*;
use super::*;
use crate::hypervisor::mock::MockHypervisor;
use crate::hypervisor::{Hypervisor, IoEventAddress};
use crate::pci::msix::tests::RecordingSink;

use super::test_guest::{Guest, AVAIL, DESC, RESP, USED};

/// Answers each request with its bytes reversed; offers one device feature bit.
#[derive(Default)]
struct Reverser {
    acked: u64,
    resets: u32,
    config: [u8; 8],
}

impl VirtioDevice for Reverser {
    fn device_type(&self) -> u16 {
        63
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![8, 8]
    }
    fn device_features(&self) -> u64 {
        1 << 3
    }
    fn ack_features(&mut self, features: u64) {
        self.acked = features;
    }
    fn read_config(&self, offset: u64, data: &mut [u8]) {
        let at = offset as usize;
        data.copy_from_slice(&self.config[at..at + data.len()]);
    }
    fn write_config(&mut self, offset: u64, data: &[u8]) {
        let at = offset as usize;
        self.config[at..at + data.len()].copy_from_slice(data);
    }
    fn process_queue(&mut self, index: usize, queues: &mut [Queue], mem: &GuestMemoryMmap) -> bool {
        let q = &mut queues[index];
        let mut served = false;
        while let Some(chain) = q.pop_descriptor_chain(mem) {
            let head = chain.head_index();
            let descs: Vec<_> = chain.collect();
            let mut bytes = Vec::new();
            for d in descs.iter().filter(|d| !d.is_write_only()) {
                let mut buf = vec![0u8; d.len() as usize];
                mem.read_slice(&mut buf, d.addr()).unwrap();
                bytes.extend(buf);
            }
            bytes.reverse();
            let out = descs.iter().find(|d| d.is_write_only()).unwrap();
            mem.write_slice(&bytes, out.addr()).unwrap();
            q.add_used(mem, head, bytes.len() as u32).unwrap();
            served = true;
        }
        served && q.needs_notification(mem).unwrap()
    }
    fn reset(&mut self) {
        self.resets += 1;
    }
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

impl Guest {
    fn new(vm: Option<Arc<dyn crate::hypervisor::Vm>>, sink: RecordingSink) -> Guest {
        let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
        Guest::attach(Box::<Reverser>::default(), mem, vm, sink)
    }
}

#[test]
fn capabilities_describe_the_bar0_layout() {
    let g = Guest::new(None, RecordingSink::default());
    assert_eq!(g.cfg_read(0, 4), 0x107f_1af4, "0x1040 + device type 63");
    let mut found = Vec::new();
    let mut cap = g.cfg_read(0x34, 1) as usize;
    while cap != 0 {
        let id = g.cfg_read(cap, 1);
        if id == 0x09 {
            let kind = g.cfg_read(cap + 3, 1);
            found.push((
                kind,
                g.cfg_read(cap + 4, 1),
                g.cfg_read(cap + 8, 4),
                g.cfg_read(cap + 12, 4),
            ));
            if kind == 2 {
                assert_eq!(g.cfg_read(cap + 16, 4), NOTIFY_MULTIPLIER);
            }
        } else {
            assert_eq!(id, 0x11, "MSI-X");
            assert_eq!(
                g.cfg_read(cap + 2, 2),
                2,
                "3 vectors: two queues and config"
            );
            assert_eq!(g.cfg_read(cap + 4, 4), MSIX_TABLE_OFFSET as u32);
        }
        cap = g.cfg_read(cap + 1, 1) as usize;
    }
    assert_eq!(
        found,
        vec![
            (1, 0, 0, 0x40),
            (3, 0, 0x1000, 4),
            (4, 0, 0x2000, 0x1000),
            (2, 0, 0x3000, 8)
        ]
    );
}

#[test]
fn negotiates_features_and_serves_a_queue_with_isr_and_msix() {
    let sink = RecordingSink::default();
    let g = Guest::new(None, sink.clone());
    g.w(0x00, 1, 4);
    assert_eq!(g.r(0x04, 4), 1, "VIRTIO_F_VERSION_1 in the high word");
    g.w(0x00, 0, 4);
    assert_eq!(
        g.r(0x04, 4),
        1 << 3 | 1 << 28 | 1 << 29,
        "device bit and ring features"
    );
    assert_eq!(g.r(0x12, 2), 2, "num_queues");
    assert_eq!(g.r(0x18, 2), 8, "queue_size starts at the maximum");
    let st = g.init(VIRTIO_F_VERSION_1 | 1 << 3);
    assert_ne!(st & status::FEATURES_OK, 0);
    assert_eq!(g.r(0x20, 8), DESC);
    assert_eq!(g.r(0x1c, 2), 1);
    g.post(0, b"abc");
    g.w(NOTIFY_OFFSET, 0, 2);
    assert_eq!(g.used_idx(), 0, "nothing served before DRIVER_OK");
    g.driver_ok();
    assert_eq!(g.used_idx(), 1, "DRIVER_OK serves what was queued");
    assert_eq!(
        g.mem.read_obj::<[u8; 3]>(GuestAddress(RESP)).unwrap(),
        *b"cba"
    );
    assert_eq!(g.r(ISR_OFFSET, 1), 1, "ISR: used buffer");
    assert_eq!(g.r(ISR_OFFSET, 1), 0, "reading the ISR clears it");
    let dev = &g.dev;
    let acked = dev
        .lock()
        .unwrap()
        .device_any()
        .downcast_mut::<Reverser>()
        .unwrap()
        .acked;
    assert_eq!(acked, VIRTIO_F_VERSION_1 | 1 << 3);

    // MSI-X: enable, give queue 0 vector 1 and unmask it.
    g.enable_msix();
    g.w(0x1a, 1, 2);
    assert_eq!(g.r(0x1a, 2), 1);
    g.w(0x1a, 9, 2);
    assert_eq!(g.r(0x1a, 2), u64::from(NO_VECTOR), "no such vector");
    g.w(0x1a, 1, 2);
    g.route_vector(1, 0x31);
    g.post(1, b"xy");
    g.w(NOTIFY_OFFSET, 0, 2);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(*sink.fired.lock().unwrap(), vec![1]);
    assert_eq!(sink.routes.lock().unwrap().last().unwrap().1.data, 0x31);
}

#[test]
fn refuses_features_it_did_not_offer_or_without_version_1() {
    let g = Guest::new(None, RecordingSink::default());
    assert_eq!(g.init(VIRTIO_F_VERSION_1 | 1 << 5) & status::FEATURES_OK, 0);
    assert_eq!(g.init(1 << 3) & status::FEATURES_OK, 0);
    assert_ne!(g.init(VIRTIO_F_VERSION_1) & status::FEATURES_OK, 0);
}

#[test]
fn reset_and_bad_rings_are_handled() {
    let g = Guest::new(None, RecordingSink::default());
    g.init(VIRTIO_F_VERSION_1);
    g.w(0x20, 0x1234_5000, 4); // ignored: queue enabled
    assert_eq!(g.r(0x20, 8), DESC);
    g.w(0x14, 0, 1);
    assert_eq!(g.r(0x14, 1), 0);
    assert_eq!(g.r(0x1c, 2), 0, "reset disables queues");
    // A ring outside guest memory: the device asks for a reset instead of touching it.
    g.init(VIRTIO_F_VERSION_1);
    g.w(0x1c, 0, 2); // not allowed: enable only takes 1
    g.w(0x14, 0, 1);
    g.w(0x14, u64::from(status::ACKNOWLEDGE | status::DRIVER), 1);
    g.w(0x0c, 0, 4);
    g.w(0x08, 1, 4);
    g.w(0x0c, 1, 4);
    g.w(
        0x14,
        u64::from(status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK),
        1,
    );
    g.w(0x20, 0x4000_0000, 8);
    g.w(0x28, AVAIL, 8);
    g.w(0x30, USED, 8);
    g.w(0x1c, 1, 2);
    g.driver_ok();
    assert_ne!(g.r(0x14, 1) as u8 & status::DEVICE_NEEDS_RESET, 0);
    assert_eq!(g.r(ISR_OFFSET, 1), 2, "config change");
    // Malformed accesses are ignored.
    g.w(0x15, 0xff, 1);
    g.w(0x13, 0xff, 1);
    assert_eq!(g.r(0x01, 2), 0);
    let resets = g
        .dev
        .lock()
        .unwrap()
        .device_any()
        .downcast_mut::<Reverser>()
        .unwrap()
        .resets;
    assert_eq!(resets, 4);
}

#[test]
fn ioeventfds_follow_bar0_and_the_worker_serves_them() {
    let hv = MockHypervisor::new();
    let vm: Arc<dyn crate::hypervisor::Vm> = Arc::from(hv.create_vm().unwrap());
    let g = Guest::new(Some(vm), RecordingSink::default());
    let first = IoEventAddress::Mmio(g.bar0 + NOTIFY_OFFSET);
    assert!(hv.state.lock().unwrap().ioeventfd(first).is_some());
    assert!(hv
        .state
        .lock()
        .unwrap()
        .ioeventfd(IoEventAddress::Mmio(g.bar0 + NOTIFY_OFFSET + 4))
        .is_some());
    // Move BAR 0 up by 1 MiB.
    let moved = g.bar0 + 0x10_0000;
    g.cfg_write(4, &[0, 0]);
    g.cfg_write(0x10, &(moved as u32).to_le_bytes());
    g.cfg_write(4, &[0x06, 0]);
    let state = hv.state.lock().unwrap();
    assert!(state.ioeventfd(first).is_none());
    let fd = state
        .ioeventfd(IoEventAddress::Mmio(moved + NOTIFY_OFFSET))
        .unwrap()
        .try_clone()
        .unwrap();
    drop(state);
    let g = Guest { bar0: moved, ..g };
    let worker = Worker::spawn(g.dev.clone(), "virtio-test").unwrap();
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();
    g.post(0, b"hello");
    fd.write(1).unwrap(); // what KVM does on the guest's notify write
    let deadline = Instant::now() + Duration::from_secs(5);
    while g.used_idx() != 1 {
        assert!(Instant::now() < deadline, "worker did not serve the queue");
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        g.mem.read_obj::<[u8; 5]>(GuestAddress(RESP)).unwrap(),
        *b"olleh"
    );
    drop(worker);
}

#[test]
fn event_idx_suppresses_interrupts_the_driver_did_not_ask_for() {
    let g = Guest::new(None, RecordingSink::default());
    let st = g.init(VIRTIO_F_VERSION_1 | VIRTIO_RING_F_EVENT_IDX);
    assert_ne!(st & status::FEATURES_OK, 0);
    g.driver_ok();
    // used_event (after the 8 avail entries): interrupt only when used idx passes 5.
    g.mem
        .write_obj(5u16, GuestAddress(AVAIL + 4 + 2 * 8))
        .unwrap();
    g.post(0, b"one");
    g.w(NOTIFY_OFFSET, 0, 2);
    assert_eq!(g.used_idx(), 1);
    assert_eq!(g.r(ISR_OFFSET, 1), 0, "suppressed by used_event");
    g.mem
        .write_obj(1u16, GuestAddress(AVAIL + 4 + 2 * 8))
        .unwrap();
    g.post(1, b"two");
    g.w(NOTIFY_OFFSET, 0, 2);
    assert_eq!(g.used_idx(), 2);
    assert_eq!(g.r(ISR_OFFSET, 1), 1, "used idx passed used_event");
    // avail_event (after the 8 used entries) tells the driver to kick for the next buffer.
    let avail_event: u16 = g.mem.read_obj(GuestAddress(USED + 4 + 8 * 8)).unwrap();
    assert_eq!(avail_event, 2);
}

/// A device polled only when its eventfd fires: counts the polls.
struct Woken {
    wake: EventFd,
    polls: Arc<std::sync::atomic::AtomicUsize>,
}

impl VirtioDevice for Woken {
    fn device_type(&self) -> u16 {
        63
    }
    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![8]
    }
    fn device_features(&self) -> u64 {
        0
    }
    fn ack_features(&mut self, _features: u64) {}
    fn read_config(&self, _offset: u64, data: &mut [u8]) {
        data.fill(0);
    }
    fn write_config(&mut self, _offset: u64, _data: &[u8]) {}
    fn process_queue(&mut self, _: usize, _: &mut [Queue], _: &GuestMemoryMmap) -> bool {
        false
    }
    fn poll(&mut self, _queues: &mut [Queue], _mem: &GuestMemoryMmap) -> Vec<usize> {
        let _ = self.wake.read();
        self.polls.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Vec::new()
    }
    fn poll_interval(&self) -> Option<Duration> {
        None
    }
    fn poll_fds(&self) -> Vec<(std::os::fd::RawFd, vmm_sys_util::epoll::EventSet)> {
        use std::os::fd::AsRawFd;
        vec![(self.wake.as_raw_fd(), vmm_sys_util::epoll::EventSet::IN)]
    }
    fn reset(&mut self) {}
    fn as_any_mut(&mut self) -> &mut dyn std::any::Any {
        self
    }
}

#[test]
fn a_device_without_a_poll_interval_is_polled_only_when_its_descriptor_fires() {
    let wake = EventFd::new(vmm_sys_util::eventfd::EFD_NONBLOCK).unwrap();
    let polls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let device = Woken {
        wake: wake.try_clone().unwrap(),
        polls: polls.clone(),
    };
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10_0000)]).unwrap();
    let g = Guest::attach(Box::new(device), mem, None, RecordingSink::default());
    g.init(VIRTIO_F_VERSION_1);
    g.driver_ok();
    let worker = Worker::spawn(g.dev.clone(), "virtio-woken").unwrap();
    let polls_then = polls.load(std::sync::atomic::Ordering::SeqCst);
    let count = || polls.load(std::sync::atomic::Ordering::SeqCst) - polls_then;
    // A 5 ms interval would have polled some 40 times by now.
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(count(), 0, "an idle device is left alone");
    wake.write(1).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while count() == 0 {
        assert!(
            Instant::now() < deadline,
            "the descriptor never woke the worker"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(
        count(),
        1,
        "one poll per wake-up (the device drained its eventfd)"
    );
    drop(worker);
}
