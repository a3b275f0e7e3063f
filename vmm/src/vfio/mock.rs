//! A recording [`VfioDeviceApi`] and [`DmaMapper`]: a device described by its config space and
//! regions, whose region contents live in memory and whose every call is logged, so the
//! passthrough code is tested as a guest would drive it, without /dev/vfio.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use vmm_sys_util::eventfd::EventFd;

use super::api::{
    DmaMapper, HostMapping, IrqKind, PlaneInfo, PlaneSource, RegionInfo, ResetPeer, VfioDeviceApi,
    CONFIG_REGION, REGION_MMAP, REGION_READ, REGION_WRITE,
};
use super::VfioError;

/// What was done to the mock, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Read {
        region: u32,
        offset: u64,
        len: usize,
    },
    Write {
        region: u32,
        offset: u64,
        data: Vec<u8>,
    },
    Mmap {
        region: u32,
        offset: u64,
        len: u64,
    },
    EnableIrq {
        kind: IrqKind,
        vectors: usize,
    },
    DisableIrq(IrqKind),
    IntxUnmaskFd,
    Reset,
    /// A hot reset, with the groups handed to the kernel.
    HotReset(Vec<u32>),
    DmaMap {
        iova: u64,
        size: u64,
        host: u64,
    },
    DmaUnmap {
        iova: u64,
        size: u64,
    },
}

#[derive(Default)]
pub struct MockState {
    pub regions: BTreeMap<u32, RegionInfo>,
    /// Region contents, byte by byte (sparse: a 256 GiB BAR costs nothing).
    pub data: BTreeMap<(u32, u64), u8>,
    pub irqs: BTreeMap<u32, u32>,
    pub calls: Vec<Call>,
    pub can_reset: bool,
    /// What VFIO_DEVICE_GET_PCI_HOT_RESET_INFO answers (`None`: no hot reset).
    pub hot_reset_peers: Option<Vec<ResetPeer>>,
    /// The groups open in the VM's container: a hot reset needing another is refused.
    pub held_groups: Vec<u32>,
    /// A mediated device's display: dma-bufs (true) or a region (false); `None`: no display.
    pub plane_kind: Option<bool>,
    /// What QUERY_GFX_PLANE answers now (`None`: the guest shows nothing).
    pub plane: Option<PlaneInfo>,
    /// The dma-bufs the device exports, by id.
    pub dmabufs: BTreeMap<u32, Vec<u8>>,
    /// mmap gives real memory holding a copy of the region's contents (for code that reads
    /// through its own mapping); otherwise a made-up address nothing may touch.
    pub readable_mmaps: bool,
    /// Eventfds the device was given per interrupt kind (the last enable), to fire them.
    pub irq_fds: BTreeMap<u32, Vec<EventFd>>,
    /// Config writes the device refuses to take (as vfio-pci drops writes to read-only bits).
    pub config_read_only: Vec<(u64, u64)>,
}

/// A fake VFIO device; clones share state.
#[derive(Clone, Default)]
pub struct MockVfio {
    pub state: Arc<Mutex<MockState>>,
}

impl MockVfio {
    /// A device whose config space is `config` (256 bytes or more), with no other region yet.
    pub fn new(config: &[u8]) -> MockVfio {
        let mock = MockVfio::default();
        mock.add_region(
            CONFIG_REGION,
            config.len() as u64,
            REGION_READ | REGION_WRITE,
            None,
        );
        for (i, byte) in config.iter().enumerate() {
            mock.state().data.insert((CONFIG_REGION, i as u64), *byte);
        }
        mock.state().can_reset = true;
        mock
    }

    pub fn state(&self) -> std::sync::MutexGuard<'_, MockState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Declares region `index` of `size` bytes; `sparse` as vfio-pci's sparse-mmap capability.
    pub fn add_region(&self, index: u32, size: u64, flags: u32, sparse: Option<Vec<(u64, u64)>>) {
        let offset = u64::from(index) << 40;
        self.state().regions.insert(
            index,
            RegionInfo {
                flags,
                size,
                offset,
                sparse,
                msix_mappable: false,
            },
        );
    }

    pub fn set_irqs(&self, kind: IrqKind, count: u32) {
        self.state().irqs.insert(kind as u32, count);
    }

