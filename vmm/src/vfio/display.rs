//! The display of a mediated device (mbochs, mdpy, GVT-g, an NVIDIA vGPU): the vendor driver
//! describes the guest's primary plane (VFIO_DEVICE_QUERY_GFX_PLANE) as a dma-buf or a region,
//! and this serves it as the VM's scanout 0, so `vgpu run --screenshot` and SIGUSR1 save it as
//! a PNG like any virtio-gpu scanout.
//!
//! The plane's size, stride and format come from what the guest programmed into the device:
//! they are checked before any pixel is read.

use std::sync::Arc;

use gpu_interface::{Frame, GpuError, GpuResult, PixelFormat};
use tracing::{debug, warn};

use super::api::{PlaneInfo, PlaneSource, VfioDeviceApi, BAR0_REGION, CONFIG_REGION};
use crate::vm::Display;

/// The largest plane side read (a 16K display).
const MAX_SIDE: u32 = 16384;

pub struct PlaneDisplay {
    api: Arc<dyn VfioDeviceApi>,
    /// Whether the device describes its plane as dma-bufs (else as a region).
    dmabuf: bool,
    name: String,
}

impl PlaneDisplay {
    /// The display of `api`'s device, if the device has one.
    pub fn probe(api: Arc<dyn VfioDeviceApi>, name: &str) -> Option<PlaneDisplay> {
        let dmabuf = api.plane_kind()?;
        Some(PlaneDisplay {
            api,
            dmabuf,
            name: name.to_string(),
        })
    }

    /// Whether the device hands out dma-bufs (else a region).
    pub fn uses_dmabuf(&self) -> bool {
        self.dmabuf
    }
}

/// The plane's pixel format and byte length, or why it cannot be read.
pub fn check_plane(plane: &PlaneInfo) -> GpuResult<(PixelFormat, usize)> {
    let format = PixelFormat::from_fourcc(plane.drm_format)?;
    if plane.drm_format_mod != 0 {
        return Err(GpuError::Unsupported("a tiled plane (format modifier)"));
    }
    if !(1..=MAX_SIDE).contains(&plane.width) || !(1..=MAX_SIDE).contains(&plane.height) {
        return Err(GpuError::InvalidParameter("plane size"));
    }
    let row = u64::from(plane.width) * u64::from(format.bytes_per_pixel());
    let stride = u64::from(plane.stride);
    if stride < row || stride > row * 4 + 4096 {
        return Err(GpuError::InvalidParameter("plane stride"));
    }
    let len = stride * u64::from(plane.height);
    // Drivers that give a size must cover the rows the stride says they have.
    if plane.size != 0 && u64::from(plane.size) < len {
        return Err(GpuError::InvalidParameter(
            "plane smaller than stride x height",
        ));
    }
    Ok((format, len as usize))
}

/// Whether the device is a bochs display (mbochs, the mediated one).
fn is_bochs(api: &dyn VfioDeviceApi) -> bool {
    let mut ids = [0u8; 4];
    api.read(CONFIG_REGION, 0, &mut ids) && ids == [0x34, 0x12, 0x11, 0x11]
}

/// The bochs VBE registers (BAR2 0x500 + 2 x index) that place the scanout in video memory.
const VBE_REGS: u64 = 0x500;
const VBE_X_OFFSET: u64 = 8;
const VBE_Y_OFFSET: u64 = 9;

