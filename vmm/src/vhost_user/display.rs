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
pub struct DisplaySocket(Arc<Mutex<Option<GpuBackend>>>);

impl DisplaySocket {
    pub fn set(&self, socket: Option<GpuBackend>) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = socket;
    }

    pub fn get(&self) -> Option<GpuBackend> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Runs `send` on the socket if there is one; a failed send drops the socket (QEMU went away)
    /// so that later updates do not retry a dead peer.
    fn send(&self, what: &str, send: impl FnOnce(&GpuBackend) -> std::io::Result<()>) {
        let mut guard = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(socket) = guard.as_ref() {
            if let Err(err) = send(socket) {
                tracing::warn!("vhost-user-gpu {what}: {err}; dropping the display socket");
                *guard = None;
            }
        }
    }
}

/// Forwards the device's display changes to QEMU.
pub struct VhostUserDisplay {
    socket: DisplaySocket,
    /// Reused buffer for the pixels of one update.
    pixels: Vec<u8>,
    cursor_scanout: u32,
}

impl VhostUserDisplay {
    pub fn new(socket: DisplaySocket) -> Self {
        VhostUserDisplay {
            socket,
            pixels: Vec::new(),
            cursor_scanout: 0,
        }
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
        let (width, height) = size.unwrap_or((0, 0));
        let msg = VhostUserGpuScanout {
            scanout_id: scanout,
            width,
            height,
        };
        self.socket.send("SCANOUT", |s| s.set_scanout(&msg));
    }

    fn scanout_updated(&mut self, scanout: ScanoutId, rect: Rect, frame: &Frame) {
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
        self.cursor_scanout = scanout;
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
}
