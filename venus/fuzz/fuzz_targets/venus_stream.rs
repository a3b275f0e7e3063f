//! Hostile command streams into a live venus context (host Vulkan loaded, a 64 KiB shared-memory
//! resource 1 to aim reply streams, nested streams and rings at). Every input must end in Ok or
//! a protocol error: no panic, no abort, no access outside the context's resources.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use venus::{resource::SharedMemory, Context, DeviceSelector, StreamCx};

fuzz_target!(|data: &[u8]| {
    let Ok(ctx) = Context::new(DeviceSelector::All) else { return };
    ctx.add_resource(1, Arc::new(SharedMemory::new(64 << 10).unwrap()));
    let mut cx = StreamCx::default();
    let _ = ctx.execute(&mut cx, data);
    ctx.shutdown();
});
