//! [`VfioDeviceApi`] and [`DmaMapper`] over vfio-ioctls and the legacy container/group interface
//! (Debian's 6.12 kernel has no iommufd).
//!
//! Regions are looked up here by their vfio-pci index with VFIO_DEVICE_GET_REGION_INFO and read
//! with pread/pwrite on the device file: vfio-ioctls keeps its regions in a list that shifts
//! when a middle index fails, and has no mmap helper.

use std::os::fd::{AsRawFd, FromRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;

use tracing::debug;
use vfio_bindings::bindings::vfio::{
    vfio_device_gfx_plane_info, vfio_device_gfx_plane_info__bindgen_ty_1, vfio_device_info,
    vfio_info_cap_header, vfio_region_info, VFIO_BASE, VFIO_DEVICE_FLAGS_RESET,
    VFIO_GFX_PLANE_TYPE_DMABUF, VFIO_GFX_PLANE_TYPE_PROBE, VFIO_GFX_PLANE_TYPE_REGION,
    VFIO_REGION_INFO_CAP_MSIX_MAPPABLE, VFIO_REGION_INFO_CAP_SPARSE_MMAP,
    VFIO_REGION_INFO_FLAG_CAPS, VFIO_TYPE,
};
use vfio_ioctls::{VfioContainer, VfioDevice, VfioDeviceFd};
use vmm_sys_util::eventfd::EventFd;
use vmm_sys_util::ioctl::{ioctl, ioctl_with_mut_ptr, ioctl_with_mut_ref};

use super::api::{
    DmaMapper, HostMapping, IrqKind, PlaneInfo, PlaneSource, RegionInfo, ResetPeer, VfioDeviceApi,
    REGION_MMAP,
};
use super::VfioError;

vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_INFO, VFIO_TYPE as u32, VFIO_BASE + 7);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_REGION_INFO, VFIO_TYPE as u32, VFIO_BASE + 8);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_RESET, VFIO_TYPE as u32, VFIO_BASE + 11);
vmm_sys_util::ioctl_io_nr!(
    VFIO_DEVICE_GET_PCI_HOT_RESET_INFO,
    VFIO_TYPE as u32,
    VFIO_BASE + 12
);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_PCI_HOT_RESET, VFIO_TYPE as u32, VFIO_BASE + 13);
vmm_sys_util::ioctl_io_nr!(
    VFIO_DEVICE_QUERY_GFX_PLANE,
    VFIO_TYPE as u32,
    VFIO_BASE + 14
);
vmm_sys_util::ioctl_io_nr!(VFIO_DEVICE_GET_GFX_DMABUF, VFIO_TYPE as u32, VFIO_BASE + 15);

/// DRM_PLANE_TYPE_PRIMARY: the plane a screenshot shows.
const DRM_PLANE_TYPE_PRIMARY: u32 = 1;

/// vfio-pci has regions 0..=8 (BAR0-5, ROM, config, VGA); device-specific ones follow.
const PCI_REGIONS: u32 = 9;

/// The legacy VFIO container: one IOMMU address space for every passed device of a VM.
pub struct RealContainer {
    pub(super) container: Arc<VfioContainer>,
}

impl RealContainer {
    /// Opens /dev/vfio/vfio; `kvm_vfio` is KVM's VFIO pseudo-device, to which each group is
    /// added (KVM then knows DMA may be non-coherent).
    pub fn open(kvm_vfio: Option<VfioDeviceFd>) -> Result<RealContainer, VfioError> {
        let container = VfioContainer::new(kvm_vfio.map(Arc::new)).map_err(VfioError::Container)?;
        Ok(RealContainer {
            container: Arc::new(container),
        })
    }
}

impl DmaMapper for RealContainer {
    unsafe fn map(&self, iova: u64, size: u64, host: u64) -> Result<(), VfioError> {
        // SAFETY: the caller upholds the trait's contract, which is vfio_dma_map's.
        unsafe {
            self.container
                .vfio_dma_map(iova, size as usize, host as *mut u8)
        }
        .map_err(|e| VfioError::Dma {
            iova,
            size,
            source: e,
        })
    }

    fn unmap(&self, iova: u64, size: u64) -> Result<(), VfioError> {
        self.container
            .vfio_dma_unmap(iova, size as usize)
            .map_err(|e| VfioError::Dma {
                iova,
                size,
                source: e,
            })
    }
}

