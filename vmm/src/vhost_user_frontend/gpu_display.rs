//! The frontend's end of the vhost-user-gpu display socket (QEMU's
//! docs/interop/vhost-user-gpu.rst): a GPU backend sends what its scanouts show over a socket
//! the frontend hands it with VHOST_USER_GPU_SET_SOCKET. Here the scanouts are kept as XRGB8888
//! frames (from UPDATE messages carrying pixels, or from shared buffers DMABUF_SCANOUT names
//! and DMABUF_UPDATE says changed), so `vgpu run --screenshot` works for a GPU another process
//! serves.
//!
//! The backend is another process, so every message is checked: a bad one is logged and
//! dropped, a broken stream ends the display (the VM goes on).

use std::fs::File;
use std::io::{Read, Write};
use std::os::unix::fs::FileExt;
use std::os::unix::net::UnixStream;
use std::sync::{Arc, Mutex};

use gpu_interface::{DisplayMode, Frame, GpuError, GpuResult, PixelFormat, Rect};
use tracing::{debug, info, warn};
use vmm_sys_util::sock_ctrl_msg::ScmSocket;

use crate::vm::Display;

/// vhost-user-gpu requests (GpuBackendReq in the vhost crate).
const GET_PROTOCOL_FEATURES: u32 = 1;
const SET_PROTOCOL_FEATURES: u32 = 2;
const GET_DISPLAY_INFO: u32 = 3;
const CURSOR_POS: u32 = 4;
const CURSOR_POS_HIDE: u32 = 5;
const CURSOR_UPDATE: u32 = 6;
const SCANOUT: u32 = 7;
const UPDATE: u32 = 8;
const DMABUF_SCANOUT: u32 = 9;
const DMABUF_UPDATE: u32 = 10;
const GET_EDID: u32 = 11;
const FLAG_REPLY: u32 = 0x4;
/// drm_fourcc codes of the 4-byte BGRX/BGRA layouts a frame here holds.
const DRM_FORMAT_XRGB8888: u32 = u32::from_le_bytes(*b"XR24");
const DRM_FORMAT_ARGB8888: u32 = u32::from_le_bytes(*b"AR24");
const HEADER_LEN: usize = 12;
/// virtio_gpu_resp_display_info: ctrl header (24) + 16 pmodes of rect (16) + enabled + flags.
const DISPLAY_INFO_LEN: usize = 24 + 16 * 24;
const VIRTIO_GPU_RESP_OK_DISPLAY_INFO: u32 = 0x1101;
const VIRTIO_GPU_RESP_OK_EDID: u32 = 0x1104;
const VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID: u32 = 0x1202;
/// virtio_gpu_resp_edid: ctrl header, size, padding, edid[1024].
const EDID_REPLY_LEN: usize = 24 + 8 + 1024;
const MAX_SCANOUTS: usize = 16;
/// The largest scanout side kept (an 8K display; 256 MiB a frame).
const MAX_SIDE: u32 = 8192;
/// Larger than any update of such a scanout (plus its header).
const MAX_MESSAGE: usize = (MAX_SIDE as usize * MAX_SIDE as usize * 4) + 64;

/// The scanouts as the backend last drew them.
#[derive(Default)]
struct Scanouts {
    frames: Vec<Option<Frame>>,
    /// Per scanout, the shared buffer a DMABUF_SCANOUT named, which DMABUF_UPDATEs copy from.
    buffers: Vec<Option<SharedBuffer>>,
}

/// A scanout's buffer in another process: a memfd (QEMU's vhost-user-gpu "mem" buffers), read
/// with pread so a backend that shrinks it gets short reads, or a dmabuf (udmabuf, whose memfd
/// is sealed against shrinking), mapped read-only. The scanout is the rectangle at (x, y).
struct SharedBuffer {
    pixels: BufferPixels,
    x: u32,
    y: u32,
    stride: u32,
    height: u32,
}

enum BufferPixels {
    Readable(File),
    Mapped(Mapping),
}

