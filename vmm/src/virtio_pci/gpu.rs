//! virtio-gpu (device type 16) on the virtio-pci transport: an adapter from [`VirtioDevice`] to
//! [`virtio_gpu::GpuDevice`], and the host's handle on it (screenshots, display changes).

use std::any::Any;
use std::sync::{Arc, Mutex};

use gpu_interface::{DisplayMode, Frame, GpuError, GpuResult};
use tracing::warn;
use virtio_gpu::{GpuDevice, QueueKind};
use virtio_queue::Queue;
use vm_memory::GuestMemoryMmap;

use super::{NeedsInterrupt, VirtioDevice, VirtioPciDevice};

pub const VIRTIO_ID_GPU: u16 = 16;
/// Queue sizes offered for the control and cursor queues.
pub const QUEUE_SIZE: u16 = 256;
/// Size of the host-visible region (BAR 2) where mappable host blobs appear.
pub const SHM_SIZE: u64 = 256 << 20;
/// Memory slots reserved for it: at most this many blobs are mapped at once.
pub const SHM_SLOTS: usize = 32;

/// A [`GpuDevice`] as a [`VirtioDevice`]: queue 0 is the control queue, queue 1 the cursor queue.
pub struct VirtioGpu {
    device: GpuDevice,
    config_changed: bool,
    shm: Option<super::shm::ShmRegion>,
}

impl VirtioGpu {
    pub fn new(device: GpuDevice) -> Self {
        VirtioGpu {
            device,
            config_changed: false,
            shm: None,
        }
    }

    /// Gives the device a host-visible region (exposed as BAR 2) for mappable host blobs.
    pub fn with_shm(mut self, region: super::shm::ShmRegion) -> Self {
        self.device.set_shm_mapper(Box::new(region.clone()));
        self.shm = Some(region);
        self
    }

    pub fn device(&mut self) -> &mut GpuDevice {
        &mut self.device
    }

    /// Changes a scanout's mode as a host display would; the transport then raises a
    /// config-change interrupt (on its next poll).
    pub fn set_display_mode(&mut self, scanout: u32, mode: Option<DisplayMode>) -> bool {
        let changed = self.device.set_display_mode(scanout, mode);
        self.config_changed |= changed;
        changed
    }
}

impl VirtioDevice for VirtioGpu {
    fn device_type(&self) -> u16 {
        VIRTIO_ID_GPU
    }

    fn queue_max_sizes(&self) -> Vec<u16> {
        vec![QUEUE_SIZE, QUEUE_SIZE]
    }

    fn device_features(&self) -> u64 {
        self.device.device_features()
    }

    fn ack_features(&mut self, features: u64) {
        self.device.ack_features(features);
    }

    fn read_config(&self, offset: u64, data: &mut [u8]) {
        self.device.read_config(offset, data);
    }

    fn write_config(&mut self, offset: u64, data: &[u8]) {
        self.device.write_config(offset, data);
    }

    fn process_queue(
        &mut self,
        index: usize,
        queues: &mut [Queue],
        mem: &GuestMemoryMmap,
    ) -> NeedsInterrupt {
        let kind = if index == 0 {
            QueueKind::Control
        } else {
            QueueKind::Cursor
        };
        match self.device.process_queue(kind, &mut queues[index], mem) {
            Ok(notify) => notify,
            Err(err) => {
                warn!(%err, queue = index, "virtio-gpu: queue processing failed");
                true
            }
        }
    }

    fn poll(&mut self, queues: &mut [Queue], mem: &GuestMemoryMmap) -> Vec<usize> {
        if !self.device.fences_pending() {
            return Vec::new();
        }
        match self.device.process_fences(&mut queues[0], mem) {
            Ok(true) => vec![0],
            Ok(false) => Vec::new(),
            Err(err) => {
                warn!(%err, "virtio-gpu: completing fences failed");
                Vec::new()
            }
        }
    }

    fn take_config_changed(&mut self) -> bool {
        std::mem::take(&mut self.config_changed)
    }

    fn shm_size(&self) -> Option<u64> {
        self.shm.as_ref().map(|r| r.size())
    }

    fn shm_moved(&mut self, base: Option<u64>) {
        if let Some(region) = &self.shm {
            region.relocate(base);
        }
    }

    fn reset(&mut self) {
        self.device.reset();
    }

    fn as_any_mut(&mut self) -> &mut dyn Any {
        self
    }
}

/// The host's handle on a virtio-gpu PCI function.
#[derive(Clone)]
pub struct PciGpuHandle {
    pub transport: Arc<Mutex<VirtioPciDevice>>,
}

