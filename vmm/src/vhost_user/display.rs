//! The display side of vhost-user-gpu: what the guest shows goes to QEMU over the socket QEMU
//! hands the backend with `VHOST_USER_GPU_SET_SOCKET` (QEMU's docs/interop/vhost-user-gpu.rst).
//!
//! The device calls [`VhostUserDisplay`] (a [`DisplayListener`]); it turns scanout changes into
//! `VHOST_USER_GPU_SCANOUT`, damage into `VHOST_USER_GPU_UPDATE` with the rectangle's pixels as
//! XRGB8888 (what QEMU's frontend wraps in a pixman x8r8g8b8 image), and cursor changes into
//! `CURSOR_UPDATE` / `CURSOR_POS` / `CURSOR_POS_HIDE`. DMABUF scanouts would need a host GPU with
//! exportable buffers; the backends here (software, lavapipe) have none, so they are not sent.

use std::sync::{Arc, Mutex};

use gpu_interface::{CursorImage, DisplayListener, Frame, PixelFormat, Rect, ScanoutId};
use vhost::vhost_user::gpu_message::{
    VhostUserGpuCursorPos, VhostUserGpuCursorUpdate, VhostUserGpuScanout, VhostUserGpuUpdate,
};
use vhost::vhost_user::GpuBackend;

/// The current GPU socket, replaced each time QEMU starts the device (it sends a new one).
#[derive(Clone, Default)]
pub struct DisplaySocket(Arc<Mutex<SocketSlot>>);

#[derive(Default)]
struct SocketSlot {
    socket: Option<GpuBackend>,
    /// Bumped on every change, so the listener knows QEMU's surfaces are new.
    generation: u64,
}

impl DisplaySocket {
    pub fn set(&self, socket: Option<GpuBackend>) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.socket = socket;
        slot.generation += 1;
    }

    pub fn get(&self) -> Option<GpuBackend> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .socket
            .clone()
    }

    fn generation(&self) -> u64 {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).generation
    }

    /// Runs `send` on the socket if there is one; a failed send drops the socket (QEMU went away)
    /// so that later updates do not retry a dead peer.
    fn send(&self, what: &str, send: impl FnOnce(&GpuBackend) -> std::io::Result<()>) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(socket) = slot.socket.as_ref() {
            if let Err(err) = send(socket) {
                tracing::warn!("vhost-user-gpu {what}: {err}; dropping the display socket");
                slot.socket = None;
                slot.generation += 1;
            }
        }
    }
}

/// Forwards the device's display changes to QEMU.
pub struct VhostUserDisplay {
    socket: DisplaySocket,
    /// Reused buffer for the pixels of one update.
    pixels: Vec<u8>,
    /// What QEMU's surface of each scanout holds, to send only pixels that changed.
    shown: Vec<Option<ShownFrame>>,
    /// The socket generation `shown` belongs to.
    generation: u64,
}

impl VhostUserDisplay {
    pub fn new(socket: DisplaySocket) -> Self {
        let generation = socket.generation();
        VhostUserDisplay {
            socket,
            pixels: Vec::new(),
            shown: Vec::new(),
            generation,
        }
    }

    fn shown_mut(&mut self, scanout: ScanoutId) -> &mut Option<ShownFrame> {
        let generation = self.socket.generation();
        if generation != self.generation {
            // A new QEMU surface (or none): nothing we sent before is on it.
            self.shown.clear();
            self.generation = generation;
        }
        let i = scanout as usize;
        if self.shown.len() <= i {
            self.shown.resize_with(i + 1, || None);
        }
        &mut self.shown[i]
    }
}

/// A copy of the pixels QEMU shows for one scanout, in the frame's own format.
pub struct ShownFrame {
    width: u32,
    height: u32,
    format: PixelFormat,
    /// Rows of `width * 4` bytes.
    data: Vec<u8>,
}

impl ShownFrame {
    /// A black surface, as QEMU creates one on VHOST_USER_GPU_SCANOUT.
    fn black(width: u32, height: u32, format: PixelFormat) -> Self {
        let len = width as usize * height as usize * 4;
        ShownFrame {
            width,
            height,
            format,
            data: vec![0; len],
        }
    }

