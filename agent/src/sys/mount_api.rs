//! Detached mount trees (the new mount API): how a container's intermediate carries a bind
//! mount's source across into another mount namespace. rustix wraps both calls safely.

use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::Path;

use rustix::fs::CWD;
use rustix::mount::{move_mount, open_tree, MoveMountFlags, OpenTreeFlags};

/// A detached copy of the mount at `source`: with its submounts when `recursive` (like
/// `mount --rbind`, for directories), alone otherwise (a file has no submounts, and the
/// kernel would still scan every mount below the source's filesystem's root for them).
pub fn clone_tree(source: &Path, recursive: bool) -> io::Result<OwnedFd> {
    let mut flags = OpenTreeFlags::OPEN_TREE_CLONE | OpenTreeFlags::OPEN_TREE_CLOEXEC;
    if recursive {
        flags |= OpenTreeFlags::AT_RECURSIVE;
    }
    Ok(open_tree(CWD, source, flags)?)
}

/// Attaches a detached tree from [`clone_tree`] at `target` in the caller's mount namespace.
pub fn attach_tree(tree: impl AsFd, target: &Path) -> io::Result<()> {
    Ok(move_mount(
        tree,
        "",
        CWD,
        target,
        MoveMountFlags::MOVE_MOUNT_F_EMPTY_PATH,
    )?)
}
