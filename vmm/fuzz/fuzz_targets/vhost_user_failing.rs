//! A hostile guest against the requests the vhost-user frontend completes itself once a backend
//! is gone (vmm::vhost_user_frontend::failing): the fuzz input is guest RAM, so descriptor
//! tables, avail and used rings (indices included), request headers and buffer lengths are all
//! the guest's. The queue's position is adopted from the used ring, as after a disconnect, and
//! every available request is failed with the device type's error.
//!
//! Input: `[device type pick, queue size exponent, guest RAM...]`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};
use vmm::vhost_user_frontend::failing::{adopt, fail_available};
use vmm::vhost_user_frontend::{VIRTIO_ID_BLOCK, VIRTIO_ID_FS, VIRTIO_ID_GPU};

const RAM: usize = 1 << 16;

fuzz_target!(|data: &[u8]| {
    let [pick, size_exp, ram @ ..] = data else {
        return;
    };
    let mem = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), RAM)]).unwrap();
    mem.write_slice(&ram[..ram.len().min(RAM)], GuestAddress(0))
        .unwrap();
    let device_type = [VIRTIO_ID_BLOCK, VIRTIO_ID_FS, VIRTIO_ID_GPU, 0][usize::from(pick % 4)];
    let mut queue = Queue::new(256).unwrap();
    queue.set_size(1 << (size_exp % 9));
    queue.set_desc_table_address(Some(0), Some(0));
    queue.set_avail_ring_address(Some(0x1000), Some(0));
    queue.set_used_ring_address(Some(0x2000), Some(0));
    queue.set_event_idx(pick & 0x80 != 0);
    queue.set_ready(true);
    adopt(&mut queue, &mem);
    // Twice: the second pass starts from where the first left the rings.
    fail_available(device_type, &mut queue, &mem);
    fail_available(device_type, &mut queue, &mem);
});
