//! The vtest protocol (virglrenderer's vtest_protocol.h, version 3 as Mesa's venus driver uses
//! it): a 2-word header (length in words, command id), then the command's words. Parsing checks
//! every length and count against the message it came in.

use thiserror::Error;

pub const DEFAULT_SOCKET: &str = "/tmp/.virgl_test";
pub const PROTOCOL_VERSION: u32 = 3;

pub const RESOURCE_UNREF: u32 = 3;
pub const SUBMIT_CMD: u32 = 6;
pub const RESOURCE_BUSY_WAIT: u32 = 7;
pub const CREATE_RENDERER: u32 = 8;
pub const PING_PROTOCOL_VERSION: u32 = 10;
pub const PROTOCOL_VERSION_CMD: u32 = 11;
pub const GET_PARAM: u32 = 15;
pub const GET_CAPSET: u32 = 16;
pub const CONTEXT_INIT: u32 = 17;
pub const RESOURCE_CREATE_BLOB: u32 = 18;
pub const SYNC_CREATE: u32 = 19;
pub const SYNC_UNREF: u32 = 20;
pub const SYNC_READ: u32 = 21;
pub const SYNC_WRITE: u32 = 22;
pub const SYNC_WAIT: u32 = 23;
pub const SUBMIT_CMD2: u32 = 24;

pub const PARAM_MAX_TIMELINE_COUNT: u32 = 1;
pub const BLOB_TYPE_HOST3D: u32 = 2;
pub const SYNC_WAIT_FLAG_ANY: u32 = 1;
pub const SUBMIT_CMD2_FLAG_RING_IDX: u32 = 1;

/// Largest message accepted, in words (a command stream of up to 64 MiB).
pub const MAX_MESSAGE_WORDS: u32 = 16 << 20;

#[derive(Debug, Error, PartialEq, Eq)]
pub enum VtestProtocolError {
    #[error("message of {0} words is over the limit")]
    TooLong(u32),
    #[error("command {cmd}: {words} words, expected {expected}")]
    BadLength {
        cmd: u32,
        words: usize,
        expected: String,
    },
    #[error("SUBMIT_CMD2: {0}")]
    BadSubmit(String),
    #[error("unknown vtest command {0}")]
    UnknownCommand(u32),
}

/// One batch of SUBMIT_CMD2: a command stream to run, then syncs to signal on a timeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    pub flags: u32,
    pub ring_idx: u32,
    pub commands: Vec<u8>,
    pub syncs: Vec<(u32, u64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    CreateRenderer(String),
    PingProtocolVersion,
    ProtocolVersion(u32),
    BusyWait,
    GetParam(u32),
    GetCapset {
        id: u32,
        version: u32,
    },
    ContextInit {
        capset_id: u32,
    },
    ResourceCreateBlob {
        blob_type: u32,
        flags: u32,
        size: u64,
        blob_id: u64,
    },
    ResourceUnref(u32),
    SyncCreate(u64),
    SyncUnref(u32),
    SyncRead(u32),
    SyncWrite {
        id: u32,
        value: u64,
    },
    SyncWait {
        flags: u32,
        timeout_ms: u32,
        syncs: Vec<(u32, u64)>,
    },
    SubmitCmd2(Vec<Batch>),
}

fn words(payload: &[u8]) -> Vec<u32> {
    payload
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes(c.try_into().unwrap()))
        .collect()
}

fn exact(cmd: u32, w: &[u32], n: usize) -> Result<(), VtestProtocolError> {
    if w.len() != n {
        return Err(VtestProtocolError::BadLength {
            cmd,
            words: w.len(),
            expected: n.to_string(),
        });
    }
    Ok(())
}

fn lo_hi(lo: u32, hi: u32) -> u64 {
    u64::from(lo) | (u64::from(hi) << 32)
}