impl PciGpuHandle {
    fn with_gpu<R>(&self, f: impl FnOnce(&mut VirtioGpu) -> R) -> Option<R> {
        let mut transport = self.transport.lock().unwrap_or_else(|e| e.into_inner());
        let gpu = transport.device_any().downcast_mut::<VirtioGpu>()?;
        let result = f(gpu);
        // Forward a config change (display hotplug) right away rather than on the next poll.
        transport.poll_device();
        Some(result)
    }

    /// The composed image of `scanout`.
    pub fn screenshot(&self, scanout: u32) -> GpuResult<Frame> {
        self.with_gpu(|gpu| gpu.device().screenshot(scanout))
            .unwrap_or(Err(GpuError::InvalidScanoutId(scanout)))
    }

    /// Host display hotplug / resize; returns whether anything changed.
    pub fn set_display_mode(&self, scanout: u32, mode: Option<DisplayMode>) -> bool {
        self.with_gpu(|gpu| gpu.set_display_mode(scanout, mode))
            .unwrap_or(false)
    }
}

/// A virtio-gpu PCI function plugged into a VM, with the worker serving its queues.
pub struct PciGpu {
    pub handle: PciGpuHandle,
    _worker: super::Worker,
}

impl crate::vm::Display for PciGpu {
    fn screenshot(&mut self, scanout: u32) -> GpuResult<Frame> {
        self.handle.screenshot(scanout)
    }
}

/// Builds the virtio-gpu device `spec` describes and plugs it into bus 0 of `vm`.
pub fn attach(
    vm: &mut crate::vm::Vm,
    spec: &crate::vm::GpuSpec,
) -> Result<PciGpu, super::VirtioPciError> {
    let backend = virtio_gpu::backend::create_backend(spec.backend)
        .map_err(|e| super::VirtioPciError::Backend(e.to_string()))?;
    let config = virtio_gpu::GpuConfig {
        scanouts: spec.scanouts.clone(),
        edid: spec.edid,
    };
    let slots = (0..SHM_SLOTS).map(|_| vm.allocate_memory_slot()).collect();
    let region = super::shm::ShmRegion::new(vm.hv.clone(), SHM_SIZE, slots);
    let gpu = VirtioGpu::new(GpuDevice::new(backend, config)).with_shm(region);
    let (transport, worker) = super::plug(vm, Box::new(gpu), "virtio-gpu")?;
    tracing::info!(backend = ?spec.backend, "virtio-gpu backend");
    Ok(PciGpu {
        handle: PciGpuHandle { transport },
        _worker: worker,
    })
}

#[cfg(test)]
mod tests {
    use virtio_gpu::backend::BackendKind;

    use super::*;
    use crate::hypervisor::mock::MockHypervisor;
    use crate::pci::PciDevice;

    #[test]
    fn attach_plugs_a_gpu_with_a_host_visible_region_on_bar2() {
        let hv = MockHypervisor::new();
        let mut vm = crate::vm::Vm::new(&hv, 16 << 20, true).unwrap();
        let spec = crate::vm::GpuSpec {
            backend: BackendKind::Software,
            vhost_user: None,
            scanouts: vec![DisplayMode::new(640, 480)],
            edid: true,
        };
        let gpu = attach(&mut vm, &spec).unwrap();
        let transport = gpu.handle.transport.lock().unwrap();
        let config = transport.config();
        assert_eq!(config.read_reg(0), 0x1050_1af4);
        assert_eq!(
            config.bar(super::super::transport::SHM_BAR).unwrap().size,
            SHM_SIZE
        );
        // Walk the capabilities to the shared-memory one (cfg_type 8, shmid 1, 64-bit length).
        let byte = |off: usize| (config.read_reg(off / 4) >> (8 * (off % 4))) as u8;
        let mut cap = byte(0x34) as usize;
        let mut found = false;
        while cap != 0 {
            if byte(cap) == 0x09 && byte(cap + 3) == 8 {
                assert_eq!((byte(cap + 4), byte(cap + 5)), (2, 1));
                let len = u64::from(config.read_reg((cap + 12) / 4))
                    | u64::from(config.read_reg((cap + 20) / 4)) << 32;
                assert_eq!(len, SHM_SIZE);
                found = true;
            }
            cap = byte(cap + 1) as usize;
        }
        assert!(found, "no shared-memory capability");
        drop(transport);
        // Three MSI-X vectors, each with an irqfd (there is an irqchip).
        assert_eq!(hv.state.lock().unwrap().irqfds.len(), 3);
        assert!(gpu.handle.screenshot(0).is_err(), "nothing shown yet");
        assert!(gpu
            .handle
            .set_display_mode(0, Some(DisplayMode::new(800, 600))));
    }
}