    /// Compares `rect` of `frame` with what is shown, records the new pixels and returns the
    /// bounding box of the pixels that changed (`None`: nothing did). The caller has checked that
    /// `rect` fits the frame and that the frame matches this copy's size and format.
    fn update(&mut self, frame: &Frame, rect: Rect) -> Option<Rect> {
        let row_len = self.width as usize * 4;
        let (x0, x1) = (rect.x as usize * 4, (rect.x + rect.width) as usize * 4);
        let (mut left, mut right, mut top, mut bottom) = (usize::MAX, 0usize, u32::MAX, 0u32);
        for y in rect.y..rect.y + rect.height {
            let src_start = y as usize * frame.stride as usize;
            let src = frame.data.get(src_start + x0..src_start + x1)?;
            let dst = &mut self.data[y as usize * row_len + x0..y as usize * row_len + x1];
            if src == dst {
                continue;
            }
            let first = src
                .iter()
                .zip(dst.iter())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let last = src
                .iter()
                .zip(dst.iter())
                .rposition(|(a, b)| a != b)
                .unwrap_or(0);
            left = left.min((x0 + first) / 4);
            right = right.max((x0 + last) / 4 + 1);
            top = top.min(y);
            bottom = bottom.max(y + 1);
            dst.copy_from_slice(src);
        }
        (top != u32::MAX).then(|| Rect::new(left as u32, top, (right - left) as u32, bottom - top))
    }
}

/// Copies `rect` of `frame` into `out` as packed XRGB8888 rows. Returns false if `rect` does not
/// lie inside the frame (the device never does that, but the check keeps slicing safe).
pub fn pack_rect_xrgb(frame: &Frame, rect: Rect, out: &mut Vec<u8>) -> bool {
    if !rect.fits_in(frame.width, frame.height) || rect.is_empty() {
        return false;
    }
    let row_len = rect.width as usize * 4;
    out.clear();
    out.reserve(row_len * rect.height as usize);
    let direct = matches!(frame.format, PixelFormat::XRGB8888 | PixelFormat::ARGB8888);
    for y in rect.y..rect.y + rect.height {
        let start = y as usize * frame.stride as usize + rect.x as usize * 4;
        let Some(row) = frame.data.get(start..start + row_len) else {
            return false;
        };
        if direct {
            out.extend_from_slice(row);
        } else {
            for px in row.chunks_exact(4) {
                let mut converted = [0u8; 4];
                PixelFormat::XRGB8888.from_rgba(frame.format.to_rgba(px), &mut converted);
                out.extend_from_slice(&converted);
            }
        }
    }
    true
}

impl DisplayListener for VhostUserDisplay {
    fn scanout_changed(&mut self, scanout: ScanoutId, size: Option<(u32, u32)>) {
        *self.shown_mut(scanout) = None;
        let (width, height) = size.unwrap_or((0, 0));
        let msg = VhostUserGpuScanout {
            scanout_id: scanout,
            width,
            height,
        };
        self.socket.send("SCANOUT", |s| s.set_scanout(&msg));
    }

    fn scanout_updated(&mut self, scanout: ScanoutId, rect: Rect, frame: &Frame) {
        if !rect.fits_in(frame.width, frame.height) || rect.is_empty() {
            tracing::warn!(scanout, ?rect, "update outside the scanout; not sent");
            return;
        }
        // Guests mark whole screens dirty when a few pixels changed (DIRTYFB with one full
        // clip): send QEMU only the box of pixels that differ from what it already shows.
        let shown = self.shown_mut(scanout);
        let same_shape = shown.as_ref().is_some_and(|s| {
            (s.width, s.height, s.format) == (frame.width, frame.height, frame.format)
        });
        if !same_shape {
            *shown = Some(ShownFrame::black(frame.width, frame.height, frame.format));
        }
        let Some(rect) = shown.as_mut().and_then(|s| s.update(frame, rect)) else {
            return;
        };
        if !pack_rect_xrgb(frame, rect, &mut self.pixels) {
            tracing::warn!(scanout, ?rect, "update outside the scanout; not sent");
            return;
        }
        let msg = VhostUserGpuUpdate {
            scanout_id: scanout,
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
        };
        let pixels = &self.pixels;
        self.socket
            .send("UPDATE", |s| s.update_scanout(&msg, pixels));
    }