/// Parses one message's payload (`payload.len()` is the header's word count times 4).
pub fn parse(cmd: u32, payload: &[u8]) -> Result<Request, VtestProtocolError> {
    let w = words(payload);
    Ok(match cmd {
        CREATE_RENDERER => {
            let name = payload.split(|&b| b == 0).next().unwrap_or_default();
            Request::CreateRenderer(String::from_utf8_lossy(name).into_owned())
        }
        PING_PROTOCOL_VERSION => Request::PingProtocolVersion,
        PROTOCOL_VERSION_CMD => {
            exact(cmd, &w, 1)?;
            Request::ProtocolVersion(w[0])
        }
        RESOURCE_BUSY_WAIT => {
            exact(cmd, &w, 2)?;
            Request::BusyWait
        }
        GET_PARAM => {
            exact(cmd, &w, 1)?;
            Request::GetParam(w[0])
        }
        GET_CAPSET => {
            exact(cmd, &w, 2)?;
            Request::GetCapset {
                id: w[0],
                version: w[1],
            }
        }
        CONTEXT_INIT => {
            exact(cmd, &w, 1)?;
            Request::ContextInit { capset_id: w[0] }
        }
        RESOURCE_CREATE_BLOB => {
            exact(cmd, &w, 6)?;
            Request::ResourceCreateBlob {
                blob_type: w[0],
                flags: w[1],
                size: lo_hi(w[2], w[3]),
                blob_id: lo_hi(w[4], w[5]),
            }
        }
        RESOURCE_UNREF => {
            exact(cmd, &w, 1)?;
            Request::ResourceUnref(w[0])
        }
        SYNC_CREATE => {
            exact(cmd, &w, 2)?;
            Request::SyncCreate(lo_hi(w[0], w[1]))
        }
        SYNC_UNREF => {
            exact(cmd, &w, 1)?;
            Request::SyncUnref(w[0])
        }
        SYNC_READ => {
            exact(cmd, &w, 1)?;
            Request::SyncRead(w[0])
        }
        SYNC_WRITE => {
            exact(cmd, &w, 3)?;
            Request::SyncWrite {
                id: w[0],
                value: lo_hi(w[1], w[2]),
            }
        }
        SYNC_WAIT => {
            if w.len() < 2 || !(w.len() - 2).is_multiple_of(3) {
                return Err(VtestProtocolError::BadLength {
                    cmd,
                    words: w.len(),
                    expected: "2 + 3n".into(),
                });
            }
            let syncs = w[2..]
                .chunks_exact(3)
                .map(|s| (s[0], lo_hi(s[1], s[2])))
                .collect();
            Request::SyncWait {
                flags: w[0],
                timeout_ms: w[1],
                syncs,
            }
        }
        SUBMIT_CMD2 => Request::SubmitCmd2(parse_submit(&w)?),
        other => return Err(VtestProtocolError::UnknownCommand(other)),
    })
}

