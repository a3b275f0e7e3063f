//! The software backend's command-stream parser and executor (the SUBMIT_3D payload) on random
//! bytes, with a context holding a few resources of each kind.
#![no_main]

use gpu_interface::{
    BlobDesc, BlobMem, ComputeBackend, FenceTimeline, PixelFormat, Resource2dDesc, Resource3dDesc,
};
use gpu_interface::DisplayBackend;
use libfuzzer_sys::fuzz_target;
use virtio_gpu::backend::software::SoftwareBackend;

fuzz_target!(|data: &[u8]| {
    let mut b = SoftwareBackend::with_memory_limit(16 << 20);
    b.create_context(1, 0, "fuzz").unwrap();
    let desc = Resource2dDesc { width: 32, height: 32, format: PixelFormat::XRGB8888 };
    b.create_resource_2d(1, desc).unwrap();
    b.attach_resource(1, 1).unwrap();
    let d3 = Resource3dDesc {
        target: 2,
        format: 1,
        bind: 0,
        width: 16,
        height: 16,
        depth: 1,
        array_size: 1,
        last_level: 0,
        nr_samples: 0,
        flags: 0,
    };
    b.create_resource_3d(1, 2, d3).unwrap();
    b.create_resource_3d(1, 3, Resource3dDesc { target: 0, width: 256, height: 1, ..d3 }).unwrap();
    let blob = BlobDesc {
        mem: BlobMem::Host3d,
        size: 4096,
        blob_id: 0,
        mappable: true,
        shareable: false,
        cross_device: false,
    };
    b.create_blob(1, 4, blob).unwrap();
    // The first byte picks the ring; the rest is the stream. DELAY_US never blocks here.
    let (ring, stream) = data.split_first().map_or((0, data), |(r, s)| (*r % 64, s));
    let _ = b.submit(1, ring, stream);
    let _ = b.create_fence(FenceTimeline::Ring { ctx_id: 1, ring_idx: ring }, 1);
    let _ = b.poll_fences();
});
