//! `--fd`: serving a vhost-user connection QEMU (or libvirt) already opened and passed to us.
//!
//! `vhost-user-backend` serves listeners and paths only, so an inherited connected socket is
//! bridged to a private listening socket: two threads copy bytes both ways and carry the file
//! descriptors (`SCM_RIGHTS`: memory table, eventfds, the display socket) along with the bytes
//! they came with.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::Path;

use vmm_sys_util::sock_ctrl_msg::ScmSocket;

/// Most descriptors one vhost-user message carries (SET_MEM_TABLE: 8 regions).
const MAX_FDS: usize = 32;

/// Connects to the daemon's listening socket at `path` and relays between it and `inherited`
/// until either side closes.
pub fn spawn(inherited: OwnedFd, path: &Path) -> std::io::Result<()> {
    let qemu = UnixStream::from(inherited);
    let daemon = UnixStream::connect(path)?;
    let (qemu2, daemon2) = (qemu.try_clone()?, daemon.try_clone()?);
    std::thread::Builder::new()
        .name("vhost-user-relay-in".into())
        .spawn(move || pump(&qemu, &daemon))?;
    std::thread::Builder::new()
        .name("vhost-user-relay-out".into())
        .spawn(move || pump(&daemon2, &qemu2))?;
    Ok(())
}

/// vhost-user framing: a 12-byte header (request, flags, payload size), then the payload.
const HEADER_LEN: usize = 12;
/// Larger payloads are not vhost-user messages on this channel (the display socket is separate).
const MAX_PAYLOAD: usize = 1 << 20;

/// Copies whole messages, each with the descriptors that came with it. Reading a message at a
/// time matters: one read of a stream socket can span two messages, and the descriptors of the
/// second would then be sent with the first.
fn pump(from: &UnixStream, to: &UnixStream) {
    let mut msg = Vec::with_capacity(HEADER_LEN + 4096);
    loop {
        let mut fds = Vec::new();
        msg.clear();
        msg.resize(HEADER_LEN, 0);
        if !read_exact_with_fds(from, &mut msg, &mut fds) {
            break;
        }
        let size = u32::from_le_bytes([msg[8], msg[9], msg[10], msg[11]]) as usize;
        if size > MAX_PAYLOAD {
            tracing::warn!(size, "vhost-user relay: oversized message; closing");
            break;
        }
        msg.resize(HEADER_LEN + size, 0);
        if !read_exact_with_fds(from, &mut msg[HEADER_LEN..], &mut fds) {
            break;
        }
        let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
        let mut sent = match to.send_with_fds(&[&msg[..]], &raw) {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!("relay send: {err}");
                break;
            }
        };
        while sent < msg.len() {
            match to.send_with_fds(&[&msg[sent..]], &[]) {
                Ok(s) if s > 0 => sent += s,
                _ => break,
            }
        }
        // `fds` closes our copies; the peer got its own.
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}

/// Fills `buf` from `from`, collecting any descriptors that arrive. False on EOF or error.
fn read_exact_with_fds(from: &UnixStream, buf: &mut [u8], fds: &mut Vec<OwnedFd>) -> bool {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        let mut iov = [libc::iovec {
            iov_base: rest.as_mut_ptr().cast(),
            iov_len: rest.len(),
        }];
        let mut raw = [-1 as RawFd; MAX_FDS];
        // SAFETY: the iovec points into `buf`, writable for `rest.len()` bytes and alive for the
        // call; `raw` has room for MAX_FDS descriptors.
        let received = unsafe { from.recv_with_fds(&mut iov, &mut raw) };
        let (n, nfds) = match received {
            Ok((0, _)) | Err(_) => return false,
            Ok(r) => r,
        };
        // SAFETY: recvmsg just gave us these descriptors; nothing else owns them.
        fds.extend(
            raw[..nfds]
                .iter()
                .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) }),
        );
        filled += n;
    }
    true
}