/// SUBMIT_CMD2: a batch count, the batch headers (6 words at protocol version 3, 8 in newer
/// senders; the first batch's command offset tells which), the streams, then (id, lo, hi) syncs.
fn parse_submit(w: &[u32]) -> Result<Vec<Batch>, VtestProtocolError> {
    let bad = |m: &str| VtestProtocolError::BadSubmit(m.to_string());
    let Some(&count) = w.first() else {
        return Ok(Vec::new());
    };
    let count = count as usize;
    if count == 0 {
        return Ok(Vec::new());
    }
    let header_words = [6usize, 8]
        .into_iter()
        .find(|&k| w.get(2) == Some(&((1 + count * k) as u32)) && count * k < w.len())
        .ok_or_else(|| bad("batch headers do not match the first batch's command offset"))?;
    let mut batches = Vec::with_capacity(count.min(w.len()));
    for i in 0..count {
        let h = &w[1 + i * header_words..1 + (i + 1) * header_words];
        let (flags, cmd_off, cmd_size, sync_off, sync_count, ring_idx) = (
            h[0],
            h[1] as usize,
            h[2] as usize,
            h[3] as usize,
            h[4] as usize,
            h[5],
        );
        let cmds = cmd_off
            .checked_add(cmd_size)
            .filter(|&e| e <= w.len())
            .ok_or_else(|| bad("command stream out of range"))?;
        let syncs_end = sync_count
            .checked_mul(3)
            .and_then(|n| n.checked_add(sync_off))
            .filter(|&e| e <= w.len())
            .ok_or_else(|| bad("syncs out of range"))?;
        let commands = w[cmd_off..cmds]
            .iter()
            .flat_map(|x| x.to_le_bytes())
            .collect();
        let syncs = w[sync_off..syncs_end]
            .chunks_exact(3)
            .map(|s| (s[0], lo_hi(s[1], s[2])))
            .collect();
        let ring_idx = if flags & SUBMIT_CMD2_FLAG_RING_IDX != 0 {
            ring_idx
        } else {
            0
        };
        batches.push(Batch {
            flags,
            ring_idx,
            commands,
            syncs,
        });
    }
    Ok(batches)
}

/// A reply: header (length in words, command id) and the words.
pub fn reply(cmd: u32, body: &[u32]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + body.len() * 4);
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&cmd.to_le_bytes());
    for w in body {
        out.extend_from_slice(&w.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(w: &[u32]) -> Vec<u8> {
        w.iter().flat_map(|x| x.to_le_bytes()).collect()
    }

    #[test]
    fn submit_cmd2_with_six_word_headers() {
        // one batch: header at 1..7, 2 command words at 7, one sync at 9
        let w = [
            1,
            SUBMIT_CMD2_FLAG_RING_IDX,
            7,
            2,
            9,
            1,
            3,
            0xaa,
            0xbb,
            5,
            7,
            0,
        ];
        let Request::SubmitCmd2(b) = parse(SUBMIT_CMD2, &bytes(&w)).unwrap() else {
            panic!()
        };
        assert_eq!(
            b,
            vec![Batch {
                flags: 1,
                ring_idx: 3,
                commands: bytes(&[0xaa, 0xbb]),
                syncs: vec![(5, 7)]
            }]
        );
    }

    #[test]
    fn submit_cmd2_with_eight_word_headers() {
        let w = [1, 0, 9, 1, 10, 0, 9, 0, 0, 0x11];
        let Request::SubmitCmd2(b) = parse(SUBMIT_CMD2, &bytes(&w)).unwrap() else {
            panic!()
        };
        assert_eq!(b[0].commands, bytes(&[0x11]));
        assert_eq!(b[0].ring_idx, 0, "no RING_IDX flag: ring 0");
    }

    #[test]
    fn hostile_submits_are_rejected() {
        for w in [
            vec![1, 0, 7, 100, 7, 0, 0],      // stream past the end
            vec![1, 0, 7, 0, 7, u32::MAX, 0], // sync count overflow
            vec![u32::MAX, 0, 0, 0],          // absurd batch count
            vec![2, 0, 13, 0, 13, 0, 0],      // headers cut short
        ] {
            assert!(
                matches!(
                    parse(SUBMIT_CMD2, &bytes(&w)),
                    Err(VtestProtocolError::BadSubmit(_))
                ),
                "{w:?}"
            );
        }
    }

    #[test]
    fn fixed_size_commands_check_their_length() {
        assert!(parse(GET_CAPSET, &bytes(&[4])).is_err());
        assert_eq!(
            parse(GET_CAPSET, &bytes(&[4, 0])).unwrap(),
            Request::GetCapset { id: 4, version: 0 }
        );
        assert!(parse(SYNC_WAIT, &bytes(&[0, 0, 1])).is_err());
        assert_eq!(parse(99, &[]), Err(VtestProtocolError::UnknownCommand(99)));
    }
}
