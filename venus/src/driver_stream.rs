//! For tests (this crate's, and those of devices that carry venus streams): venus command
//! streams as Mesa's driver encodes them, and the prologue that gives a context an instance, a
//! device and a queue bound to ring index 1.

use crate::protocol::generated::stype;

/// A venus command stream, written as the driver's encoder writes it.
#[derive(Default)]
pub struct Stream(pub Vec<u8>);

impl Stream {
    pub fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    pub fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A command header: its type, and whether it wants a reply.
    pub fn command(&mut self, command_type: u32, reply: bool) -> &mut Self {
        self.u32(command_type).u32(u32::from(reply))
    }
    /// A present pointer (the marker before the pointee).
    pub fn some(&mut self) -> &mut Self {
        self.u64(1)
    }
    /// A null pointer, or an empty array.
    pub fn none(&mut self) -> &mut Self {
        self.u64(0)
    }
}

pub const INSTANCE: u64 = 0x100;
pub const PHYSICAL_DEVICE: u64 = 0x200;
pub const DEVICE: u64 = 0x300;
pub const QUEUE: u64 = 0x400;

/// vkCreateInstance, vkEnumeratePhysicalDevices, vkCreateDevice and vkGetDeviceQueue2 (bound
/// to ring index 1), with the ids INSTANCE, PHYSICAL_DEVICE, DEVICE and QUEUE.
pub fn device_with_queue_on_ring_1() -> Stream {
    let mut s = Stream::default();
    // vkCreateInstance(pCreateInfo, pAllocator, pInstance)
    s.command(0, false).some();
    s.u32(1).none().u32(0); // VkInstanceCreateInfo: sType, pNext, flags
    s.some().u32(0).none(); // pApplicationInfo: sType, pNext
    s.none().u32(1).none().u32(1).u32((1 << 22) | (3 << 12)); // names null, versions, 1.3
    s.u32(0).none().u32(0).none(); // no layers, no extensions
    s.none().some().u64(INSTANCE); // pAllocator, pInstance
                                   // vkEnumeratePhysicalDevices(instance, pPhysicalDeviceCount, pPhysicalDevices)
    s.command(2, false)
        .u64(INSTANCE)
        .some()
        .u32(1)
        .u64(1)
        .u64(PHYSICAL_DEVICE);
    // vkCreateDevice(physicalDevice, pCreateInfo, pAllocator, pDevice)
    s.command(11, false).u64(PHYSICAL_DEVICE).some();
    s.u32(3).none().u32(0).u32(1); // VkDeviceCreateInfo: sType, pNext, flags, 1 queue info
    s.u64(1).u32(2).none().u32(0); // VkDeviceQueueCreateInfo: sType, pNext, flags
    s.u32(0).u32(1).u64(1).f32(1.0); // family 0, 1 queue, priorities
    s.u32(0).none().u32(0).none().none(); // no layers, extensions or features
    s.none().some().u64(DEVICE);
    // vkGetDeviceQueue2(device, pQueueInfo, pQueue) with VkDeviceQueueTimelineInfoMESA
    s.command(155, false).u64(DEVICE).some();
    s.u32(stype::VkDeviceQueueInfo2 as u32).some();
    s.u32(stype::VkDeviceQueueTimelineInfoMESA as u32)
        .none()
        .u32(1);
    s.u32(0).u32(0).u32(0); // flags, family, index
    s.some().u64(QUEUE);
    s
}

/// A context on the host's Vulkan with an instance, a device and a queue bound to ring 1; None
/// (the test says it skipped) where the host has no Vulkan.
pub fn live_context(test: &str) -> Option<(std::sync::Arc<crate::Context>, crate::StreamCx)> {
    live_context_with(test, gpu_interface::SliceLimits::none())
}

/// [`live_context`] serving a slice with these limits.
pub fn live_context_with(
    test: &str,
    limits: gpu_interface::SliceLimits,
) -> Option<(std::sync::Arc<crate::Context>, crate::StreamCx)> {
    use crate::{Context, DeviceSelector, StreamCx};
    let ctx = match Context::with_limits(DeviceSelector::All, limits) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED {test}: no host Vulkan ({e})");
            return None;
        }
    };
    let mut cx = StreamCx::default();
    ctx.execute(&mut cx, &device_with_queue_on_ring_1().0)
        .expect("the driver's stream runs");
    Some((ctx, cx))
}
