//! One vtest client: its venus context, its blobs and its CPU timelines (syncs).

use std::{
    collections::HashMap,
    io::{Read, Write},
    os::{
        fd::{AsRawFd, FromRawFd, OwnedFd},
        unix::net::UnixStream,
    },
    sync::{Arc, Condvar, Mutex},
    time::{Duration, Instant},
};

use gpu_interface::SliceLimits;
use tracing::{info, warn};

use super::protocol::{self as p, Request};
use super::VtestError;
use crate::{
    context::{Context, DeviceSelector, StreamCx},
    protocol::capset::{VenusCapset, CAPSET_ID_VENUS},
    resource::SharedMemory,
};

/// The client's syncs: 64-bit values that only grow, waited on by SYNC_WAIT.
#[derive(Default)]
struct Syncs {
    values: Mutex<(HashMap<u32, u64>, bool)>,
    changed: Condvar,
}

impl Syncs {
    fn satisfied(map: &HashMap<u32, u64>, any: bool, wanted: &[(u32, u64)]) -> bool {
        let ok = |&(id, v): &(u32, u64)| map.get(&id).is_none_or(|&cur| cur >= v);
        if any {
            wanted.iter().any(ok)
        } else {
            wanted.iter().all(ok)
        }
    }

    fn signal(&self, id: u32, value: u64) {
        let mut g = self.values.lock().unwrap();
        if let Some(v) = g.0.get_mut(&id) {
            *v = value;
        }
        self.changed.notify_all();
    }

    fn close(&self) {
        self.values.lock().unwrap().1 = true;
        self.changed.notify_all();
    }
}

pub struct Session {
    stream: UnixStream,
    selector: DeviceSelector,
    limits: SliceLimits,
    ctx: Option<Arc<Context>>,
    cx: StreamCx,
    next_resource: u32,
    next_sync: u32,
    syncs: Arc<Syncs>,
}

fn send_fd(stream: &UnixStream, fd: &OwnedFd) -> Result<(), VtestError> {
    let byte = [0u8; 1];
    let mut iov = libc::iovec {
        iov_base: byte.as_ptr() as *mut _,
        iov_len: 1,
    };
    // SAFETY: CMSG_SPACE is a pure size computation.
    let space = unsafe { libc::CMSG_SPACE(size_of::<i32>() as u32) } as usize;
    let mut control = vec![0u8; space];
    // SAFETY: an all-zero msghdr is valid; the fields that matter are set below.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = space;
    // SAFETY: msg_control points at `space` bytes, enough for one header carrying one fd.
    let cmsg = unsafe { libc::CMSG_FIRSTHDR(&msg) };
    // SAFETY: CMSG_LEN is a pure size computation.
    let len = unsafe { libc::CMSG_LEN(size_of::<i32>() as u32) } as usize;
    // SAFETY: `cmsg` points into `control` (non-null: the buffer holds one header).
    let header = unsafe { &mut *cmsg };
    header.cmsg_level = libc::SOL_SOCKET;
    header.cmsg_type = libc::SCM_RIGHTS;
    header.cmsg_len = len;
    // SAFETY: the data of a header inside `control`.
    let data = unsafe { libc::CMSG_DATA(cmsg) };
    // SAFETY: `control` has room for one fd after the header (CMSG_SPACE).
    unsafe { std::ptr::write_unaligned(data.cast::<i32>(), fd.as_raw_fd()) };
    // SAFETY: sendmsg reads the buffers above, which outlive the call.
    if unsafe { libc::sendmsg(stream.as_raw_fd(), &msg, libc::MSG_NOSIGNAL) } < 0 {
        return Err(VtestError::Io(std::io::Error::last_os_error()));
    }
    Ok(())
}

fn eventfd() -> Result<OwnedFd, VtestError> {
    // SAFETY: eventfd takes no pointers.
    let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC) };
    if fd < 0 {
        return Err(VtestError::Io(std::io::Error::last_os_error()));
    }
    // SAFETY: a fresh fd nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

impl Session {
    pub fn new(stream: UnixStream, selector: DeviceSelector) -> Self {
        Self::with_limits(stream, selector, SliceLimits::none())
    }

