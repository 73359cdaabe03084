//! The container's filesystem view, built by its PID 1 inside its own mount namespace: overlay
//! rootfs, bind mounts, /proc, /sys (ro), /dev, pivot_root, masked and read-only paths.
//! Everything here happens in a private mount namespace; the host's mount table is never
//! changed, so nothing needs unmounting when the container is gone.

use std::path::{Component, Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

use super::devices::{add_host_devices, populate_dev};
use super::init_spec::{MASKED_PATHS, READONLY_PATHS};
use super::InitSpec;

type R = Result<(), String>;

/// A bind mount's source carried into the container's namespace as a detached tree.
pub struct MountSource {
    pub tree: std::os::fd::OwnedFd,
    pub is_dir: bool,
}

fn do_mount(
    src: Option<&str>,
    target: &Path,
    fstype: Option<&str>,
    flags: MsFlags,
    data: Option<&str>,
) -> R {
    mount(src, target, fstype, flags, data).map_err(|e| {
        format!(
            "mount {} on {} ({}): {e}",
            src.unwrap_or("-"),
            target.display(),
            fstype.unwrap_or("bind")
        )
    })
}

/// Builds the rootfs and pivots into it. On return the process's `/` is the container's.
/// `sources`, when given, are the bind mounts' sources as detached trees, one per
/// `spec.mounts` entry (the namespace was cut from the mount template).
pub fn build_rootfs(spec: &InitSpec, sources: Option<&[MountSource]>) -> R {
    do_mount(
        None,
        Path::new("/"),
        None,
        MsFlags::MS_REC | MsFlags::MS_PRIVATE,
        None,
    )?;
    let lower: Vec<String> = spec
        .lower_dirs
        .iter()
        .rev()
        .map(|p| p.display().to_string())
        .collect();
    let opts = format!(
        "lowerdir={},upperdir={},workdir={},volatile",
        lower.join(":"),
        spec.upper_dir.display(),
        spec.work_dir.display()
    );
    let root = spec.rootfs.as_path();
    do_mount(
        Some("overlay"),
        root,
        Some("overlay"),
        MsFlags::empty(),
        Some(&opts),
    )?;

    for (i, m) in spec.mounts.iter().enumerate() {
        let target = inside_rootfs(root, &m.destination)?;
        match sources.and_then(|s| s.get(i)) {
            Some(source) => attach_source(source, &m.source, &target)?,
            None => {
                ensure_mountpoint(&target, m.source.is_dir())?;
                let src = m.source.display().to_string();
                let flags = MsFlags::MS_BIND | MsFlags::MS_REC;
                do_mount(Some(&src), &target, None, flags, None)?;
            }
        }
        if m.readonly {
            let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
            do_mount(None, &target, None, flags, None)?;
        }
    }

    let nosuid_nodev_noexec = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
    let proc_dir = root.join("proc");
    ensure_mountpoint(&proc_dir, true)?;
    do_mount(
        Some("proc"),
        &proc_dir,
        Some("proc"),
        nosuid_nodev_noexec,
        None,
    )?;
    let sys_dir = root.join("sys");
    ensure_mountpoint(&sys_dir, true)?;
    let sys_flags = match spec.privileged {
        true => nosuid_nodev_noexec,
        false => nosuid_nodev_noexec | MsFlags::MS_RDONLY,
    };
    do_mount(Some("sysfs"), &sys_dir, Some("sysfs"), sys_flags, None)?;
    populate_dev(root)?;
    if spec.privileged {
        add_host_devices(root, &spec.host_devices)?;
    }

    if spec.readonly_rootfs {
        let flags = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | MsFlags::MS_RDONLY;
        do_mount(None, root, None, flags, None)?;
    }

    std::env::set_current_dir(root).map_err(|e| format!("chdir {}: {e}", root.display()))?;
    nix::unistd::pivot_root(".", ".").map_err(|e| format!("pivot_root: {e}"))?;
    umount2(".", MntFlags::MNT_DETACH).map_err(|e| format!("detaching old root: {e}"))?;
    std::env::set_current_dir("/").map_err(|e| format!("chdir /: {e}"))?;

    if !spec.privileged {
        mask_paths()?;
    }
    let cwd = Path::new(&spec.process.cwd);
    if !cwd.is_dir() {
        std::fs::create_dir_all(cwd)
            .map_err(|e| format!("workingDir {}: {e}", spec.process.cwd))?;
    }
    std::env::set_current_dir(cwd).map_err(|e| format!("workingDir {}: {e}", spec.process.cwd))
}

/// Attaches a bind mount's detached source at `target`, private like a bind mount made in
/// the container's private namespace.
fn attach_source(source: &MountSource, from: &Path, target: &Path) -> R {
    ensure_mountpoint(target, source.is_dir)?;
    crate::sys::mount_api::attach_tree(&source.tree, target).map_err(|e| {
        format!(
            "mount {} on {} (bind): {e}",
            from.display(),
            target.display()
        )
    })?;
    let private = MsFlags::MS_REC | MsFlags::MS_PRIVATE;
    do_mount(None, target, None, private, None)
}

fn mask_paths() -> R {
    for p in MASKED_PATHS {
        let path = Path::new(p);
        match std::fs::symlink_metadata(path) {
            Ok(m) if m.is_dir() => {
                let flags = MsFlags::MS_RDONLY | MsFlags::MS_NOSUID | MsFlags::MS_NODEV;
                do_mount(Some("tmpfs"), path, Some("tmpfs"), flags, Some("size=0"))?
            }
            Ok(_) => do_mount(Some("/dev/null"), path, None, MsFlags::MS_BIND, None)?,
            Err(_) => continue,
        }
    }
    for p in READONLY_PATHS {
        let path = Path::new(p);
        if std::fs::symlink_metadata(path).is_err() {
            continue;
        }
        do_mount(
            Some(p),
            path,
            None,
            MsFlags::MS_BIND | MsFlags::MS_REC,
            None,
        )?;
        let flags = MsFlags::MS_BIND
            | MsFlags::MS_REMOUNT
            | MsFlags::MS_RDONLY
            | MsFlags::MS_NOSUID
            | MsFlags::MS_NODEV
            | MsFlags::MS_NOEXEC;
        do_mount(Some(p), path, None, flags, None)?;
    }
    Ok(())
}

/// Joins a container path onto the rootfs without following any symlink in the image: a
/// symlinked component would let an image redirect a mount onto the host.
pub fn inside_rootfs(root: &Path, dest: &str) -> Result<PathBuf, String> {
    let dest_path = Path::new(dest);
    if !dest_path.is_absolute() {
        return Err(format!("mount destination {dest} is not absolute"));
    }
    let mut out = root.to_path_buf();
    for comp in dest_path.components() {
        match comp {
            Component::RootDir | Component::CurDir => {}
            Component::Normal(c) => {
                out.push(c);
                if let Ok(m) = std::fs::symlink_metadata(&out) {
                    if m.file_type().is_symlink() {
                        return Err(format!("mount destination {dest} crosses a symlink"));
                    }
                }
            }
            Component::ParentDir | Component::Prefix(_) => {
                return Err(format!("mount destination {dest} contains '..'"))
            }
        }
    }
    Ok(out)
}

fn ensure_mountpoint(target: &Path, dir: bool) -> R {
    if target.exists() {
        return Ok(());
    }
    let err = |e: std::io::Error| format!("creating mountpoint {}: {e}", target.display());
    if dir {
        std::fs::create_dir_all(target).map_err(err)
    } else {
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(err)?;
        }
        std::fs::File::create(target).map(|_| ()).map_err(err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mount_destinations_never_cross_symlinks_or_parents() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        std::fs::create_dir_all(root.join("etc")).expect("mkdir");
        std::os::unix::fs::symlink("/", root.join("escape")).expect("symlink");
        assert_eq!(
            inside_rootfs(root, "/etc/hosts"),
            Ok(root.join("etc/hosts"))
        );
        assert!(inside_rootfs(root, "/escape/etc").is_err());
        assert!(inside_rootfs(root, "/etc/../../x").is_err());
        assert!(inside_rootfs(root, "relative").is_err());
    }
}