    /// Fills region `index` at `offset` with `bytes` (a ROM image, register values).
    pub fn fill(&self, index: u32, offset: u64, bytes: &[u8]) {
        let mut state = self.state();
        for (i, b) in bytes.iter().enumerate() {
            state.data.insert((index, offset + i as u64), *b);
        }
    }

    pub fn peek(&self, index: u32, offset: u64, len: usize) -> Vec<u8> {
        let state = self.state();
        (0..len as u64)
            .map(|i| state.data.get(&(index, offset + i)).copied().unwrap_or(0))
            .collect()
    }

    pub fn config_u16(&self, offset: u64) -> u16 {
        let b = self.peek(CONFIG_REGION, offset, 2);
        u16::from_le_bytes([b[0], b[1]])
    }

    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    pub fn take_calls(&self) -> Vec<Call> {
        std::mem::take(&mut self.state().calls)
    }

    /// Signals vector `vector` of `kind` as the device would.
    pub fn fire(&self, kind: IrqKind, vector: usize) -> bool {
        let state = self.state();
        match state
            .irq_fds
            .get(&(kind as u32))
            .and_then(|fds| fds.get(vector))
        {
            Some(fd) => fd.write(1).is_ok(),
            None => false,
        }
    }

    fn in_region(&self, index: u32, offset: u64, len: usize) -> bool {
        self.state().regions.get(&index).is_some_and(|r| {
            offset
                .checked_add(len as u64)
                .is_some_and(|end| end <= r.size)
        })
    }
}

struct FakeMapping {
    addr: u64,
    len: u64,
}

impl HostMapping for FakeMapping {
    fn host_addr(&self) -> u64 {
        self.addr
    }
    fn size(&self) -> u64 {
        self.len
    }
}

impl VfioDeviceApi for MockVfio {
    fn region(&self, index: u32) -> Option<RegionInfo> {
        self.state().regions.get(&index).cloned()
    }

    fn irq_count(&self, kind: IrqKind) -> u32 {
        self.state().irqs.get(&(kind as u32)).copied().unwrap_or(0)
    }

    fn read(&self, index: u32, offset: u64, data: &mut [u8]) -> bool {
        if !self.in_region(index, offset, data.len()) {
            return false;
        }
        data.copy_from_slice(&self.peek(index, offset, data.len()));
        self.state().calls.push(Call::Read {
            region: index,
            offset,
            len: data.len(),
        });
        true
    }

    fn write(&self, index: u32, offset: u64, data: &[u8]) -> bool {
        if !self.in_region(index, offset, data.len()) {
            return false;
        }
        let mut state = self.state();
        for (i, b) in data.iter().enumerate() {
            let at = offset + i as u64;
            let read_only = index == CONFIG_REGION
                && state
                    .config_read_only
                    .iter()
                    .any(|&(s, e)| (s..e).contains(&at));
            if !read_only {
                state.data.insert((index, at), *b);
            }
        }
        state.calls.push(Call::Write {
            region: index,
            offset,
            data: data.to_vec(),
        });
        true
    }

    fn mmap(&self, index: u32, offset: u64, len: u64) -> Result<Arc<dyn HostMapping>, VfioError> {
        let region = self.region(index).ok_or(VfioError::NoRegion(index))?;
        let allowed = region
            .mappable_areas()
            .iter()
            .any(|&(start, size)| offset >= start && offset + len <= start + size);
        if region.flags & REGION_MMAP == 0 || !allowed {
            return Err(VfioError::Mock("mmap outside the mappable areas"));
        }
        self.state().calls.push(Call::Mmap {
            region: index,
            offset,
            len,
        });
        if self.state().readable_mmaps {
            let mut copy = vec![0u8; len as usize].into_boxed_slice();
            let state = self.state();
            for (&(_, at), &b) in state.data.range((index, offset)..(index, offset + len)) {
                copy[(at - offset) as usize] = b;
            }
            return Ok(Arc::new(CopyMapping(copy)));
        }
        // A made-up host address: the recording hypervisor never touches it.
        Ok(Arc::new(FakeMapping {
            addr: 0x7f00_0000_0000 + region.offset / 256 + offset,
            len,
        }))
    }

