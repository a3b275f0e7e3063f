//! The control socket of a slice server: one JSON request per line, one JSON reply per line.
//! `vgpu slices list|set|policy|top` are its clients; scripts can talk to it the same way.

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::Path,
    time::Duration,
};

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
pub enum Request {
    List,
    Set {
        slice: String,
        weight: u32,
    },
    Policy {
        policy: String,
    },
    /// A new slice of a `[[type]]`, named by its UUID (`vgpu mdev start`).
    Create {
        mdev_type: String,
        uuid: String,
    },
    /// Removes a slice no tenant is connected to (`vgpu mdev stop`).
    Remove {
        uuid: String,
    },
}

/// One slice as `list` reports it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SliceRow {
    pub name: String,
    pub uuid: String,
    /// The `[[type]]` it was made of; none for the slices the file names.
    #[serde(default)]
    pub mdev_type: Option<String>,
    pub socket: String,
    pub memory_used: u64,
    pub memory_quota: u64,
    pub weight: u32,
    pub share_pct: Option<u32>,
    /// What the policy aims at, 0..1, among the slices busy in the last second.
    pub target: f64,
    /// What it got in the last second, 0..1.
    pub measured: f64,
    pub used_ms: f64,
    pub jobs: u64,
    pub queued: usize,
    pub clients: usize,
}

/// A `[[type]]` as `vgpu mdev types` shows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct TypeRow {
    pub name: String,
    pub memory: u64,
    pub weight: u32,
    pub available_instances: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Reply {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    pub policy: String,
    #[serde(default)]
    pub slices: Vec<SliceRow>,
    #[serde(default)]
    pub types: Vec<TypeRow>,
}

#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("no slice server at {0} ({1}); start one with `vgpu slices serve --config FILE`")]
    Connect(String, std::io::Error),
    #[error("control socket: {0}")]
    Io(#[from] std::io::Error),
    #[error("control socket: bad reply: {0}")]
    BadReply(String),
    #[error("{0}")]
    Refused(String),
}

/// Sends one request and returns the server's reply; a refusal is an error.
pub fn call(control: &Path, request: &Request) -> Result<Reply, ControlError> {
    let stream = UnixStream::connect(control)
        .map_err(|e| ControlError::Connect(control.display().to_string(), e))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let mut line = serde_json::to_string(request).expect("requests serialize");
    line.push('\n');
    (&stream).write_all(line.as_bytes())?;
    let mut reply = String::new();
    BufReader::new(&stream).read_line(&mut reply)?;
    let reply: Reply = serde_json::from_str(&reply)
        .map_err(|e| ControlError::BadReply(format!("{e}: {reply:?}")))?;
    match (reply.ok, &reply.error) {
        (true, _) => Ok(reply),
        (false, e) => Err(ControlError::Refused(
            e.clone().unwrap_or_else(|| "refused".into()),
        )),
    }
}

/// Serves one control connection: each line a request, answered by `handle`.
pub fn serve_connection(stream: UnixStream, handle: &dyn Fn(Request) -> Reply) {
    let Ok(reader) = stream.try_clone() else {
        return;
    };
    for line in BufReader::new(reader).lines() {
        let Ok(line) = line else { return };
        let reply = match serde_json::from_str::<Request>(&line) {
            Ok(req) => handle(req),
            Err(e) => {
                tracing::warn!("slices control: bad request {line:?}: {e}");
                Reply {
                    ok: false,
                    error: Some(format!("bad request: {e}")),
                    policy: String::new(),
                    slices: Vec::new(),
                    types: Vec::new(),
                }
            }
        };
        let mut out = serde_json::to_string(&reply).expect("replies serialize");
        out.push('\n');
        if (&stream).write_all(out.as_bytes()).is_err() {
            return;
        }
    }
}

/// The table `list` and `top` print.
pub fn table(reply: &Reply) -> String {
    let mut out = format!(
        "policy {}\n{:<12} {:>17} {:>6} {:>6} {:>8} {:>9} {:>10} {:>8} {:>6} {:>7}\n",
        reply.policy,
        "SLICE",
        "MEMORY MiB",
        "WEIGHT",
        "SHARE",
        "TARGET",
        "MEASURED",
        "GPU ms",
        "JOBS",
        "QUEUE",
        "CLIENTS"
    );
    for s in &reply.slices {
        let share = s.share_pct.map_or("-".into(), |p| format!("{p}%"));
        out += &format!(
            "{:<12} {:>8.1}/{:<8.1} {:>6} {:>6} {:>7.1}% {:>8.1}% {:>10.1} {:>8} {:>6} {:>7}\n",
            s.name,
            s.memory_used as f64 / (1 << 20) as f64,
            s.memory_quota as f64 / (1 << 20) as f64,
            s.weight,
            share,
            s.target * 100.0,
            s.measured * 100.0,
            s.used_ms,
            s.jobs,
            s.queued,
            s.clients
        );
    }
    out
}