/// A device opened through its group in a [`RealContainer`].
pub struct RealDevice {
    device: VfioDevice,
    regions: Vec<Option<RegionInfo>>,
    fd: RawFd,
    flags: u32,
}

impl RealDevice {
    /// Opens the device at `sysfs` (a PCI function's or an mdev's directory); its group joins
    /// `container` (vfio-ioctls checks the group is viable).
    pub fn open(sysfs: &Path, container: &RealContainer) -> Result<RealDevice, VfioError> {
        let device = VfioDevice::new(sysfs, container.container.clone(), false).map_err(|e| {
            VfioError::Open {
                device: sysfs.display().to_string(),
                source: e,
            }
        })?;
        let fd = device.as_raw_fd();
        let regions = (0..PCI_REGIONS).map(|i| region_info(fd, i)).collect();
        let mut info = vfio_device_info {
            argsz: std::mem::size_of::<vfio_device_info>() as u32,
            ..Default::default()
        };
        // SAFETY: the ioctl writes at most argsz bytes into `info`; `fd` is the device file.
        let ret = unsafe { ioctl_with_mut_ref(&Fd(fd), VFIO_DEVICE_GET_INFO(), &mut info) };
        let flags = if ret < 0 { 0 } else { info.flags };
        debug!(device = %sysfs.display(), flags, ?regions, "vfio: regions");
        Ok(RealDevice {
            device,
            regions,
            fd,
            flags,
        })
    }
}

impl RealDevice {
    /// Where `len` bytes at `offset` of region `index` are in the device file, if inside it.
    fn file_offset(&self, index: u32, offset: u64, len: usize) -> Option<libc::off_t> {
        let region = self.region(index)?;
        let end = offset.checked_add(len as u64)?;
        (end <= region.size).then(|| (region.offset + offset) as libc::off_t)
    }
}

/// VFIO_DEVICE_GET_REGION_INFO for `index`, with its capability chain when it has one.
fn region_info(fd: RawFd, index: u32) -> Option<RegionInfo> {
    let header = std::mem::size_of::<vfio_region_info>();
    // First the bare info (some drivers, mbochs among them, refuse a larger argsz), then again
    // with the room the kernel asks for when the region has a capability chain (as QEMU does).
    let (mut buf, mut info) = query_region(fd, index, header)?;
    if info.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 && info.argsz as usize > header {
        (buf, info) = query_region(fd, index, (info.argsz as usize).min(64 << 10))?;
    }
    if info.size == 0 {
        return None;
    }
    let bytes: &[u8] = {
        // SAFETY: `buf` is plain memory of buf.len() * 8 bytes, read here as bytes.
        unsafe { std::slice::from_raw_parts(buf.as_ptr().cast::<u8>(), buf.len() * 8) }
    };
    let mut region = RegionInfo {
        flags: info.flags,
        size: info.size,
        offset: info.offset,
        sparse: None,
        msix_mappable: false,
    };
    if info.flags & VFIO_REGION_INFO_FLAG_CAPS != 0 && info.argsz as usize <= bytes.len() {
        let mut at = info.cap_offset as usize;
        let mut hops = 0;
        while at >= header && at + 8 <= bytes.len() && hops < 16 {
            let cap = vfio_info_cap_header {
                id: u16::from_le_bytes([bytes[at], bytes[at + 1]]),
                version: u16::from_le_bytes([bytes[at + 2], bytes[at + 3]]),
                next: u32::from_le_bytes(bytes[at + 4..at + 8].try_into().unwrap_or([0; 4])),
            };
            match u32::from(cap.id) {
                VFIO_REGION_INFO_CAP_SPARSE_MMAP => {
                    region.sparse = Some(sparse_areas(&bytes[at..]))
                }
                VFIO_REGION_INFO_CAP_MSIX_MAPPABLE => region.msix_mappable = true,
                _ => {}
            }
            if cap.next == 0 {
                break;
            }
            at = cap.next as usize;
            hops += 1;
        }
    }
    Some(region)
}

