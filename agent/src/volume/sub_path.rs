//! `subPath`: a path inside a volume, bind-mounted on the host side so the container's PID 1
//! mounts exactly what was checked. The container may share the volume and replace a
//! directory by a symlink at any time, so the path is resolved (symlinks inside the volume are
//! allowed, as in kubelet), opened with `O_PATH`, checked again through the opened file's
//! `/proc/self/fd` link, and that open file — not the path — is what gets mounted. A missing
//! subPath is made as a directory with the volume's mode (kubelet's rule). Never follows a
//! path out of its volume.

use std::fs::{File, OpenOptions};
use std::os::fd::AsRawFd;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// Resolves `sub` inside the volume at `root` and bind-mounts it on `target` (replacing an
/// earlier bind there).
pub(super) fn bind(root: &Path, sub: &str, target: &Path) -> Result<(), String> {
    let (file, resolved) = resolve(root, sub)?;
    let is_dir = file
        .metadata()
        .map_err(|e| format!("stat {}: {e}", resolved.display()))?
        .is_dir();
    // A container restart binds again: take the previous instance's bind off first.
    let _ = umount2(target, MntFlags::MNT_DETACH);
    prepare_target(target, is_dir)?;
    let source = format!("/proc/self/fd/{}", file.as_raw_fd());
    mount(
        Some(source.as_str()),
        target,
        None::<&str>,
        MsFlags::MS_BIND,
        None::<&str>,
    )
    .map_err(|e| {
        format!(
            "bind-mounting {} on {}: {e}",
            resolved.display(),
            target.display()
        )
    })
}

/// The open file (`O_PATH`) of `sub` inside `root`, and its path.
pub(super) fn resolve(root: &Path, sub: &str) -> Result<(File, PathBuf), String> {
    let root = root
        .canonicalize()
        .map_err(|e| format!("volume path {}: {e}", root.display()))?;
    let escape = || {
        format!(
            "subpath {sub:?} not within volume path {:?}",
            root.display().to_string()
        )
    };
    let mode = std::fs::metadata(&root)
        .map(|m| m.permissions().mode() & 0o7777)
        .unwrap_or(0o755);
    let mut cur = root.clone();
    for comp in Path::new(sub).components() {
        let name = match comp {
            Component::CurDir => continue,
            Component::Normal(name) => name,
            _ => return Err(escape()),
        };
        let next = cur.join(name);
        if std::fs::symlink_metadata(&next).is_err() {
            // mkdir never follows a symlink: a dangling one makes it fail, not escape.
            std::fs::DirBuilder::new()
                .mode(mode)
                .create(&next)
                .map_err(|e| format!("creating {}: {e}", next.display()))?;
        }
        cur = next
            .canonicalize()
            .map_err(|e| format!("resolving {}: {e}", next.display()))?;
        if !cur.starts_with(&root) {
            return Err(escape());
        }
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(&cur)
        .map_err(|e| format!("opening {}: {e}", cur.display()))?;
    // What was opened, whatever happened to the path since it was resolved.
    let opened = std::fs::read_link(format!("/proc/self/fd/{}", file.as_raw_fd()))
        .map_err(|e| format!("reading the opened path of {}: {e}", cur.display()))?;
    if opened != cur || !opened.starts_with(&root) {
        return Err(escape());
    }
    Ok((file, cur))
}

fn prepare_target(target: &Path, is_dir: bool) -> Result<(), String> {
    let err = |e: std::io::Error| format!("creating {}: {e}", target.display());
    if let Some(parent) = target.parent() {
        std::fs::create_dir_all(parent).map_err(err)?;
    }
    match std::fs::symlink_metadata(target) {
        Ok(m) if m.is_dir() == is_dir => Ok(()),
        Ok(m) if m.is_dir() => std::fs::remove_dir(target)
            .and_then(|()| File::create(target).map(|_| ()))
            .map_err(err),
        Ok(_) => std::fs::remove_file(target)
            .and_then(|()| std::fs::create_dir(target))
            .map_err(err),
        Err(_) if is_dir => std::fs::create_dir(target).map_err(err),
        Err(_) => File::create(target).map(|_| ()).map_err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_paths_resolve_inside_their_volume_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("vol");
        std::fs::create_dir_all(root.join("a")).expect("mkdir");
        std::fs::write(root.join("a/f"), "x").expect("write");
        std::os::unix::fs::symlink("a", root.join("inside")).expect("symlink");
        std::os::unix::fs::symlink("/etc", root.join("out")).expect("symlink");
        std::os::unix::fs::symlink("../..", root.join("up")).expect("symlink");
        let canon = root.canonicalize().expect("canon");
        assert_eq!(resolve(&root, "a/f").expect("file").1, canon.join("a/f"));
        assert_eq!(
            resolve(&root, "inside/f").expect("via link").1,
            canon.join("a/f")
        );
        let made = resolve(&root, "new/dir").expect("created");
        assert!(made.1.is_dir());
        for bad in ["out", "out/passwd", "up", "up/etc", "a/../../x"] {
            let err = resolve(&root, bad).expect_err(bad);
            assert!(err.contains("not within volume path"), "{bad}: {err}");
        }
        assert!(!dir.path().join("x").exists());
    }
}