/// A read-only shared mapping of a dmabuf, unmapped on drop.
struct Mapping {
    ptr: *mut libc::c_void,
    len: usize,
    _file: File,
}

// SAFETY: the mapping is plain shared memory owned by this value; nothing about it is tied to
// the thread that created it.
unsafe impl Send for Mapping {}

impl Mapping {
    /// Maps `len` bytes of `file` (which must be at least that long) read-only.
    fn new(file: File, len: usize) -> std::io::Result<Mapping> {
        use std::os::fd::AsRawFd;
        // SAFETY: a fresh mapping chosen by the kernel; the fd is open; the kernel checks the
        // length against the buffer and fails otherwise.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ,
                libc::MAP_SHARED,
                file.as_raw_fd(),
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Mapping {
            ptr,
            len,
            _file: file,
        })
    }

    /// Copies `out.len()` bytes from `offset`, if they lie inside the mapping.
    fn read_at(&self, out: &mut [u8], offset: u64) -> bool {
        let Some(end) = usize::try_from(offset)
            .ok()
            .and_then(|o| o.checked_add(out.len()))
        else {
            return false;
        };
        if end > self.len {
            return false;
        }
        // SAFETY: offset..end lies inside the live mapping (checked above), so the offset
        // pointer stays within it.
        let src = unsafe { self.ptr.cast::<u8>().add(end - out.len()) };
        // SAFETY: `src..src + len` is mapped and readable for as long as `self`; `out` is ours;
        // bytes are copied without forming a reference to memory the backend may be writing, as
        // guest memory is read.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        true
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len are the mapping made in `new`, unmapped once, here.
        unsafe {
            libc::munmap(self.ptr, self.len);
        }
    }
}

impl BufferPixels {
    /// A memfd stays a file read with pread; a dmabuf (no pread) of at least `len` bytes is
    /// mapped.
    fn new(file: File, len: u64) -> std::io::Result<BufferPixels> {
        use std::io::{Seek, SeekFrom};
        let mut probe = [0u8; 1];
        match file.read_at(&mut probe, 0) {
            Ok(_) => return Ok(BufferPixels::Readable(file)),
            Err(err) if err.raw_os_error() != Some(libc::ESPIPE) => return Err(err),
            Err(_) => {}
        }
        let size = (&file).seek(SeekFrom::End(0))?;
        let len = usize::try_from(len).map_err(std::io::Error::other)?;
        if size < len as u64 {
            return Err(std::io::Error::other(format!(
                "buffer of {size} bytes, scanout needs {len}"
            )));
        }
        Ok(BufferPixels::Mapped(Mapping::new(file, len)?))
    }

    fn read_at(&self, out: &mut [u8], offset: u64) -> std::io::Result<()> {
        match self {
            BufferPixels::Readable(file) => file.read_exact_at(out, offset),
            BufferPixels::Mapped(map) if map.read_at(out, offset) => Ok(()),
            BufferPixels::Mapped(_) => Err(std::io::Error::other("outside the buffer")),
        }
    }
}

/// A GPU backend's display, shown to `--screenshot`.
#[derive(Clone)]
pub struct GpuDisplay {
    scanouts: Arc<Mutex<Scanouts>>,
}

impl Display for GpuDisplay {
    fn screenshot(&mut self, scanout: u32) -> GpuResult<Frame> {
        let scanouts = self.scanouts.lock().unwrap_or_else(|e| e.into_inner());
        scanouts
            .frames
            .get(scanout as usize)
            .and_then(Option::clone)
            .ok_or(GpuError::InvalidScanoutId(scanout))
    }
}

impl GpuDisplay {
    /// Starts serving the display socket for a backend whose scanouts have `modes`; returns
    /// the display and the socket end to hand the backend.
    pub fn start(modes: Vec<DisplayMode>) -> std::io::Result<(GpuDisplay, UnixStream)> {
        let (ours, theirs) = UnixStream::pair()?;
        let display = GpuDisplay::detached(modes.len());
        let served = display.clone();
        std::thread::Builder::new()
            .name("vhost-user-gpu-display".into())
            .spawn(move || served.serve(ours, &modes))?;
        Ok((display, theirs))
    }

