//! Installs a seccomp BPF filter on the calling thread (`seccomp(SECCOMP_SET_MODE_FILTER)`)
//! without setting no_new_privs — as runc does for a container whose privilege escalation is
//! allowed (seccompiler's `apply_filter` always sets it). The caller must hold CAP_SYS_ADMIN.

use std::io;

use seccompiler::sock_filter;

/// The kernel's `struct sock_fprog`.
#[repr(C)]
struct SockFprog {
    len: u16,
    filter: *const sock_filter,
}

/// Installs `program` (a compiled filter) for the calling thread and what it execs.
pub fn install_filter(program: &[sock_filter]) -> io::Result<()> {
    let len = u16::try_from(program.len())
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "seccomp program size"))?;
    let prog = SockFprog {
        len,
        filter: program.as_ptr(),
    };
    // SAFETY: `prog` points at `len` instructions of `program`, alive for the whole call; the
    // kernel copies the program and keeps no pointer into our memory.
    let rc = unsafe {
        libc::syscall(
            libc::SYS_seccomp,
            libc::SECCOMP_SET_MODE_FILTER,
            0,
            &prog as *const SockFprog,
        )
    };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