/// mbochs exports its dma-bufs read-only yet maps them only shared, so no process can map one
/// (Linux drops VM_SHARED from a shared mapping of a read-only file): its plane is read from
/// the video memory (BAR0, mapped: mbochs' BAR0 pread is wrong) at the offset its VBE registers
/// give, which is where the dma-buf's pages are.
fn read_bochs_plane(
    api: &dyn VfioDeviceApi,
    plane: &PlaneInfo,
    format: PixelFormat,
    len: usize,
) -> GpuResult<Vec<u8>> {
    let reg = |index: u64| {
        let mut b = [0u8; 2];
        api.read(2, VBE_REGS + index * 2, &mut b)
            .then(|| u64::from(u16::from_le_bytes(b)))
            .ok_or(GpuError::Backend("the VBE registers cannot be read".into()))
    };
    let offset = reg(VBE_Y_OFFSET)? * u64::from(plane.stride)
        + reg(VBE_X_OFFSET)? * u64::from(format.bytes_per_pixel());
    let memory = api
        .region(BAR0_REGION)
        .ok_or(GpuError::Backend("no video memory".into()))?;
    if offset + len as u64 > memory.size {
        return Err(GpuError::InvalidParameter("plane outside the video memory"));
    }
    let map = api
        .mmap(BAR0_REGION, 0, memory.size)
        .map_err(|e| GpuError::Backend(e.to_string()))?;
    let mut out = vec![0u8; len];
    // SAFETY: `map` keeps `memory.size` bytes mapped and offset + len is inside them; the guest
    // may write them meanwhile (a torn frame at worst), and no reference into them is kept.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (map.host_addr() + offset) as *const u8,
            out.as_mut_ptr(),
            len,
        )
    };
    Ok(out)
}