    fn serve(&self, mut socket: UnixStream, modes: &[DisplayMode]) {
        loop {
            let mut header = [0u8; HEADER_LEN];
            // A DMABUF_SCANOUT's buffer fd comes with the message's first bytes.
            let (got, fd) = match socket.recv_with_fd(&mut header) {
                Ok((0, _)) => {
                    info!("vhost-user-gpu: the backend closed its display socket");
                    return;
                }
                Ok(received) => received,
                Err(err) => {
                    info!(%err, "vhost-user-gpu: display socket failed");
                    return;
                }
            };
            if let Err(err) = socket.read_exact(&mut header[got..]) {
                info!(%err, "vhost-user-gpu: the backend closed its display socket");
                return;
            }
            let [request, _flags, size] = words(&header).expect("a header is three words");
            let size = size as usize;
            if size > MAX_MESSAGE {
                warn!(
                    request,
                    size, "vhost-user-gpu: display message too large; display closed"
                );
                return;
            }
            let mut body = vec![0u8; size];
            if let Err(err) = socket.read_exact(&mut body) {
                warn!(%err, request, "vhost-user-gpu: display message cut short");
                return;
            }
            let reply = self.handle(request, &body, fd, modes);
            if let Some(payload) = reply {
                let mut message = Vec::with_capacity(HEADER_LEN + payload.len());
                message.extend_from_slice(&request.to_le_bytes());
                message.extend_from_slice(&FLAG_REPLY.to_le_bytes());
                message.extend_from_slice(&(payload.len() as u32).to_le_bytes());
                message.extend_from_slice(&payload);
                if let Err(err) = socket.write_all(&message) {
                    warn!(%err, "vhost-user-gpu: display reply failed; display closed");
                    return;
                }
            }
        }
    }

    /// One message from the backend; returns the reply payload for requests that have one.
    pub fn handle(
        &self,
        request: u32,
        body: &[u8],
        fd: Option<File>,
        modes: &[DisplayMode],
    ) -> Option<Vec<u8>> {
        match request {
            GET_PROTOCOL_FEATURES => Some(0u64.to_le_bytes().to_vec()),
            GET_DISPLAY_INFO => Some(display_info(modes)),
            // Sent (and waited for) by QEMU's backend even without the EDID protocol feature.
            GET_EDID => Some(edid(body, modes)),
            SET_PROTOCOL_FEATURES | CURSOR_POS | CURSOR_POS_HIDE | CURSOR_UPDATE => None,
            SCANOUT => {
                self.scanout(body);
                None
            }
            UPDATE => {
                self.update(body);
                None
            }
            DMABUF_SCANOUT => {
                self.dmabuf_scanout(body, fd);
                None
            }
            DMABUF_UPDATE => {
                self.dmabuf_update(body);
                // The backend waits for this (a header, no payload) before it goes on.
                Some(Vec::new())
            }
            _ => {
                warn!(request, "vhost-user-gpu: unknown display message ignored");
                None
            }
        }
    }

    /// A display with `scanouts` scanouts and no socket (for feeding messages by hand).
    pub fn detached(scanouts: usize) -> GpuDisplay {
        let count = scanouts.min(MAX_SCANOUTS);
        GpuDisplay {
            scanouts: Arc::new(Mutex::new(Scanouts {
                frames: vec![None; count],
                buffers: (0..count).map(|_| None).collect(),
            })),
        }
    }