/// VFIO_DEVICE_GET_REGION_INFO of `index` with `argsz` bytes of room: the buffer the kernel
/// filled (the info, then any capabilities) and the info at its start.
fn query_region(fd: RawFd, index: u32, argsz: usize) -> Option<(Vec<u64>, vfio_region_info)> {
    let mut buf = vec![0u64; argsz.div_ceil(8)];
    let info = vfio_region_info {
        argsz: argsz as u32,
        index,
        ..Default::default()
    };
    // SAFETY: `info` fits at the start of `buf` (8-byte aligned, at least its size long).
    unsafe { std::ptr::write(buf.as_mut_ptr().cast::<vfio_region_info>(), info) };
    // SAFETY: the ioctl writes at most argsz bytes into `buf`, which is that long; `fd` is the
    // device file.
    let ret =
        unsafe { ioctl_with_mut_ptr(&Fd(fd), VFIO_DEVICE_GET_REGION_INFO(), buf.as_mut_ptr()) };
    if ret < 0 {
        return None;
    }
    // SAFETY: the kernel filled a vfio_region_info at the start of `buf`.
    let info = unsafe { std::ptr::read(buf.as_ptr().cast::<vfio_region_info>()) };
    Some((buf, info))
}

/// The areas of a sparse-mmap capability: header (8), nr_areas, reserved, then (offset, size).
fn sparse_areas(cap: &[u8]) -> Vec<(u64, u64)> {
    let u64_at = |at: usize| {
        cap.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().unwrap_or([0; 8])))
    };
    let count = cap
        .get(8..12)
        .map(|b| u32::from_le_bytes(b.try_into().unwrap_or([0; 4])))
        .unwrap_or(0);
    (0..count as usize)
        .map_while(|i| Some((u64_at(16 + i * 16)?, u64_at(24 + i * 16)?)))
        .filter(|&(_, size)| size > 0)
        .collect()
}

impl RealDevice {
    /// VFIO_DEVICE_QUERY_GFX_PLANE of the primary plane with `flags`.
    fn gfx_plane(&self, flags: u32) -> Result<vfio_device_gfx_plane_info, VfioError> {
        let mut info = vfio_device_gfx_plane_info {
            argsz: std::mem::size_of::<vfio_device_gfx_plane_info>() as u32,
            flags,
            drm_plane_type: DRM_PLANE_TYPE_PRIMARY,
            drm_format: 0,
            drm_format_mod: 0,
            width: 0,
            height: 0,
            stride: 0,
            size: 0,
            x_pos: 0,
            y_pos: 0,
            x_hot: 0,
            y_hot: 0,
            __bindgen_anon_1: vfio_device_gfx_plane_info__bindgen_ty_1 { dmabuf_id: 0 },
            reserved: 0,
        };
        // SAFETY: the ioctl writes at most argsz bytes into `info`; `fd` is the device file.
        let ret =
            unsafe { ioctl_with_mut_ref(&Fd(self.fd), VFIO_DEVICE_QUERY_GFX_PLANE(), &mut info) };
        if ret < 0 {
            return Err(VfioError::Plane(
                std::io::Error::last_os_error().to_string(),
            ));
        }
        Ok(info)
    }
}

/// Copies the start of a dma-buf through a read-only shared mapping of it.
fn copy_from_dmabuf(buf: &std::os::fd::OwnedFd, out: &mut [u8]) -> Result<(), VfioError> {
    let len = out.len();
    // SAFETY: a fresh read-only shared mapping of the dma-buf the kernel places.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ,
            libc::MAP_SHARED,
            buf.as_raw_fd(),
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(VfioError::Plane(format!(
            "mapping the dma-buf: {}",
            std::io::Error::last_os_error()
        )));
    }
    // SAFETY: `addr` maps `len` readable bytes, which the guest may change meanwhile (a torn
    // frame at worst); they are copied with no reference kept into the mapping.
    unsafe { std::ptr::copy_nonoverlapping(addr.cast::<u8>(), out.as_mut_ptr(), len) };
    // SAFETY: the mapping made above, used no more.
    unsafe { libc::munmap(addr, len) };
    Ok(())
}

