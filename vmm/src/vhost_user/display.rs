//! The display side of vhost-user-gpu: what the guest shows goes to QEMU over the socket QEMU
//! hands the backend with `VHOST_USER_GPU_SET_SOCKET` (QEMU's docs/interop/vhost-user-gpu.rst).
//!
//! The device calls [`VhostUserDisplay`] (a [`DisplayListener`]); it turns scanout changes into
//! `VHOST_USER_GPU_SCANOUT`, damage into `VHOST_USER_GPU_UPDATE` with the damaged rectangle's
//! pixels as XRGB8888 (what QEMU's frontend wraps in a pixman x8r8g8b8 image), and cursor changes
//! into `CURSOR_UPDATE` / `CURSOR_POS` / `CURSOR_POS_HIDE`. The cursor is QEMU's cursor sprite
//! only: updates carry the primary plane, so GTK/VNC do not show it twice. DMABUF scanouts would need a host GPU with
//! exportable buffers; the backends here (software, lavapipe) have none, so they are not sent.

use std::sync::{Arc, Mutex};

use gpu_interface::display::RectView;
use gpu_interface::{CursorImage, DisplayListener, PixelFormat, Rect, ScanoutId};
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
}

impl DisplaySocket {
    pub fn set(&self, socket: Option<GpuBackend>) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        slot.socket = socket;
    }

    pub fn get(&self) -> Option<GpuBackend> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .socket
            .clone()
    }

    /// Runs `send` on the socket if there is one; a failed send drops the socket (QEMU went away)
    /// so that later updates do not retry a dead peer.
    fn send(&self, what: &str, send: impl FnOnce(&GpuBackend) -> std::io::Result<()>) {
        let mut slot = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(socket) = slot.socket.as_ref() {
            if let Err(err) = send(socket) {
                tracing::warn!("vhost-user-gpu {what}: {err}; dropping the display socket");
                slot.socket = None;
            }
        }
    }
}

/// Forwards the device's display changes to QEMU.
pub struct VhostUserDisplay {
    socket: DisplaySocket,
    /// Reused buffer for the pixels of one update, when they cannot be sent in place.
    pixels: Vec<u8>,
}

impl VhostUserDisplay {
    pub fn new(socket: DisplaySocket) -> Self {
        VhostUserDisplay {
            socket,
            pixels: Vec::new(),
        }
    }
}

/// The pixels of `view` as packed XRGB8888 rows: borrowed from `view` when they already are,
/// else converted into `out`.
pub fn packed_xrgb<'a>(view: &RectView<'a>, out: &'a mut Vec<u8>) -> &'a [u8] {
    let direct = matches!(view.format, PixelFormat::XRGB8888 | PixelFormat::ARGB8888);
    if let (true, Some(packed)) = (direct, view.packed()) {
        return packed;
    }
    out.clear();
    out.reserve(view.width as usize * view.height as usize * 4);
    for y in 0..view.height {
        let Some(row) = view.row(y) else { break };
        if direct {
            out.extend_from_slice(row);
        } else {
            for px in row.chunks_exact(4) {
                let mut converted = [0u8; 4];
                PixelFormat::XRGB8888.from_rgba(view.format.to_rgba(px), &mut converted);
                out.extend_from_slice(&converted);
            }
        }
    }
    out
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

    fn scanout_updated(&mut self, scanout: ScanoutId, rect: Rect, pixels: &RectView<'_>) {
        if rect.is_empty() || (pixels.width, pixels.height) != (rect.width, rect.height) {
            tracing::warn!(scanout, ?rect, "update does not match its pixels; not sent");
            return;
        }
        // The damage rectangle is what changed: no full-frame comparison with what QEMU shows.
        let data = packed_xrgb(pixels, &mut self.pixels);
        if data.len() != rect.width as usize * rect.height as usize * 4 {
            tracing::warn!(scanout, ?rect, "update pixels short; not sent");
            return;
        }
        let msg = VhostUserGpuUpdate {
            scanout_id: scanout,
            x: rect.x,
            y: rect.y,
            width: rect.width,
            height: rect.height,
        };
        self.socket.send("UPDATE", |s| s.update_scanout(&msg, data));
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
    fn packed_xrgb_converts_rows_and_lends_packed_xrgb() {
        // 3x2 image in ABGR8888 (bytes R, G, B, A); pixel (1,1) is pure red.
        let mut data = vec![0u8; 3 * 2 * 4];
        PixelFormat::ABGR8888.from_rgba([255, 0, 0, 255], &mut data[16..20]);
        let abgr = |rect| RectView::of_image(&data, (3, 2), 12, PixelFormat::ABGR8888, rect);
        let view = abgr(Rect::new(1, 1, 2, 1)).unwrap();
        let mut out = Vec::new();
        let packed = packed_xrgb(&view, &mut out);
        assert_eq!(packed.len(), 8);
        // XRGB8888 in memory is B, G, R, X.
        assert_eq!(&packed[0..4], &[0, 0, 255, 255]);
        assert!(abgr(Rect::new(2, 0, 2, 1)).is_none());
        assert!(abgr(Rect::new(u32::MAX, 0, 2, 1)).is_none());

        // XRGB rows: a full-width rectangle is lent as is, a narrower one is packed.
        let xrgb: Vec<u8> = (0..48).collect();
        let xrgb_view = |rect| RectView::of_image(&xrgb, (3, 4), 12, PixelFormat::XRGB8888, rect);
        let full = xrgb_view(Rect::new(0, 1, 3, 2)).unwrap();
        let mut out = Vec::new();
        let lent = packed_xrgb(&full, &mut out);
        assert_eq!(lent.as_ptr(), xrgb[12..].as_ptr(), "no copy");
        assert_eq!(lent.len(), 24);
        let mut out = Vec::new();
        let narrow = xrgb_view(Rect::new(1, 2, 1, 2)).unwrap();
        assert_eq!(
            packed_xrgb(&narrow, &mut out),
            &[28, 29, 30, 31, 40, 41, 42, 43]
        );
    }
}