    /// VHOST_USER_GPU_DMABUF_SCANOUT {scanout_id, x, y, width, height, fd_width, fd_height,
    /// fd_stride, fd_flags, fd_drm_fourcc} with the buffer's fd; off at 0x0 (no fd).
    fn dmabuf_scanout(&self, body: &[u8], fd: Option<File>) {
        let Some([id, x, y, width, height, fd_width, fd_height, stride, _, fourcc]) = words(body)
        else {
            warn!(len = body.len(), "vhost-user-gpu: short DMABUF_SCANOUT");
            return;
        };
        debug!(
            id,
            x,
            y,
            width,
            height,
            fd_width,
            fd_height,
            stride,
            with_fd = fd.is_some(),
            "vhost-user-gpu: DMABUF_SCANOUT"
        );
        self.set_mode(id, width, height);
        let mut scanouts = self.scanouts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = scanouts.buffers.get_mut(id as usize) else {
            return;
        };
        *slot = None;
        if width == 0 || height == 0 {
            return;
        }
        let inside = Rect::new(x, y, width, height).fits_in(fd_width, fd_height)
            && u64::from(fd_width) * 4 <= u64::from(stride);
        match fd {
            _ if !matches!(fourcc, DRM_FORMAT_XRGB8888 | DRM_FORMAT_ARGB8888) => {
                warn!(
                    fourcc,
                    "vhost-user-gpu: DMABUF_SCANOUT in a format we do not read"
                )
            }
            _ if !inside => warn!(
                x,
                y,
                width,
                height,
                fd_width,
                fd_height,
                stride,
                "vhost-user-gpu: DMABUF_SCANOUT rectangle outside its buffer"
            ),
            None => warn!("vhost-user-gpu: DMABUF_SCANOUT without a buffer"),
            Some(file) => match BufferPixels::new(file, u64::from(stride) * u64::from(fd_height)) {
                Ok(pixels) => {
                    *slot = Some(SharedBuffer {
                        pixels,
                        x,
                        y,
                        stride,
                        height: fd_height,
                    })
                }
                Err(err) => warn!(%err, "vhost-user-gpu: DMABUF_SCANOUT buffer unusable"),
            },
        }
    }

    /// VHOST_USER_GPU_DMABUF_UPDATE {scanout_id, x, y, width, height}: copy that rectangle of
    /// the shared buffer into the scanout.
    fn dmabuf_update(&self, body: &[u8]) {
        let Some([id, x, y, width, height]) = words(body) else {
            warn!(len = body.len(), "vhost-user-gpu: short DMABUF_UPDATE");
            return;
        };
        let mut guard = self.scanouts.lock().unwrap_or_else(|e| e.into_inner());
        let scanouts = &mut *guard;
        let (Some(Some(frame)), Some(Some(buffer))) = (
            scanouts.frames.get_mut(id as usize),
            scanouts.buffers.get(id as usize),
        ) else {
            warn!(id, "vhost-user-gpu: DMABUF_UPDATE without a buffer scanout");
            return;
        };
        if !Rect::new(x, y, width, height).fits_in(frame.width, frame.height) {
            warn!(
                id,
                x, y, width, height, "vhost-user-gpu: DMABUF_UPDATE outside the scanout"
            );
            return;
        }
        debug!(id, x, y, width, height, "vhost-user-gpu: DMABUF_UPDATE");
        let row = width as usize * 4;
        for line in y..y + height {
            let src_line = buffer.y + line;
            if src_line >= buffer.height {
                break;
            }
            let offset =
                u64::from(src_line) * u64::from(buffer.stride) + u64::from(buffer.x + x) * 4;
            let start = line as usize * frame.stride as usize + x as usize * 4;
            if let Err(err) = buffer
                .pixels
                .read_at(&mut frame.data[start..start + row], offset)
            {
                warn!(%err, id, "vhost-user-gpu: reading the shared scanout buffer");
                return;
            }
        }
    }

    /// VHOST_USER_GPU_SCANOUT {scanout_id, width, height}: a new mode, or off at 0x0.
    fn scanout(&self, body: &[u8]) {
        let Some([id, width, height]) = words(body) else {
            warn!(len = body.len(), "vhost-user-gpu: short SCANOUT");
            return;
        };
        self.set_mode(id, width, height);
    }

