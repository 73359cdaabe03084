//! The crate's only `unsafe`: `aya::Pod` for the map layouts, and the two raw `bpf(2)`
//! commands aya 0.13 does not offer for cgroup sock_addr programs (creating a link as an
//! owned fd, and pinning it), so attachments can outlive the agent.
//!
//! Never used for anything else; everything above this module is safe code.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd},
    path::Path,
};

use crate::layout::{
    Lb4Affinity, Lb4AffinityKey, Lb4Backend, Lb4BackendKey, Lb4Counters, Lb4MaglevChunk,
    Lb4MaglevKey, Lb4RevNat, Lb4RevNatKey, Lb4Service, Lb4ServiceKey,
};

// SAFETY: each type is `#[repr(C)]`, `Copy`, made of integers only, with explicit padding
// fields and no implicit holes (sizes asserted in `layout.rs`, offsets checked against the C
// header by its test), so every bit pattern is valid and no byte is uninitialised.
unsafe impl aya::Pod for Lb4ServiceKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Service {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4BackendKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Backend {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4MaglevKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4MaglevChunk {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4AffinityKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Affinity {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4RevNatKey {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4RevNat {}
// SAFETY: as above.
unsafe impl aya::Pod for Lb4Counters {}

const BPF_OBJ_PIN: libc::c_long = 6;
const BPF_LINK_CREATE: libc::c_long = 28;

/// The `link_create` member of `union bpf_attr` (prefix; the kernel zero-checks the rest).
#[repr(C)]
#[derive(Default)]
struct LinkCreateAttr {
    prog_fd: u32,
    target_fd: u32,
    attach_type: u32,
    flags: u32,
    rest: [u64; 4],
}

/// The `BPF_OBJ_PIN` members of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct ObjPinAttr {
    pathname: u64,
    bpf_fd: u32,
    file_flags: u32,
    path_fd: i32,
    pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &mut T) -> io::Result<libc::c_long> {
    // SAFETY: `attr` is a live, initialised `#[repr(C)]` prefix of `union bpf_attr`, and its
    // exact size is passed, as bpf(2) requires; the kernel copies it in and does not keep it.
    let ret = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            attr as *mut T as *mut libc::c_void,
            std::mem::size_of::<T>() as libc::c_uint,
        )
    };
    if ret < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(ret)
    }
}

/// `BPF_LINK_CREATE`: attaches `prog` to the cgroup `target` as a link, returned as its fd.
pub(crate) fn link_create(
    prog: BorrowedFd<'_>,
    target: BorrowedFd<'_>,
    attach_type: u32,
) -> io::Result<OwnedFd> {
    let mut attr = LinkCreateAttr {
        prog_fd: prog.as_raw_fd() as u32,
        target_fd: target.as_raw_fd() as u32,
        attach_type,
        ..Default::default()
    };
    let fd = bpf(BPF_LINK_CREATE, &mut attr)?;
    // SAFETY: on success BPF_LINK_CREATE returns a new file descriptor that nothing else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `BPF_OBJ_PIN`: pins a BPF object (here a link) at `path` on a bpffs.
pub(crate) fn obj_pin(fd: BorrowedFd<'_>, path: &Path) -> io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = CString::new(path.as_os_str().as_bytes())
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut attr = ObjPinAttr {
        pathname: path.as_ptr() as u64,
        bpf_fd: fd.as_raw_fd() as u32,
        ..Default::default()
    };
    bpf(BPF_OBJ_PIN, &mut attr).map(|_| ())
}

const BPF_MAP_UPDATE_BATCH: libc::c_long = 26;

/// The `batch` member of `union bpf_attr`.
#[repr(C)]
#[derive(Default)]
struct BatchAttr {
    in_batch: u64,
    out_batch: u64,
    keys: u64,
    values: u64,
    count: u32,
    map_fd: u32,
    elem_flags: u64,
    flags: u64,
}

/// `BPF_MAP_UPDATE_BATCH`: writes `keys[i] → values[i]` in order, in one call (aya 0.13 has
/// no batch API). On failure returns how many elements were written before the error.
pub(crate) fn map_update_batch<K: aya::Pod, V: aya::Pod>(
    map: BorrowedFd<'_>,
    keys: &[K],
    values: &[V],
) -> Result<(), (usize, io::Error)> {
    assert_eq!(
        keys.len(),
        values.len(),
        "batch keys and values differ in length"
    );
    if keys.is_empty() {
        return Ok(());
    }
    let mut attr = BatchAttr {
        keys: keys.as_ptr() as u64,
        values: values.as_ptr() as u64,
        count: keys.len() as u32,
        map_fd: map.as_raw_fd() as u32,
        ..Default::default()
    };
    // The kernel reads `count` keys and values of the map's key/value size from the two
    // buffers; `K`/`V` are the map's Pod layouts, so the buffers are exactly that large.
    match bpf(BPF_MAP_UPDATE_BATCH, &mut attr) {
        Ok(_) => Ok(()),
        Err(e) => Err((attr.count as usize, e)),
    }
}
