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

fn pump(from: &UnixStream, to: &UnixStream) {
    let mut buf = vec![0u8; 1 << 16];
    let mut fds = [-1 as RawFd; MAX_FDS];
    loop {
        let mut iov = [libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        }];
        // SAFETY: the iovec points into `buf`, which outlives the call and is writable for its
        // whole length; `fds` has room for MAX_FDS descriptors.
        let received = unsafe { from.recv_with_fds(&mut iov, &mut fds) };
        let (n, nfds) = match received {
            Ok((0, _)) | Err(_) => break,
            Ok(r) => r,
        };
        // SAFETY: recvmsg just gave us these descriptors; nothing else owns them.
        let owned: Vec<OwnedFd> = fds[..nfds]
            .iter()
            .map(|&fd| unsafe { OwnedFd::from_raw_fd(fd) })
            .collect();
        let raw: Vec<RawFd> = owned.iter().map(|f| f.as_raw_fd()).collect();
        let mut sent = match to.send_with_fds(&[&buf[..n]], &raw) {
            Ok(s) => s,
            Err(err) => {
                tracing::debug!("relay send: {err}");
                break;
            }
        };
        while sent < n {
            match to.send_with_fds(&[&buf[sent..n]], &[]) {
                Ok(s) if s > 0 => sent += s,
                _ => break,
            }
        }
        // `owned` closes our copies; the peer got its own.
    }
    let _ = to.shutdown(std::net::Shutdown::Both);
    let _ = from.shutdown(std::net::Shutdown::Both);
}
