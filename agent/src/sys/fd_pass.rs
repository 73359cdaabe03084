//! Passing file descriptors over a unix socket (SCM_RIGHTS): how the exec helper hands the
//! agent the ends of the pipes or the pty master it made inside the container. The one
//! `unsafe` turns the received raw numbers, which the kernel just installed in this process,
//! into owned descriptors.

use std::io::{self, IoSlice, IoSliceMut};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

use nix::sys::socket::{recvmsg, sendmsg, ControlMessage, ControlMessageOwned, MsgFlags};

/// Most descriptors one message carries.
pub const MAX_FDS: usize = 4;

/// The tag of a message carrying descriptors.
pub const TAG_FDS: u8 = b'F';
/// The tag of a message saying none will come.
pub const TAG_FAILED: u8 = b'E';

/// Sends `fds` (none: no control message) with the one-byte payload `tag` on `socket`.
pub fn send_fds(socket: BorrowedFd<'_>, tag: u8, fds: &[BorrowedFd<'_>]) -> io::Result<()> {
    let raw: Vec<RawFd> = fds.iter().map(|f| f.as_raw_fd()).collect();
    let rights = [ControlMessage::ScmRights(&raw)];
    let cmsg: &[ControlMessage<'_>] = if raw.is_empty() { &[] } else { &rights };
    sendmsg::<()>(
        socket.as_raw_fd(),
        &[IoSlice::new(&[tag])],
        cmsg,
        MsgFlags::empty(),
        None,
    )?;
    Ok(())
}

/// Receives one message sent by [`send_fds`] (its tag and descriptors, close-on-exec); blocks.
pub fn recv_fds(socket: BorrowedFd<'_>) -> io::Result<(u8, Vec<OwnedFd>)> {
    let mut byte = [0u8; 1];
    let mut iov = [IoSliceMut::new(&mut byte)];
    let mut space = nix::cmsg_space!([RawFd; MAX_FDS]);
    let msg = recvmsg::<()>(
        socket.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )?;
    if msg.bytes == 0 {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            "the exec helper closed its socket before sending descriptors",
        ));
    }
    let mut out = Vec::new();
    for cmsg in msg.cmsgs()? {
        if let ControlMessageOwned::ScmRights(fds) = cmsg {
            for fd in fds {
                // SAFETY: the kernel installed `fd` in this process for this message just now;
                // nothing else knows the number, so this is its only owner.
                out.push(unsafe { OwnedFd::from_raw_fd(fd) });
            }
        }
    }
    Ok((byte[0], out))
}
