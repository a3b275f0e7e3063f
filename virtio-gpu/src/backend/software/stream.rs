//! The software backend's private capset and command stream.
//!
//! Capset [`CAPSET_ID`] = [`VIRTIO_GPU_CAPSET_VG`] (30: Linux guests see ids up to 30),
//! version 1. Its capability blob is [`CAPSET_SIZE`] bytes: four little-endian u32 words
//! `[CAPSET_MAGIC, 1 (version), supported-opcode bitmask, MAX_DELAY_US]`.
//!
//! A command stream (the SUBMIT_3D payload) is a sequence of little-endian u32 words. Each command
//! starts with a header word `opcode | (payload_words << 16)` followed by exactly that many
//! payload words; the payload length must match the opcode's:
//!
//! | opcode | name        | payload words                                            |
//! |--------|-------------|----------------------------------------------------------|
//! | 0      | NOP         | none                                                     |
//! | 1      | FILL        | resource, x, y, width, height, value (LE pixel bytes)    |
//! | 2      | COPY        | src, dst, src_x, src_y, dst_x, dst_y, width, height      |
//! | 3      | DELAY_US    | microseconds (at most [`MAX_DELAY_US`])                  |
//! | 4      | FILL_BLOB   | resource, offset_lo, offset_hi, length, byte value       |
//!
//! Resources named by a command must be attached to the submitting context. FILL and COPY work on
//! layer 0 of image resources (2D or 3D); FILL_BLOB on host blobs. DELAY_US keeps the ring busy,
//! so fences created after it signal that much later.

use gpu_interface::{CapsetInfo, GpuError, GpuResult, Rect};

use crate::protocol::VIRTIO_GPU_CAPSET_VG;

pub const CAPSET_ID: u32 = VIRTIO_GPU_CAPSET_VG;
// Linux guests see only ids up to 30 (see `VIRTIO_GPU_CAPSET_VG`).
const _: () = assert!(CAPSET_ID <= 30);
pub const CAPSET_VERSION: u32 = 1;
/// "VGSW" as a little-endian word.
pub const CAPSET_MAGIC: u32 = u32::from_le_bytes(*b"VGSW");
pub const CAPSET_SIZE: u32 = 16;
pub const MAX_DELAY_US: u32 = 100_000;

pub const OP_NOP: u16 = 0;
pub const OP_FILL: u16 = 1;
pub const OP_COPY: u16 = 2;
pub const OP_DELAY_US: u16 = 3;
pub const OP_FILL_BLOB: u16 = 4;

/// One decoded command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    Nop,
    Fill {
        resource: u32,
        rect: Rect,
        value: u32,
    },
    Copy {
        src: u32,
        dst: u32,
        src_rect: Rect,
        dst_x: u32,
        dst_y: u32,
    },
    DelayUs(u32),
    FillBlob {
        resource: u32,
        offset: u64,
        len: u32,
        value: u8,
    },
}

/// What GET_CAPSET_INFO reports for this capset.
pub fn capset_info() -> CapsetInfo {
    CapsetInfo {
        id: CAPSET_ID,
        max_version: CAPSET_VERSION,
        max_size: CAPSET_SIZE,
    }
}

/// The capability blob for GET_CAPSET of `id` at `version`, if this is our capset.
pub fn capset(id: u32, version: u32) -> GpuResult<Vec<u8>> {
    if id != CAPSET_ID || version > CAPSET_VERSION {
        return Err(GpuError::InvalidParameter("unknown capset or version"));
    }
    Ok(capset_blob())
}

/// The capability blob of version 1.
pub fn capset_blob() -> Vec<u8> {
    let mask = (1u32 << OP_NOP)
        | (1 << OP_FILL)
        | (1 << OP_COPY)
        | (1 << OP_DELAY_US)
        | (1 << OP_FILL_BLOB);
    [CAPSET_MAGIC, CAPSET_VERSION, mask, MAX_DELAY_US]
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect()
}

/// Encodes a command (for guests, tests and the demo).
pub fn encode(cmd: &Command, out: &mut Vec<u8>) {
    let (op, payload): (u16, Vec<u32>) = match *cmd {
        Command::Nop => (OP_NOP, vec![]),
        Command::Fill {
            resource,
            rect,
            value,
        } => (
            OP_FILL,
            vec![resource, rect.x, rect.y, rect.width, rect.height, value],
        ),
        Command::Copy {
            src,
            dst,
            src_rect: r,
            dst_x,
            dst_y,
        } => (
            OP_COPY,
            vec![src, dst, r.x, r.y, dst_x, dst_y, r.width, r.height],
        ),
        Command::DelayUs(us) => (OP_DELAY_US, vec![us]),
        Command::FillBlob {
            resource,
            offset,
            len,
            value,
        } => (
            OP_FILL_BLOB,
            vec![
                resource,
                offset as u32,
                (offset >> 32) as u32,
                len,
                u32::from(value),
            ],
        ),
    };
    let header = u32::from(op) | ((payload.len() as u32) << 16);
    out.extend_from_slice(&header.to_le_bytes());
    for w in payload {
        out.extend_from_slice(&w.to_le_bytes());
    }
}