/// VFIO_DEVICE_GET_PCI_HOT_RESET_INFO: a header of argsz, flags, count, then `count`
/// dependent devices of 8 bytes (group id, segment, bus, devfn). Asked once with room for 64,
/// again with the count the kernel asks for (ENOSPC).
fn hot_reset_info(fd: RawFd) -> Option<Vec<ResetPeer>> {
    let mut room = 64usize;
    for _ in 0..2 {
        let mut buf = vec![0u32; 3 + room * 2];
        buf[0] = (buf.len() * 4) as u32;
        // SAFETY: the ioctl writes at most argsz (= buf's length in bytes) into `buf`; `fd` is
        // the device file.
        let ret = unsafe {
            ioctl_with_mut_ptr(
                &Fd(fd),
                VFIO_DEVICE_GET_PCI_HOT_RESET_INFO(),
                buf.as_mut_ptr(),
            )
        };
        let count = buf[2] as usize;
        if ret < 0 {
            if std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOSPC) && count > room
            {
                room = count.min(4096);
                continue;
            }
            return None;
        }
        let peers = buf[3..]
            .chunks_exact(2)
            .take(count.min(room))
            .map(|d| ResetPeer {
                group: d[0],
                segment: d[1] as u16,
                bus: (d[1] >> 16) as u8,
                devfn: (d[1] >> 24) as u8,
            })
            .collect();
        return Some(peers);
    }
    None
}

/// The open file of VFIO group `id` in this process. vfio-ioctls keeps its group files private,
/// and a group opens only once, so the one its container holds is found among our own fds.
fn group_fd(id: u32) -> Option<RawFd> {
    let want = format!("/dev/vfio/{id}");
    std::fs::read_dir("/proc/self/fd")
        .ok()?
        .flatten()
        .find(|entry| {
            std::fs::read_link(entry.path()).is_ok_and(|target| target == Path::new(&want))
        })
        .and_then(|entry| entry.file_name().to_str()?.parse().ok())
}

struct Fd(RawFd);
impl AsRawFd for Fd {
    fn as_raw_fd(&self) -> RawFd {
        self.0
    }
}

/// The alignment a BAR mapping of `len` bytes gets: its largest power of two up to 1 GiB.
/// vfio-pci (6.12 on) maps BARs with huge pages where the address allows, and KVM then maps
/// the guest's view with huge pages too: fewer TLB misses on a framebuffer (as QEMU aligns).
fn huge_alignment(len: u64) -> u64 {
    let page = 4096u64;
    if len < page {
        return page;
    }
    (1u64 << (63 - len.leading_zeros())).clamp(page, 1 << 30)
}

/// Maps `len` bytes of `fd` at `file_offset` shared and read-write, at an address congruent
/// to `file_offset` modulo `align`: a reservation of `len + align` bytes, the device mapped
/// over its aligned part, the rest given back.
fn map_aligned(fd: RawFd, file_offset: u64, len: u64, align: u64) -> std::io::Result<u64> {
    let span = len + align;
    // SAFETY: a fresh private reservation the kernel places; nothing is replaced.
    let reserve = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            span as usize,
            libc::PROT_NONE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
            -1,
            0,
        )
    };
    if reserve == libc::MAP_FAILED {
        return Err(std::io::Error::last_os_error());
    }
    let base = reserve as u64;
    let want = file_offset % align;
    let addr = base + ((want + align - base % align) % align);
    // SAFETY: `addr..addr+len` lies inside the reservation made above (addr - base < align),
    // which this function owns, so MAP_FIXED replaces nothing else.
    let mapped = unsafe {
        libc::mmap(
            addr as *mut libc::c_void,
            len as usize,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_SHARED | libc::MAP_FIXED,
            fd,
            file_offset as libc::off_t,
        )
    };
    let error = std::io::Error::last_os_error();
    let give_back = |at: u64, size: u64| {
        if size > 0 {
            // SAFETY: a piece of the reservation above that the device mapping does not cover
            // (all of it when that mapping failed); nothing else uses it.
            unsafe { libc::munmap(at as *mut libc::c_void, size as usize) };
        }
    };
    if mapped == libc::MAP_FAILED {
        give_back(base, span);
        return Err(error);
    }
    give_back(base, addr - base);
    give_back(addr + len, base + span - (addr + len));
    Ok(addr)
}

/// An mmap of part of a region, unmapped on drop.
struct Mapped {
    addr: u64,
    len: u64,
}

impl HostMapping for Mapped {
    fn host_addr(&self) -> u64 {
        self.addr
    }
    fn size(&self) -> u64 {
        self.len
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        // SAFETY: `addr..addr+len` is the mapping this value made and nothing else unmaps; the
        // guest slot over it is removed before the last reference goes.
        unsafe { libc::munmap(self.addr as *mut libc::c_void, self.len as usize) };
    }
}

impl VfioDeviceApi for RealDevice {
    fn region(&self, index: u32) -> Option<RegionInfo> {
        self.regions.get(index as usize).cloned().flatten()
    }