impl Display for PlaneDisplay {
    fn screenshot(&mut self, scanout: u32) -> GpuResult<Frame> {
        if scanout != 0 {
            return Err(GpuError::InvalidScanoutId(scanout));
        }
        let plane = self
            .api
            .query_plane(self.dmabuf)
            .map_err(|e| GpuError::Backend(e.to_string()))?
            .ok_or(GpuError::Backend(format!(
                "{}: the guest shows nothing on its display yet",
                self.name
            )))?;
        let (format, len) = check_plane(&plane).inspect_err(|err| {
            warn!(device = %self.name, ?plane, %err, "vfio: display plane refused");
        })?;
        let data = match self.api.read_plane(plane.source, len) {
            Ok(data) => data,
            Err(err)
                if matches!(plane.source, PlaneSource::DmaBuf(_))
                    && is_bochs(self.api.as_ref()) =>
            {
                debug!(device = %self.name, %err, "vfio: reading the plane from video memory");
                read_bochs_plane(self.api.as_ref(), &plane, format, len)?
            }
            Err(err) => return Err(GpuError::Backend(err.to_string())),
        };
        Ok(Frame {
            width: plane.width,
            height: plane.height,
            stride: plane.stride,
            format,
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vfio::api::REGION_READ;
    use crate::vfio::mock::fixtures::bochs;

    const XRGB8888: u32 = u32::from_le_bytes(*b"XR24");

    fn plane(source: PlaneSource, width: u32, height: u32, stride: u32) -> PlaneInfo {
        PlaneInfo {
            source,
            drm_format: XRGB8888,
            drm_format_mod: 0,
            width,
            height,
            stride,
            size: stride * height,
        }
    }

    #[test]
    fn a_dmabuf_plane_is_scanout_0() {
        let mock = bochs();
        assert!(
            PlaneDisplay::probe(Arc::new(mock.clone()), "whole").is_none(),
            "no display"
        );
        // A 4x2 plane with a stride of 5 pixels; pixel (x, y) = 0x00RRGGBB with R = x, G = y.
        let mut pixels = vec![0u8; 20 * 2];
        for y in 0..2 {
            for x in 0..4 {
                let at = y * 20 + x * 4;
                pixels[at..at + 4].copy_from_slice(&[0x33, y as u8, x as u8, 0]);
            }
        }
        {
            let mut state = mock.state();
            state.plane_kind = Some(true);
            state.dmabufs.insert(7, pixels.clone());
        }
        let mut display = PlaneDisplay::probe(Arc::new(mock.clone()), "mdev").unwrap();
        assert!(display.uses_dmabuf());
        assert!(display.screenshot(0).is_err(), "nothing shown yet");
        mock.state().plane = Some(plane(PlaneSource::DmaBuf(7), 4, 2, 20));
        let frame = display.screenshot(0).unwrap();
        assert_eq!((frame.width, frame.height, frame.stride), (4, 2, 20));
        assert_eq!(frame.pixel_rgba(3, 1), Some([3, 1, 0x33, 0xff]));
        assert!(matches!(
            display.screenshot(1),
            Err(GpuError::InvalidScanoutId(1))
        ));
    }

    #[test]
    fn a_region_plane_is_read_from_the_region() {
        let mock = bochs();
        mock.add_region(9, 64, REGION_READ, None);
        mock.fill(9, 0, &[0x10, 0x20, 0x30, 0]);
        {
            let mut state = mock.state();
            state.plane_kind = Some(false);
            state.plane = Some(plane(PlaneSource::Region(9), 4, 4, 16));
        }
        let mut display = PlaneDisplay::probe(Arc::new(mock.clone()), "mdpy").unwrap();
        assert!(!display.uses_dmabuf());
        let frame = display.screenshot(0).unwrap();
        assert_eq!(frame.pixel_rgba(0, 0), Some([0x30, 0x20, 0x10, 0xff]));
        // A plane larger than its region is an error, not a short read.
        mock.state().plane = Some(plane(PlaneSource::Region(9), 8, 8, 32));
        assert!(display.screenshot(0).is_err());
    }

    #[test]
    fn an_mbochs_plane_is_read_from_video_memory_where_the_vbe_registers_put_it() {
        use crate::vfio::mock::fixtures::mbochs;
        let mock = mbochs();
        mock.state().readable_mmaps = true;
        // The guest flipped to its second buffer: Y offset 768 of a 4096-byte stride.
        mock.fill(2, 0x500 + 9 * 2, &768u16.to_le_bytes());
        mock.fill(0, 768 * 4096, &[0x11, 0x22, 0x33, 0]);
        mock.fill(
            0,
            768 * 4096 + 4 * 1023 + 4096 * 767,
            &[0x44, 0x55, 0x66, 0],
        );
        // Its dma-buf cannot be read (mbochs' cannot be mapped): the fallback.
        mock.state().plane = Some(plane(PlaneSource::DmaBuf(3), 1024, 768, 4096));
        let mut display = PlaneDisplay::probe(Arc::new(mock.clone()), "mbochs").unwrap();
        let frame = display.screenshot(0).unwrap();
        assert_eq!(frame.pixel_rgba(0, 0), Some([0x33, 0x22, 0x11, 0xff]));
        assert_eq!(frame.pixel_rgba(1023, 767), Some([0x66, 0x55, 0x44, 0xff]));
        // A hostile offset past the video memory: refused.
        mock.fill(2, 0x500 + 9 * 2, &0xffffu16.to_le_bytes());
        assert!(display.screenshot(0).is_err());
    }

    #[test]
    fn guest_programmed_plane_values_are_checked() {
        let ok = plane(PlaneSource::DmaBuf(1), 1024, 768, 4096);
        assert_eq!(check_plane(&ok).unwrap().1, 4096 * 768);
        let bad = [
            PlaneInfo { width: 0, ..ok },
            PlaneInfo {
                height: 70000,
                ..ok
            },
            PlaneInfo { stride: 1000, ..ok },
            PlaneInfo {
                stride: u32::MAX,
                ..ok
            },
            PlaneInfo { size: 4096, ..ok },
            PlaneInfo {
                drm_format: 0xdead_beef,
                ..ok
            },
            PlaneInfo {
                drm_format_mod: 1,
                ..ok
            },
        ];
        for plane in bad {
            assert!(check_plane(&plane).is_err(), "{plane:?}");
        }
        // A dma-buf shorter than the plane says: an error, not memory beyond it (a device
        // other than bochs, which has no video-memory fallback).
        let mock = crate::vfio::mock::fixtures::virtio_gpu();
        {
            let mut state = mock.state();
            state.plane_kind = Some(true);
            state.dmabufs.insert(1, vec![0; 100]);
            state.plane = Some(ok);
        }
        let mut display = PlaneDisplay::probe(Arc::new(mock), "mdev").unwrap();
        assert!(display.screenshot(0).is_err());
    }
}