    fn enable_irq(&self, kind: IrqKind, fds: &[&EventFd]) -> Result<(), VfioError> {
        if fds.len() as u32 > self.irq_count(kind) || fds.is_empty() {
            return Err(VfioError::Mock("more vectors than the device has"));
        }
        let clones = fds
            .iter()
            .map(|fd| fd.try_clone().map_err(VfioError::EventFd))
            .collect::<Result<Vec<_>, _>>()?;
        let mut state = self.state();
        state.irq_fds.insert(kind as u32, clones);
        state.calls.push(Call::EnableIrq {
            kind,
            vectors: fds.len(),
        });
        Ok(())
    }

    fn disable_irq(&self, kind: IrqKind) -> Result<(), VfioError> {
        let mut state = self.state();
        state.irq_fds.remove(&(kind as u32));
        state.calls.push(Call::DisableIrq(kind));
        Ok(())
    }

    fn set_intx_unmask_fd(&self, _fd: &EventFd) -> Result<(), VfioError> {
        self.state().calls.push(Call::IntxUnmaskFd);
        Ok(())
    }

    fn can_reset(&self) -> bool {
        self.state().can_reset
    }

    fn reset(&self) -> Result<(), VfioError> {
        if !self.can_reset() {
            return Err(VfioError::NoReset);
        }
        self.state().calls.push(Call::Reset);
        Ok(())
    }

    fn plane_kind(&self) -> Option<bool> {
        self.state().plane_kind
    }

    fn query_plane(&self, dmabuf: bool) -> Result<Option<PlaneInfo>, VfioError> {
        let state = self.state();
        if state.plane_kind != Some(dmabuf) {
            return Err(VfioError::Plane("no such plane kind".into()));
        }
        Ok(state.plane)
    }

    fn read_plane(&self, source: PlaneSource, len: usize) -> Result<Vec<u8>, VfioError> {
        match source {
            PlaneSource::Region(index) => {
                let mut out = vec![0; len];
                if !self.read(index, 0, &mut out) {
                    return Err(VfioError::Plane("region too short".into()));
                }
                Ok(out)
            }
            PlaneSource::DmaBuf(id) => {
                let state = self.state();
                let buf = state
                    .dmabufs
                    .get(&id)
                    .ok_or(VfioError::Plane("no dma-buf".into()))?;
                // As mmap of a dma-buf: no more than it holds.
                buf.get(..len)
                    .map(<[u8]>::to_vec)
                    .ok_or(VfioError::Plane("dma-buf too short".into()))
            }
        }
    }

    fn hot_reset_peers(&self) -> Option<Vec<ResetPeer>> {
        self.state().hot_reset_peers.clone()
    }

    fn hot_reset(&self, groups: &[u32]) -> Result<(), VfioError> {
        let mut state = self.state();
        if let Some(&missing) = groups.iter().find(|g| !state.held_groups.contains(g)) {
            return Err(VfioError::GroupNotHeld(missing));
        }
        // As the kernel: every peer's group must be among those handed over.
        let peers = state.hot_reset_peers.clone().unwrap_or_default();
        if state.hot_reset_peers.is_none() || peers.iter().any(|p| !groups.contains(&p.group)) {
            return Err(VfioError::Mock("hot reset refused"));
        }
        state.calls.push(Call::HotReset(groups.to_vec()));
        Ok(())
    }
}

/// A mapping that is a copy of the region's contents.
struct CopyMapping(Box<[u8]>);

impl HostMapping for CopyMapping {
    fn host_addr(&self) -> u64 {
        self.0.as_ptr() as u64
    }
    fn size(&self) -> u64 {
        self.0.len() as u64
    }
}

/// A recording IOMMU address space.
#[derive(Clone, Default)]
pub struct MockDma {
    pub calls: Arc<Mutex<Vec<Call>>>,
}

impl DmaMapper for MockDma {
    unsafe fn map(&self, iova: u64, size: u64, host: u64) -> Result<(), VfioError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::DmaMap { iova, size, host });
        Ok(())
    }

    fn unmap(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        self.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Call::DmaUnmap { iova, size });
        Ok(())
    }
}

/// Devices as QEMU (and a data-center GPU) present them, for the tests and the fuzz target.
pub mod fixtures {
    use super::MockVfio;
    use crate::vfio::api::{IrqKind, REGION_MMAP, REGION_READ, REGION_WRITE, ROM_REGION};

    const RWM: u32 = REGION_READ | REGION_WRITE | REGION_MMAP;

