//! fork() through clone3(2), optionally creating the child directly inside a cgroup v2
//! directory (CLONE_INTO_CGROUP). A process that *migrates* into a cgroup through
//! cgroup.procs takes the global cgroup threadgroup lock for writing, which waits for an RCU
//! grace period (5–25 ms on these VMs); a child born in its cgroup does not migrate at all.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};

/// Kernel `struct clone_args` (v2 layout, 88 bytes, with the cgroup field).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

const _: () = assert!(std::mem::size_of::<CloneArgs>() == 88);

const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// Which side of the fork this is.
pub enum Forked {
    Child,
    Parent { pid: i32 },
}

/// Forks, placing the child in the cgroup v2 directory `cgroup` when given.
///
/// # Safety
/// Same contract as fork(2) from Rust: the calling process must be single-threaded, so the
/// child may keep running arbitrary code.
pub unsafe fn fork_into(cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
    let mut args = CloneArgs {
        exit_signal: libc::SIGCHLD as u64,
        ..CloneArgs::default()
    };
    if let Some(fd) = cgroup {
        args.flags |= CLONE_INTO_CGROUP;
        args.cgroup = fd.as_raw_fd() as u64;
    }
    // SAFETY: `args` is a valid clone_args of the size passed; no stack is given, so the
    // child continues on a copy of this stack exactly like fork(2); the caller guarantees the
    // process is single-threaded.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            &mut args as *mut CloneArgs,
            std::mem::size_of::<CloneArgs>(),
        )
    };
    match rc {
        -1 => Err(io::Error::last_os_error()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent { pid: pid as i32 }),
    }
}
