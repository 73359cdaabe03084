//! fork() through clone3(2), optionally creating the child directly inside a cgroup v2
//! directory (CLONE_INTO_CGROUP). A process that *migrates* into a cgroup through
//! cgroup.procs takes the global cgroup threadgroup lock for writing, which waits for an RCU
//! grace period (5–25 ms on these VMs); a child born in its cgroup does not migrate at all.
//!
//! [`fork_child`] is the safe interface: it refuses to fork a multi-threaded process (the
//! child of one could deadlock on a lock another thread held), runs the child's code and ends
//! the child with `_exit`, so the child never returns into its caller's stack frames.

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
enum Forked {
    Child,
    Parent { pid: i32 },
}

/// Forks a single-threaded process, the child born in the cgroup v2 directory `cgroup` when
/// given. The child runs `child` and exits with the code it returns (`_exit`: no atexit
/// handlers, no flush of stdio buffers copied from the parent; 127 if it panics); the parent
/// gets the child's pid. Fails when this process has other threads.
pub fn fork_child(cgroup: Option<BorrowedFd<'_>>, child: impl FnOnce() -> i32) -> io::Result<i32> {
    // The kernel's own check: unshare(CLONE_VM) fails with EINVAL unless no other thread
    // (or vfork parent) shares this address space, and is a no-op otherwise. Unlike counting
    // /proc/self/task it works after setns into a container's mount namespace.
    nix::sched::unshare(nix::sched::CloneFlags::CLONE_VM).map_err(|e| {
        io::Error::other(format!(
            "refusing to fork: this process must be single-threaded (unshare(CLONE_VM): {e})"
        ))
    })?;
    // SAFETY: the process has exactly one thread (this one, which is the only one that could
    // start another), so the child may run arbitrary code after the fork.
    match unsafe { fork_into(cgroup) }? {
        Forked::Parent { pid } => Ok(pid),
        Forked::Child => {
            // A panic must not unwind into the caller's frames in the child.
            let code = std::panic::catch_unwind(std::panic::AssertUnwindSafe(child)).unwrap_or(127);
            // SAFETY: _exit ends the process at once; it has no preconditions.
            unsafe { libc::_exit(code) }
        }
    }
}

/// Forks, placing the child in the cgroup v2 directory `cgroup` when given.
///
/// # Safety
/// Same contract as fork(2) from Rust: the calling process must be single-threaded, so the
/// child may keep running arbitrary code.
unsafe fn fork_into(cgroup: Option<BorrowedFd<'_>>) -> io::Result<Forked> {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_threaded_process_is_refused() {
        let (tx, rx) = std::sync::mpsc::channel::<()>();
        let other = std::thread::spawn(move || rx.recv());
        let result = fork_child(None, || 0);
        drop(tx);
        let _ = other.join();
        let err = result.expect_err("must refuse while another thread runs");
        assert!(err.to_string().contains("single-threaded"), "{err}");
    }
}