    /// A config space: IDs, class, BAR registers' flag bits, capabilities at their offsets.
    pub fn config_space(
        ids: (u16, u16),
        class: u32,
        bars: &[(usize, u32)],
        caps: &[(usize, Vec<u8>)],
        pin: u8,
    ) -> Vec<u8> {
        let mut c = vec![0u8; 256];
        c[0..2].copy_from_slice(&ids.0.to_le_bytes());
        c[2..4].copy_from_slice(&ids.1.to_le_bytes());
        c[8..12].copy_from_slice(&(class << 8 | 0x02).to_le_bytes());
        for &(i, flags) in bars {
            c[0x10 + i * 4..0x14 + i * 4].copy_from_slice(&flags.to_le_bytes());
        }
        c[0x3d] = pin;
        if !caps.is_empty() {
            c[6] |= 0x10;
            c[0x34] = caps[0].0 as u8;
            for (k, (at, body)) in caps.iter().enumerate() {
                c[*at..*at + body.len()].copy_from_slice(body);
                c[at + 1] = caps.get(k + 1).map_or(0, |n| n.0 as u8);
            }
        }
        c
    }

    /// bochs-display as QEMU makes it: BAR0 16 MiB prefetchable framebuffer, BAR2 4 KiB MMIO,
    /// a 64 KiB option ROM, no interrupts.
    pub fn bochs() -> MockVfio {
        let cfg = config_space((0x1234, 0x1111), 0x03_0000, &[(0, 0x8), (2, 0)], &[], 0);
        let mock = MockVfio::new(&cfg);
        mock.add_region(0, 16 << 20, RWM, None);
        mock.add_region(2, 4096, RWM, None);
        mock.add_region(ROM_REGION, 64 << 10, REGION_READ, None);
        mock.fill(ROM_REGION, 0, &[0x55, 0xaa, 0x7f, 0xe9]);
        mock
    }

    /// Linux's mbochs sample, a mediated bochs display: 255 bytes of config space, BAR0 the
    /// instance's video memory, BAR2 4 KiB of registers, no ROM, a dma-buf display.
    pub fn mbochs() -> MockVfio {
        let cfg = config_space((0x1234, 0x1111), 0x03_0000, &[(0, 0x8), (2, 0)], &[], 0);
        let mock = MockVfio::new(&cfg[..0xff]);
        mock.add_region(0, 16 << 20, RWM, None);
        mock.add_region(2, 4096, REGION_READ | REGION_WRITE, None);
        mock.state().plane_kind = Some(true);
        mock
    }

    /// virtio-gpu-pci behind a PCIe root port: MSI-X (3 vectors, table at BAR1 0, PBA at BAR1
    /// 0x800), BAR4 64-bit prefetchable, a PCIe capability with FLR, INTx pin A.
    pub fn virtio_gpu() -> MockVfio {
        let mut msix = vec![0x11, 0, 2, 0];
        msix.extend_from_slice(&1u32.to_le_bytes());
        msix.extend_from_slice(&(0x800u32 | 1).to_le_bytes());
        let mut pcie = vec![0x10, 0, 0x02, 0];
        pcie.extend_from_slice(&(1u32 << 28).to_le_bytes());
        pcie.extend_from_slice(&[0; 8]);
        let cfg = config_space(
            (0x1af4, 0x1050),
            0x03_8000,
            &[(1, 0), (4, 0xc)],
            &[(0x40, pcie), (0x98, msix)],
            1,
        );
        let mock = MockVfio::new(&cfg);
        // The kernel leaves the MSI-X page out of the mappable areas of BAR1.
        mock.add_region(1, 4096, RWM, Some(vec![]));
        mock.add_region(4, 16 << 10, RWM, None);
        mock.set_irqs(IrqKind::Intx, 1);
        mock.set_irqs(IrqKind::Msix, 3);
        mock
    }

    /// An NVIDIA data-center GPU: BAR0 16 MiB registers, BAR1 a 64-bit 256 GiB aperture, PCIe.
    pub fn nvidia() -> MockVfio {
        let pcie = vec![0x10, 0, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let cfg = config_space(
            (0x10de, 0x2335),
            0x03_0200,
            &[(0, 0), (1, 0xc)],
            &[(0x60, pcie)],
            0,
        );
        let mock = MockVfio::new(&cfg);
        mock.add_region(0, 16 << 20, RWM, None);
        mock.add_region(1, 256 << 30, RWM, None);
        mock
    }
}