    fn irq_count(&self, kind: IrqKind) -> u32 {
        self.device
            .get_irq_info(kind as u32)
            .map_or(0, |irq| irq.count)
    }

    fn read(&self, index: u32, offset: u64, data: &mut [u8]) -> bool {
        let Some(at) = self.file_offset(index, offset, data.len()) else {
            return false;
        };
        // SAFETY: `data` is a writable buffer of data.len() bytes; the fd is the device's.
        let n = unsafe { libc::pread(self.fd, data.as_mut_ptr().cast(), data.len(), at) };
        n == data.len() as isize
    }

    fn write(&self, index: u32, offset: u64, data: &[u8]) -> bool {
        let Some(at) = self.file_offset(index, offset, data.len()) else {
            return false;
        };
        // SAFETY: `data` is a readable buffer of data.len() bytes; the fd is the device's.
        let n = unsafe { libc::pwrite(self.fd, data.as_ptr().cast(), data.len(), at) };
        n == data.len() as isize
    }

    fn mmap(&self, index: u32, offset: u64, len: u64) -> Result<Arc<dyn HostMapping>, VfioError> {
        let region = self.region(index).ok_or(VfioError::NoRegion(index))?;
        if region.flags & REGION_MMAP == 0
            || offset.checked_add(len).is_none_or(|end| end > region.size)
        {
            return Err(VfioError::NoRegion(index));
        }
        let file_offset = region.offset + offset;
        let addr =
            map_aligned(self.fd, file_offset, len, huge_alignment(len)).map_err(|source| {
                VfioError::Mmap {
                    region: index,
                    offset,
                    source,
                }
            })?;
        Ok(Arc::new(Mapped { addr, len }))
    }

    fn enable_irq(&self, kind: IrqKind, fds: &[&EventFd]) -> Result<(), VfioError> {
        self.device
            .enable_irq(kind as u32, fds.to_vec())
            .map_err(|e| VfioError::Irq { kind, source: e })
    }

    fn disable_irq(&self, kind: IrqKind) -> Result<(), VfioError> {
        self.device
            .disable_irq(kind as u32)
            .map_err(|e| VfioError::Irq { kind, source: e })
    }

    fn set_intx_unmask_fd(&self, fd: &EventFd) -> Result<(), VfioError> {
        self.device
            .set_irq_resample_fd(IrqKind::Intx as u32, vec![fd])
            .map_err(|e| VfioError::Irq {
                kind: IrqKind::Intx,
                source: e,
            })
    }

    fn can_reset(&self) -> bool {
        self.flags & VFIO_DEVICE_FLAGS_RESET != 0
    }

    fn reset(&self) -> Result<(), VfioError> {
        if !self.can_reset() {
            return Err(VfioError::NoReset);
        }
        // SAFETY: VFIO_DEVICE_RESET takes no argument; `fd` is the device file.
        let ret = unsafe { ioctl(&Fd(self.fd), VFIO_DEVICE_RESET()) };
        if ret < 0 {
            return Err(VfioError::Reset(std::io::Error::last_os_error()));
        }
        Ok(())
    }

    fn plane_kind(&self) -> Option<bool> {
        let probe = |kind| self.gfx_plane(VFIO_GFX_PLANE_TYPE_PROBE | kind).is_ok();
        if probe(VFIO_GFX_PLANE_TYPE_DMABUF) {
            Some(true)
        } else if probe(VFIO_GFX_PLANE_TYPE_REGION) {
            Some(false)
        } else {
            None
        }
    }

    fn query_plane(&self, dmabuf: bool) -> Result<Option<PlaneInfo>, VfioError> {
        let kind = if dmabuf {
            VFIO_GFX_PLANE_TYPE_DMABUF
        } else {
            VFIO_GFX_PLANE_TYPE_REGION
        };
        // mbochs answers the first query after a mode change with ENOMEM: once more.
        let info = self.gfx_plane(kind).or_else(|_| self.gfx_plane(kind))?;
        if info.drm_format == 0 {
            return Ok(None);
        }
        // SAFETY: both union members are a u32; which one is meant is `kind`.
        let id = unsafe { info.__bindgen_anon_1.dmabuf_id };
        Ok(Some(PlaneInfo {
            source: if dmabuf {
                PlaneSource::DmaBuf(id)
            } else {
                PlaneSource::Region(id)
            },
            drm_format: info.drm_format,
            drm_format_mod: info.drm_format_mod,
            width: info.width,
            height: info.height,
            stride: info.stride,
            size: info.size,
        }))
    }

