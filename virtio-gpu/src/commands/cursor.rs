//! The cursor queue: UPDATE_CURSOR and MOVE_CURSOR. Cursor commands get no response (the driver
//! posts read-only buffers); errors are logged and the command is dropped.

use gpu_interface::{CursorImage, Rect};
use zerocopy::FromBytes;

use super::display::check_scanout;
use crate::backend::compose::{self, ImageRef, CURSOR_SIZE};
use crate::device::GpuDevice;
use crate::error::CmdError;
use crate::protocol::*;
use crate::resources::ResourceKind;

/// Serves one cursor-queue request.
pub fn serve(dev: &mut GpuDevice, bytes: &[u8]) {
    if let Err(e) = run(dev, bytes) {
        tracing::warn!("virtio-gpu cursor queue: {e}");
    }
}

fn run(dev: &mut GpuDevice, bytes: &[u8]) -> Result<(), CmdError> {
    let (cmd, _) =
        UpdateCursor::read_from_prefix(bytes).map_err(|_| CmdError::ShortRequest("cursor"))?;
    let scanout = cmd.pos.scanout_id.get();
    check_scanout(dev, scanout)?;
    let (x, y) = (cmd.pos.x.get(), cmd.pos.y.get());
    match cmd.hdr.type_.get() {
        VIRTIO_GPU_CMD_MOVE_CURSOR => {}
        VIRTIO_GPU_CMD_UPDATE_CURSOR => update(dev, scanout, &cmd)?,
        other => return Err(CmdError::UnknownCommand(other)),
    }
    dev.backend.move_cursor(scanout, x, y)?;
    if let Some(l) = dev.listener.as_mut() {
        l.cursor_moved(scanout, x, y);
    }
    Ok(())
}

fn update(dev: &mut GpuDevice, scanout: u32, cmd: &UpdateCursor) -> Result<(), CmdError> {
    let id = cmd.resource_id.get();
    if id == 0 {
        dev.backend.set_cursor(scanout, None)?;
        if let Some(s) = dev.scanouts.get_mut(scanout as usize) {
            s.cursor = None;
        }
        if let Some(l) = dev.listener.as_mut() {
            l.cursor_changed(scanout, None);
        }
        return Ok(());
    }
    let res = dev.resources.get(id)?;
    let ResourceKind::TwoD {
        width,
        height,
        format,
    } = res.kind
    else {
        return Err(CmdError::InvalidParameter(
            "cursor resource is not a 2D resource",
        ));
    };
    let image = CursorImage {
        resource: id,
        hot_x: cmd.hot_x.get(),
        hot_y: cmd.hot_y.get(),
    };
    dev.backend.set_cursor(scanout, Some(image))?;
    if let Some(s) = dev.scanouts.get_mut(scanout as usize) {
        s.cursor = Some(id);
    }
    if dev.listener.is_some() {
        // The listener gets the image as 64x64 ARGB8888, read back from the backend.
        let (w, h) = (width.min(CURSOR_SIZE), height.min(CURSOR_SIZE));
        let mut data = vec![0u8; (w * h * 4) as usize];
        let mut sink = |row: u32, src: &[u8]| {
            let start = (row * w * 4) as usize;
            if let Some(dst) = data.get_mut(start..start + src.len()) {
                dst.copy_from_slice(src);
            }
            Ok(())
        };
        dev.backend
            .read_rect(id, Rect::full(w, h), &mut SinkFn(&mut sink))?;
        let view = ImageRef {
            width: w,
            height: h,
            stride: w * 4,
            format,
            data: &data,
        };
        let argb = compose::cursor_to_argb(&view)?;
        if let Some(l) = dev.listener.as_mut() {
            l.cursor_changed(scanout, Some((&image, &argb)));
        }
    }
    Ok(())
}

/// Adapts a closure to [`gpu_interface::RowSink`] (which has no blanket closure impl).
struct SinkFn<'a, F>(&'a mut F);

impl<F: FnMut(u32, &[u8]) -> gpu_interface::GpuResult<()>> gpu_interface::RowSink
    for SinkFn<'_, F>
{
    fn take_row(&mut self, row: u32, src: &[u8]) -> gpu_interface::GpuResult<()> {
        (self.0)(row, src)
    }
}