    fn cursor_changed(&mut self, scanout: ScanoutId, image: Option<(&CursorImage, &[u8])>) {
        match image {
            Some((cursor, data)) if data.len() == 64 * 64 * 4 => {
                let mut bits = [0u8; 64 * 64 * 4];
                bits.copy_from_slice(data);
                let msg = VhostUserGpuCursorUpdate {
                    pos: VhostUserGpuCursorPos {
                        scanout_id: scanout,
                        x: 0,
                        y: 0,
                    },
                    hot_x: cursor.hot_x,
                    hot_y: cursor.hot_y,
                };
                self.socket
                    .send("CURSOR_UPDATE", |s| s.cursor_update(&msg, &bits));
            }
            Some((_, data)) => {
                tracing::warn!(len = data.len(), "cursor image is not 64x64 ARGB; hidden");
                let msg = VhostUserGpuCursorPos {
                    scanout_id: scanout,
                    x: 0,
                    y: 0,
                };
                self.socket
                    .send("CURSOR_POS_HIDE", |s| s.cursor_pos_hide(&msg));
            }
            None => {
                let msg = VhostUserGpuCursorPos {
                    scanout_id: scanout,
                    x: 0,
                    y: 0,
                };
                self.socket
                    .send("CURSOR_POS_HIDE", |s| s.cursor_pos_hide(&msg));
            }
        }
    }

    fn cursor_moved(&mut self, scanout: ScanoutId, x: u32, y: u32) {
        let msg = VhostUserGpuCursorPos {
            scanout_id: scanout,
            x,
            y,
        };
        self.socket.send("CURSOR_POS", |s| s.cursor_pos(&msg));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pack_rect_converts_to_xrgb_and_clips_rows() {
        // 3x2 frame in ABGR8888 (bytes R, G, B, A); pixel (1,1) is pure red.
        let mut data = vec![0u8; 3 * 2 * 4];
        PixelFormat::ABGR8888.from_rgba([255, 0, 0, 255], &mut data[16..20]);
        let frame = Frame {
            width: 3,
            height: 2,
            stride: 12,
            format: PixelFormat::ABGR8888,
            data,
        };
        let mut out = Vec::new();
        assert!(pack_rect_xrgb(&frame, Rect::new(1, 1, 2, 1), &mut out));
        assert_eq!(out.len(), 8);
        // XRGB8888 in memory is B, G, R, X.
        assert_eq!(&out[0..4], &[0, 0, 255, 255]);
        assert!(
            !pack_rect_xrgb(&frame, Rect::new(2, 0, 2, 1), &mut out),
            "outside"
        );
        assert!(
            !pack_rect_xrgb(&frame, Rect::new(u32::MAX, 0, 2, 1), &mut out),
            "overflow"
        );
    }

    #[test]
    fn shown_frame_reports_only_changed_pixels() {
        let mut frame = Frame {
            width: 8,
            height: 4,
            stride: 32,
            format: PixelFormat::XRGB8888,
            data: vec![0; 128],
        };
        let mut shown = ShownFrame::black(8, 4, PixelFormat::XRGB8888);
        assert_eq!(
            shown.update(&frame, Rect::full(8, 4)),
            None,
            "black on black"
        );
        // Pixels (2,1) and (5,2) change: the box spans both.
        frame.data[32 + 8] = 1;
        frame.data[64 + 20 + 3] = 9;
        assert_eq!(
            shown.update(&frame, Rect::full(8, 4)),
            Some(Rect::new(2, 1, 4, 2))
        );
        assert_eq!(
            shown.update(&frame, Rect::full(8, 4)),
            None,
            "already shown"
        );
        // A change outside the damage rectangle is not looked at.
        frame.data[0] = 7;
        assert_eq!(shown.update(&frame, Rect::new(4, 0, 4, 4)), None);
        assert_eq!(
            shown.update(&frame, Rect::new(0, 0, 1, 1)),
            Some(Rect::new(0, 0, 1, 1))
        );
    }
}