    fn read_plane(&self, source: PlaneSource, len: usize) -> Result<Vec<u8>, VfioError> {
        let mut pixels = vec![0u8; len];
        match source {
            PlaneSource::Region(index) => {
                if !self.read(index, 0, &mut pixels) {
                    return Err(VfioError::Plane(format!(
                        "region {index} is shorter than the plane"
                    )));
                }
            }
            PlaneSource::DmaBuf(id) => {
                let mut arg = id;
                // SAFETY: the ioctl reads the u32 dma-buf id and returns a new fd or -1; `fd`
                // is the device file.
                let ret = unsafe {
                    ioctl_with_mut_ref(&Fd(self.fd), VFIO_DEVICE_GET_GFX_DMABUF(), &mut arg)
                };
                if ret < 0 {
                    return Err(VfioError::Plane(format!(
                        "dma-buf {id}: {}",
                        std::io::Error::last_os_error()
                    )));
                }
                // SAFETY: `ret` is the fd the kernel just made for us; owning it closes it.
                let buf = unsafe { std::os::fd::OwnedFd::from_raw_fd(ret) };
                copy_from_dmabuf(&buf, &mut pixels)?;
            }
        }
        Ok(pixels)
    }

    fn hot_reset_peers(&self) -> Option<Vec<ResetPeer>> {
        hot_reset_info(self.fd)
    }

    fn hot_reset(&self, groups: &[u32]) -> Result<(), VfioError> {
        let fds = groups
            .iter()
            .map(|&id| group_fd(id).ok_or(VfioError::GroupNotHeld(id)))
            .collect::<Result<Vec<_>, _>>()?;
        // struct vfio_pci_hot_reset: argsz, flags, count, then the group fds.
        let mut buf: Vec<u32> = vec![0, 0, fds.len() as u32];
        buf.extend(fds.iter().map(|&fd| fd as u32));
        buf[0] = (buf.len() * 4) as u32;
        // SAFETY: the kernel reads argsz bytes of `buf` (the header and `count` fds, each an
        // open group file of this process) and writes nothing; `fd` is the device file.
        let ret = unsafe {
            ioctl_with_mut_ptr(&Fd(self.fd), VFIO_DEVICE_PCI_HOT_RESET(), buf.as_mut_ptr())
        };
        if ret < 0 {
            return Err(VfioError::HotReset(std::io::Error::last_os_error()));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_alignment_is_the_largest_power_of_two_up_to_1g() {
        assert_eq!(huge_alignment(100), 4096);
        assert_eq!(huge_alignment(16 << 20), 16 << 20);
        assert_eq!(huge_alignment((16 << 20) - 4096), 8 << 20);
        assert_eq!(huge_alignment(256 << 30), 1 << 30);
    }

    #[test]
    fn aligned_mappings_are_congruent_to_their_file_offset() {
        // SAFETY: a valid NUL-terminated name; returns a new fd or -1.
        let fd = unsafe { libc::memfd_create(c"vfio-align-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: `fd` is the memfd just made.
        assert_eq!(unsafe { libc::ftruncate(fd, 8 << 20) }, 0);
        for (offset, len) in [(0u64, 4u64 << 20), (4096, 2 << 20), (2 << 20, 64 << 10)] {
            let align = huge_alignment(len);
            let addr = map_aligned(fd, offset, len, align).unwrap();
            assert_eq!(addr % align, offset % align, "offset {offset:#x}");
            // The mapping is the file's: a write through it reads back with pread.
            // SAFETY: `addr` is a fresh read-write mapping of at least 8 bytes.
            unsafe { std::ptr::write_volatile(addr as *mut u64, 0x1122_3344_5566_7788) };
            let mut back = [0u8; 8];
            // SAFETY: `back` is 8 writable bytes; `fd` is the memfd.
            let n = unsafe { libc::pread(fd, back.as_mut_ptr().cast(), 8, offset as i64) };
            assert_eq!(n, 8);
            assert_eq!(u64::from_le_bytes(back), 0x1122_3344_5566_7788);
            // SAFETY: the mapping made above, used no more.
            unsafe { libc::munmap(addr as *mut libc::c_void, len as usize) };
        }
        // SAFETY: closing the memfd made here.
        unsafe { libc::close(fd) };
    }
}
