//! Queue timelines on a live context (host Vulkan): a command stream as Mesa's driver writes it
//! makes an instance, a device and a queue bound to ring index 1; a timeline point on ring 1
//! completes once the GPU is done, a ring index no queue is bound to is an error.

use std::sync::mpsc;
use std::time::Duration;

use venus::protocol::generated::stype;
use venus::{Context, DeviceSelector, StreamCx};

/// A venus command stream, written as the driver's encoder writes it.
#[derive(Default)]
struct Stream(Vec<u8>);

impl Stream {
    fn u32(&mut self, v: u32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn u64(&mut self, v: u64) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    fn f32(&mut self, v: f32) -> &mut Self {
        self.0.extend_from_slice(&v.to_le_bytes());
        self
    }
    /// A command header: type and flags (0: no reply).
    fn command(&mut self, command_type: u32) -> &mut Self {
        self.u32(command_type).u32(0)
    }
    /// A present pointer (the marker before the pointee).
    fn some(&mut self) -> &mut Self {
        self.u64(1)
    }
    /// A null pointer, or an empty array.
    fn none(&mut self) -> &mut Self {
        self.u64(0)
    }
}

const INSTANCE: u64 = 0x100;
const PHYSICAL_DEVICE: u64 = 0x200;
const DEVICE: u64 = 0x300;
const QUEUE: u64 = 0x400;

fn device_with_queue_on_ring_1() -> Stream {
    let mut s = Stream::default();
    // vkCreateInstance(pCreateInfo, pAllocator, pInstance)
    s.command(0).some();
    s.u32(1).none().u32(0); // VkInstanceCreateInfo: sType, pNext, flags
    s.some().u32(0).none(); // pApplicationInfo: sType, pNext
    s.none().u32(1).none().u32(1).u32(vk_version(1, 3)); // names null, versions, apiVersion
    s.u32(0).none().u32(0).none(); // no layers, no extensions
    s.none().some().u64(INSTANCE); // pAllocator, pInstance
                                   // vkEnumeratePhysicalDevices(instance, pPhysicalDeviceCount, pPhysicalDevices)
    s.command(2)
        .u64(INSTANCE)
        .some()
        .u32(1)
        .u64(1)
        .u64(PHYSICAL_DEVICE);
    // vkCreateDevice(physicalDevice, pCreateInfo, pAllocator, pDevice)
    s.command(11).u64(PHYSICAL_DEVICE).some();
    s.u32(3).none().u32(0).u32(1); // VkDeviceCreateInfo: sType, pNext, flags, 1 queue info
    s.u64(1).u32(2).none().u32(0); // VkDeviceQueueCreateInfo: sType, pNext, flags
    s.u32(0).u32(1).u64(1).f32(1.0); // family 0, 1 queue, priorities
    s.u32(0).none().u32(0).none().none(); // no layers, extensions or features
    s.none().some().u64(DEVICE);
    // vkGetDeviceQueue2(device, pQueueInfo, pQueue) with VkDeviceQueueTimelineInfoMESA
    s.command(155).u64(DEVICE).some();
    s.u32(stype::VkDeviceQueueInfo2 as u32).some();
    s.u32(stype::VkDeviceQueueTimelineInfoMESA as u32)
        .none()
        .u32(1);
    s.u32(0).u32(0).u32(0); // flags, family, index
    s.some().u64(QUEUE);
    s
}

fn vk_version(major: u32, minor: u32) -> u32 {
    (major << 22) | (minor << 12)
}

#[test]
fn a_timeline_point_completes_after_the_gpu_and_only_on_a_bound_ring() {
    let ctx = match Context::new(DeviceSelector::All) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("SKIPPED timeline: no host Vulkan ({e})");
            return;
        }
    };
    let mut cx = StreamCx::default();
    ctx.execute(&mut cx, &device_with_queue_on_ring_1().0)
        .expect("the driver's stream runs");

    let (tx, rx) = mpsc::channel();
    for point in 1..=3u32 {
        let tx = tx.clone();
        ctx.submit_fence(1, Box::new(move || tx.send(point).unwrap()))
            .expect("ring 1 has a queue");
    }
    let got: Vec<u32> = (0..3)
        .map(|_| rx.recv_timeout(Duration::from_secs(10)).expect("completed"))
        .collect();
    assert_eq!(got, [1, 2, 3], "in submission order");

    let err = ctx.submit_fence(2, Box::new(|| {})).unwrap_err();
    assert!(err.to_string().contains("ring index 2"), "{err}");
    ctx.shutdown();
}
