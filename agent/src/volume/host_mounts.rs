//! The host-side mounts of pods (Memory emptyDirs, subPath binds), found through
//! `/proc/self/mountinfo`: whether a directory is a mount point, unmounting everything under a
//! pod's directory (deepest first, lazily, so a container still holding a copy cannot block
//! it), and at start the mounts of pods that no longer have a record. Touches only mounts
//! under the directories it is given.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use nix::mount::{umount2, MntFlags};

use super::VolumeError;

/// Every mount point of the agent's mount namespace.
fn mount_points() -> Result<Vec<PathBuf>, VolumeError> {
    let path = "/proc/self/mountinfo";
    let text = std::fs::read_to_string(path).map_err(|e| VolumeError::io("read", path, e))?;
    Ok(text
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|m| PathBuf::from(unescape(m)))
        .collect())
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|c| (b'0'..=b'7').contains(c)));
        match (b[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Whether an existing `dir` is the root of a mount of another filesystem than its parent's
/// — kubelet's `IsLikelyNotMountPoint`: the mounts checked for are tmpfs instances of their
/// own, whose device differs from the parent's. Two stats, where reading mountinfo cost a pass
/// over every mount of the node (thousands with a dense node) at every volume resync.
pub(super) fn is_mount_point(dir: &Path) -> Result<bool, VolumeError> {
    use std::os::unix::fs::MetadataExt;
    let device = |path: &Path| {
        std::fs::symlink_metadata(path)
            .map(|m| m.dev())
            .map_err(|e| VolumeError::io("stat", path, e))
    };
    let parent = dir.parent().unwrap_or(Path::new("/"));
    Ok(device(dir)? != device(parent)?)
}

/// Unmounts every mount at or below `dir`, deepest first. Fails, naming them, if any is left.
pub fn unmount_all_under(dir: &Path) -> Result<(), VolumeError> {
    for _ in 0..8 {
        let mut found: Vec<PathBuf> = mount_points()?
            .into_iter()
            .filter(|m| m.starts_with(dir))
            .collect();
        if found.is_empty() {
            return Ok(());
        }
        found.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
        for m in &found {
            if let Err(e) = umount2(m, MntFlags::MNT_DETACH) {
                tracing::debug!(mount = %m.display(), error = %e, "unmount");
            }
        }
    }
    let left: Vec<PathBuf> = mount_points()?
        .into_iter()
        .filter(|m| m.starts_with(dir))
        .collect();
    if left.is_empty() {
        Ok(())
    } else {
        Err(VolumeError::MountsLeft {
            dir: dir.to_path_buf(),
            left,
        })
    }
}

/// At agent start: unmounts what is mounted under `<root>/pods/<uid>` for a uid not in `live`
/// (a pod whose record is gone) and under `<root>/trash`.
pub fn unmount_orphans(root: &Path, live: &BTreeSet<String>) -> Result<(), VolumeError> {
    let pods = root.join("pods");
    let mut dirs = BTreeSet::new();
    for m in mount_points()? {
        if let Ok(rest) = m.strip_prefix(&pods) {
            let uid = rest.components().next();
            if let Some(uid) = uid.map(|c| c.as_os_str().to_string_lossy().into_owned()) {
                if !live.contains(&uid) {
                    dirs.insert(pods.join(uid));
                }
            }
        } else if m.starts_with(root.join("trash")) {
            dirs.insert(root.join("trash"));
        }
    }
    for dir in dirs {
        tracing::info!(dir = %dir.display(), "unmounting the volumes of a pod that is gone");
        unmount_all_under(&dir)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes_are_decoded() {
        assert_eq!(unescape("/a\\040b\\134c"), "/a b\\c");
        assert_eq!(unescape("/plain"), "/plain");
        assert_eq!(unescape("/end\\04"), "/end\\04");
    }

    #[test]
    fn a_tmpfs_on_a_directory_is_a_mount_point() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("vol");
        std::fs::create_dir(&dir).expect("mkdir");
        assert!(!is_mount_point(&dir).expect("stat"));
        super::super::empty_dir::mount_tmpfs(&dir, Some(1 << 20), 0o755).expect("mount");
        let mounted = is_mount_point(&dir);
        unmount_all_under(&dir).expect("unmount");
        assert!(mounted.expect("stat"));
        assert!(!is_mount_point(&dir).expect("stat"));
        assert!(is_mount_point(&tmp.path().join("missing")).is_err());
    }
}