    /// A client of a slice: its context serves under the slice's quota and gate.
    pub fn with_limits(stream: UnixStream, selector: DeviceSelector, limits: SliceLimits) -> Self {
        Session {
            stream,
            selector,
            limits,
            ctx: None,
            cx: StreamCx::default(),
            next_resource: 1,
            next_sync: 1,
            syncs: Arc::default(),
        }
    }

    fn send(&mut self, cmd: u32, body: &[u32]) -> Result<(), VtestError> {
        self.stream.write_all(&p::reply(cmd, body))?;
        Ok(())
    }

    fn ctx(&self) -> Result<&Arc<Context>, VtestError> {
        self.ctx.as_ref().ok_or(VtestError::NoContext)
    }

    /// Serves the client until it disconnects (Ok) or breaks the protocol (Err).
    pub fn run(mut self) -> Result<(), VtestError> {
        let result = self.serve();
        self.syncs.close();
        if let Some(ctx) = self.ctx.take() {
            ctx.shutdown();
        }
        result
    }

    fn serve(&mut self) -> Result<(), VtestError> {
        loop {
            let mut hdr = [0u8; 8];
            match self.stream.read_exact(&mut hdr) {
                Ok(()) => {}
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e.into()),
            }
            let len = u32::from_le_bytes(hdr[0..4].try_into().unwrap());
            let cmd = u32::from_le_bytes(hdr[4..8].try_into().unwrap());
            if len > p::MAX_MESSAGE_WORDS {
                return Err(p::VtestProtocolError::TooLong(len).into());
            }
            // CREATE_RENDERER alone counts its length in bytes (the name and its NUL).
            let bytes = if cmd == p::CREATE_RENDERER {
                len as usize
            } else {
                len as usize * 4
            };
            let mut payload = vec![0u8; bytes];
            self.stream.read_exact(&mut payload)?;
            let req = p::parse(cmd, &payload)?;
            self.handle(req)?;
        }
    }

    fn handle(&mut self, req: Request) -> Result<(), VtestError> {
        match req {
            Request::CreateRenderer(name) => info!("vtest: client {name:?}"),
            Request::PingProtocolVersion => self.send(p::PING_PROTOCOL_VERSION, &[])?,
            Request::ProtocolVersion(v) => {
                self.send(p::PROTOCOL_VERSION_CMD, &[v.min(p::PROTOCOL_VERSION)])?
            }
            Request::BusyWait => self.send(p::RESOURCE_BUSY_WAIT, &[0])?,
            Request::GetParam(param) => {
                let (valid, value) = if param == p::PARAM_MAX_TIMELINE_COUNT {
                    (1, 64)
                } else {
                    (0, 0)
                };
                self.send(p::GET_PARAM, &[valid, value])?;
            }
            Request::GetCapset { id, .. } => {
                if id == CAPSET_ID_VENUS {
                    let caps = VenusCapset::served().to_bytes();
                    let mut body = vec![1u32];
                    body.extend(
                        caps.chunks_exact(4)
                            .map(|c| u32::from_le_bytes(c.try_into().unwrap())),
                    );
                    self.send(p::GET_CAPSET, &body)?;
                } else {
                    self.send(p::GET_CAPSET, &[0])?;
                }
            }
            Request::ContextInit { capset_id } => {
                if capset_id != CAPSET_ID_VENUS || self.ctx.is_some() {
                    return Err(VtestError::BadContext(capset_id));
                }
                let ctx = Context::with_limits(self.selector.clone(), self.limits.clone())?;
                self.ctx = Some(ctx);
            }
            Request::ResourceCreateBlob {
                blob_type,
                size,
                blob_id,
                ..
            } => {
                let size = usize::try_from(size).map_err(|_| VtestError::BadBlob("size".into()))?;
                if blob_type != p::BLOB_TYPE_HOST3D {
                    return Err(VtestError::BadBlob(format!(
                        "blob type {blob_type} (only HOST3D is served)"
                    )));
                }
                // Blob id 0 is fresh shared memory; any other is host-visible device memory.
                let mem = if blob_id == 0 {
                    Arc::new(SharedMemory::new(size)?)
                } else {
                    let mem = self.ctx()?.memory_blob(blob_id)?;
                    if size > mem.size() {
                        return Err(VtestError::BadBlob(format!(
                            "{size} bytes of a {}-byte memory",
                            mem.size()
                        )));
                    }
                    mem
                };
                let id = self.next_resource;
                self.next_resource += 1;
                self.ctx()?.add_resource(id, mem.clone());
                self.send(p::RESOURCE_CREATE_BLOB, &[id])?;
                send_fd(&self.stream, mem.fd())?;
            }
            Request::ResourceUnref(id) => {
                if self.ctx()?.remove_resource(id).is_none() {
                    warn!("vtest: unref of unknown resource {id}");
                }
            }
            Request::SyncCreate(value) => {
                let id = self.next_sync;
                self.next_sync += 1;
                self.syncs.values.lock().unwrap().0.insert(id, value);
                self.send(p::SYNC_CREATE, &[id])?;
            }
            Request::SyncUnref(id) => {
                self.syncs.values.lock().unwrap().0.remove(&id);
            }
            Request::SyncRead(id) => {
                let v = self
                    .syncs
                    .values
                    .lock()
                    .unwrap()
                    .0
                    .get(&id)
                    .copied()
                    .unwrap_or(0);
                self.send(p::SYNC_READ, &[v as u32, (v >> 32) as u32])?;
            }
            Request::SyncWrite { id, value } => self.syncs.signal(id, value),
            Request::SyncWait {
                flags,
                timeout_ms,
                syncs,
            } => self.sync_wait(flags, timeout_ms, syncs)?,
            Request::SubmitCmd2(batches) => {
                let ctx = self.ctx()?.clone();
                for b in batches {
                    tracing::debug!(
                        "vtest: batch of {} bytes on ring {} signalling {} syncs",
                        b.commands.len(),
                        b.ring_idx,
                        b.syncs.len()
                    );
                    // A malformed stream ends this client's context, and with it the worker.
                    ctx.execute(&mut self.cx, &b.commands)?;
                    if b.ring_idx == 0 {
                        // The context stream runs synchronously: its work is done here.
                        for (id, value) in b.syncs {
                            self.syncs.signal(id, value);
                        }
                    } else {
                        // A queue timeline: done when the GPU is.
                        let syncs = self.syncs.clone();
                        ctx.submit_fence(
                            b.ring_idx,
                            Box::new(move || {
                                for (id, value) in b.syncs {
                                    syncs.signal(id, value);
                                }
                            }),
                        )?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Replies with an eventfd that becomes readable when the wait is over.
    fn sync_wait(
        &mut self,
        flags: u32,
        timeout_ms: u32,
        wanted: Vec<(u32, u64)>,
    ) -> Result<(), VtestError> {
        let fd = eventfd()?;
        let any = flags & p::SYNC_WAIT_FLAG_ANY != 0;
        let signal = fd.try_clone()?;
        let syncs = self.syncs.clone();
        let deadline = (timeout_ms != u32::MAX)
            .then(|| Instant::now() + Duration::from_millis(u64::from(timeout_ms)));
        std::thread::spawn(move || {
            let mut g = syncs.values.lock().unwrap();
            while !g.1 && !Syncs::satisfied(&g.0, any, &wanted) {
                match deadline {
                    None => g = syncs.changed.wait(g).unwrap(),
                    Some(d) => {
                        let now = Instant::now();
                        if now >= d {
                            return;
                        }
                        g = syncs.changed.wait_timeout(g, d - now).unwrap().0;
                    }
                }
            }
            if Syncs::satisfied(&g.0, any, &wanted) {
                let one = 1u64.to_ne_bytes();
                // SAFETY: writes 8 bytes from a local to our own eventfd.
                unsafe { libc::write(signal.as_raw_fd(), one.as_ptr().cast(), 8) };
            }
        });
        self.send(p::SYNC_WAIT, &[])?;
        send_fd(&self.stream, &fd)
    }
}