    /// Scanout `id` shows a black `width` x `height` frame from now on, or nothing at 0x0.
    fn set_mode(&self, id: u32, width: u32, height: u32) {
        let mut scanouts = self.scanouts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(slot) = scanouts.frames.get_mut(id as usize) else {
            warn!(id, "vhost-user-gpu: SCANOUT for a scanout we do not have");
            return;
        };
        if width == 0 || height == 0 {
            *slot = None;
        } else if width > MAX_SIDE || height > MAX_SIDE {
            warn!(width, height, "vhost-user-gpu: SCANOUT mode too large");
        } else {
            debug!(id, width, height, "vhost-user-gpu: scanout mode");
            *slot = Some(Frame {
                width,
                height,
                stride: width * 4,
                format: PixelFormat::XRGB8888,
                data: vec![0; width as usize * height as usize * 4],
            });
        }
    }

    /// VHOST_USER_GPU_UPDATE {scanout_id, x, y, width, height} + XRGB8888 rows.
    fn update(&self, body: &[u8]) {
        let Some([id, x, y, width, height]) = words(body) else {
            warn!(len = body.len(), "vhost-user-gpu: short UPDATE");
            return;
        };
        let pixels = &body[20..];
        let mut scanouts = self.scanouts.lock().unwrap_or_else(|e| e.into_inner());
        let Some(Some(frame)) = scanouts.frames.get_mut(id as usize) else {
            warn!(id, "vhost-user-gpu: UPDATE for a scanout that is off");
            return;
        };
        let fits = Rect::new(x, y, width, height).fits_in(frame.width, frame.height);
        let row = width as usize * 4;
        if !fits || pixels.len() != row * height as usize {
            warn!(
                id,
                x,
                y,
                width,
                height,
                bytes = pixels.len(),
                "vhost-user-gpu: UPDATE outside the scanout or of the wrong size"
            );
            return;
        }
        for (line, src) in pixels.chunks_exact(row.max(1)).enumerate() {
            let start = (y as usize + line) * frame.stride as usize + x as usize * 4;
            frame.data[start..start + row].copy_from_slice(src);
        }
    }
}

/// The first N little-endian u32 of `body`, if it has them.
fn words<const N: usize>(body: &[u8]) -> Option<[u32; N]> {
    let bytes = body.get(..N * 4)?;
    let mut out = [0u32; N];
    for (word, chunk) in out.iter_mut().zip(bytes.chunks_exact(4)) {
        *word = u32::from_le_bytes(chunk.try_into().ok()?);
    }
    Some(out)
}

/// The GET_EDID reply {scanout_id}: an EDID of the scanout's mode, or an error response.
fn edid(body: &[u8], modes: &[DisplayMode]) -> Vec<u8> {
    let mut reply = vec![0u8; EDID_REPLY_LEN];
    let mode = words(body).and_then(|[id]: [u32; 1]| Some((id, *modes.get(id as usize)?)));
    match mode {
        Some((id, mode)) => {
            let block = gpu_interface::edid::edid_for_mode(mode, id);
            reply[..4].copy_from_slice(&VIRTIO_GPU_RESP_OK_EDID.to_le_bytes());
            reply[24..28].copy_from_slice(&(block.len() as u32).to_le_bytes());
            reply[32..32 + block.len()].copy_from_slice(&block);
        }
        None => {
            warn!("vhost-user-gpu: GET_EDID for a scanout we do not have");
            reply[..4].copy_from_slice(&VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID.to_le_bytes());
        }
    }
    reply
}