/// Decodes a whole stream; any malformed command rejects the stream before anything runs.
pub fn decode(bytes: &[u8]) -> GpuResult<Vec<Command>> {
    if !bytes.len().is_multiple_of(4) {
        return Err(GpuError::InvalidParameter(
            "command stream is not whole words",
        ));
    }
    let words: Vec<u32> = bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut cmds = Vec::new();
    let mut rest = words.as_slice();
    while let Some((&header, tail)) = rest.split_first() {
        let op = (header & 0xffff) as u16;
        let n = (header >> 16) as usize;
        let payload = tail
            .get(..n)
            .ok_or(GpuError::InvalidParameter("truncated command"))?;
        rest = tail.get(n..).unwrap_or(&[]);
        let cmd = match (op, payload) {
            (OP_NOP, []) => Command::Nop,
            (OP_FILL, &[resource, x, y, w, h, value]) => Command::Fill {
                resource,
                rect: Rect::new(x, y, w, h),
                value,
            },
            (OP_COPY, &[src, dst, sx, sy, dst_x, dst_y, w, h]) => Command::Copy {
                src,
                dst,
                src_rect: Rect::new(sx, sy, w, h),
                dst_x,
                dst_y,
            },
            (OP_DELAY_US, &[us]) if us <= MAX_DELAY_US => Command::DelayUs(us),
            (OP_FILL_BLOB, &[resource, lo, hi, len, value]) if value <= 0xff => {
                let offset = u64::from(lo) | (u64::from(hi) << 32);
                Command::FillBlob {
                    resource,
                    offset,
                    len,
                    value: value as u8,
                }
            }
            _ => return Err(GpuError::InvalidParameter("unknown or malformed command")),
        };
        cmds.push(cmd);
    }
    Ok(cmds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_rejects_garbage() {
        let cmds = [
            Command::Nop,
            Command::Fill {
                resource: 3,
                rect: Rect::new(1, 2, 3, 4),
                value: 0xff00ff00,
            },
            Command::Copy {
                src: 1,
                dst: 2,
                src_rect: Rect::new(0, 0, 8, 8),
                dst_x: 4,
                dst_y: 4,
            },
            Command::DelayUs(500),
            Command::FillBlob {
                resource: 9,
                offset: 1 << 33,
                len: 16,
                value: 0xab,
            },
        ];
        let mut bytes = Vec::new();
        for c in &cmds {
            encode(c, &mut bytes);
        }
        assert_eq!(decode(&bytes).unwrap(), cmds);
        assert!(decode(&bytes[..bytes.len() - 4]).is_err(), "truncated");
        assert!(decode(&bytes[..3]).is_err(), "partial word");
        assert!(decode(&[0x07, 0, 0, 0]).is_err(), "unknown opcode");
        assert!(
            decode(&[3, 0, 1, 0, 0xff, 0xff, 0xff, 0xff]).is_err(),
            "delay too long"
        );
        assert!(
            decode(&[1, 0, 0xff, 0xff]).is_err(),
            "payload longer than stream"
        );
        assert_eq!(capset_blob().len(), CAPSET_SIZE as usize);
    }

    #[test]
    fn capset_id_fits_linux_mask_and_context_init() {
        use crate::protocol::*;
        // CONTEXT_INIT carries the capset id in 8 bits.
        assert_eq!(
            CAPSET_ID & VIRTIO_GPU_CONTEXT_INIT_CAPSET_ID_MASK,
            CAPSET_ID
        );
        let assigned = [
            VIRTIO_GPU_CAPSET_VIRGL,
            VIRTIO_GPU_CAPSET_VIRGL2,
            VIRTIO_GPU_CAPSET_GFXSTREAM_VULKAN,
            VIRTIO_GPU_CAPSET_VENUS,
            VIRTIO_GPU_CAPSET_CROSS_DOMAIN,
            VIRTIO_GPU_CAPSET_DRM,
        ];
        assert!(
            !assigned.contains(&CAPSET_ID),
            "collides with a spec capset"
        );
        assert_eq!(capset_info().id, CAPSET_ID);
        assert_eq!(capset(CAPSET_ID, CAPSET_VERSION).unwrap(), capset_blob());
        assert!(capset(CAPSET_ID, CAPSET_VERSION + 1).is_err());
        assert!(capset(VIRTIO_GPU_CAPSET_VIRGL, 1).is_err());
    }
}