/// The display-info reply: each scanout enabled at its mode.
fn display_info(modes: &[DisplayMode]) -> Vec<u8> {
    let mut reply = vec![0u8; DISPLAY_INFO_LEN];
    reply[..4].copy_from_slice(&VIRTIO_GPU_RESP_OK_DISPLAY_INFO.to_le_bytes());
    for (i, mode) in modes.iter().take(MAX_SCANOUTS).enumerate() {
        let at = 24 + i * 24;
        reply[at + 8..at + 12].copy_from_slice(&mode.width.to_le_bytes());
        reply[at + 12..at + 16].copy_from_slice(&mode.height.to_le_bytes());
        reply[at + 16..at + 20].copy_from_slice(&1u32.to_le_bytes());
    }
    reply
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn message(words: &[u32]) -> Vec<u8> {
        words.iter().flat_map(|w| w.to_le_bytes()).collect()
    }

    #[test]
    fn shared_buffer_scanouts_show_the_updated_rectangle_and_bad_ones_are_refused() {
        let mut display = GpuDisplay::detached(1);
        let modes = [DisplayMode::new(8, 4)];
        // A 16x8 XRGB8888 memfd buffer, pixel (x, y) = [x, y, 0x55, 0xff] (B, G, R, X).
        let mut file = tempfile_memfd();
        let pixels: Vec<u8> = (0..8u8)
            .flat_map(|y| (0..16u8).flat_map(move |x| [x, y, 0x55, 0xff]))
            .collect();
        file.write_all(&pixels).unwrap();
        let scanout = message(&[0, 4, 2, 8, 4, 16, 8, 64, 0, DRM_FORMAT_XRGB8888]);
        let copy = file.try_clone().unwrap();
        assert!(display
            .handle(DMABUF_SCANOUT, &scanout, Some(copy), &modes)
            .is_none());
        let reply = display.handle(DMABUF_UPDATE, &message(&[0, 0, 0, 8, 4]), None, &modes);
        assert_eq!(reply, Some(Vec::new()), "a bare acknowledgement");
        let frame = display.screenshot(0).unwrap();
        assert_eq!((frame.width, frame.height), (8, 4));
        // Scanout (0, 0) is buffer (4, 2); (7, 3) is (11, 5). pixel_rgba gives R, G, B, A.
        assert_eq!(frame.pixel_rgba(0, 0), Some([0x55, 2, 4, 0xff]));
        assert_eq!(frame.pixel_rgba(7, 3), Some([0x55, 5, 11, 0xff]));

        // Outside the scanout, outside the buffer, short, unknown: logged and dropped.
        let before = display.screenshot(0).unwrap();
        display.handle(DMABUF_UPDATE, &message(&[0, 4, 0, 8, 4]), None, &modes);
        display.handle(DMABUF_UPDATE, &message(&[0, 0]), None, &modes);
        display.handle(UPDATE, &message(&[0, 0, 0, 2, 2, 1]), None, &modes);
        display.handle(99, &[], None, &modes);
        assert_eq!(display.screenshot(0).unwrap(), before);
        let outside = message(&[0, 12, 0, 8, 4, 16, 8, 64, 0, DRM_FORMAT_XRGB8888]);
        display.handle(DMABUF_SCANOUT, &outside, Some(file), &modes);
        display.handle(DMABUF_UPDATE, &message(&[0, 0, 0, 8, 4]), None, &modes);
        assert_eq!(
            display.screenshot(0).unwrap().pixel_rgba(0, 0),
            Some([0, 0, 0, 0xff]),
            "a refused buffer is not read: the new scanout stays black"
        );

        let edid = display
            .handle(GET_EDID, &message(&[0]), None, &modes)
            .unwrap();
        assert_eq!(edid.len(), EDID_REPLY_LEN);
        assert_eq!(edid[..4], VIRTIO_GPU_RESP_OK_EDID.to_le_bytes());
        assert_eq!(
            edid[32..40],
            [0, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0],
            "EDID header"
        );
        let bad = display
            .handle(GET_EDID, &message(&[3]), None, &modes)
            .unwrap();
        assert_eq!(
            bad[..4],
            VIRTIO_GPU_RESP_ERR_INVALID_SCANOUT_ID.to_le_bytes()
        );
    }

    fn tempfile_memfd() -> File {
        use std::os::fd::FromRawFd;
        // SAFETY: memfd_create has no memory preconditions; the name is a valid C string.
        let fd = unsafe { libc::memfd_create(c"gpu-display-test".as_ptr(), libc::MFD_CLOEXEC) };
        assert!(fd >= 0);
        // SAFETY: fd is a fresh descriptor owned by nothing else.
        unsafe { File::from_raw_fd(fd) }
    }
}
