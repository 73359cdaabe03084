//! Mounts: what is mounted where (`/proc/self/mountinfo`), and the mount calls of stage and
//! publish (through nix's safe wrappers: ext4 mount, bind, read-only remount, unmount).

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};

/// A mount failed.
#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("reading /proc/self/mountinfo: {0}")]
    Read(#[source] std::io::Error),
    #[error("{op} {path}: {source}")]
    Call {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: nix::Error,
    },
}

/// One line of mountinfo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// `major:minor` of the mounted filesystem's device.
    pub device: String,
    /// The mount point, unescaped.
    pub mount_point: PathBuf,
    /// Per-mount options (`ro`/`rw`, …).
    pub options: Vec<String>,
    pub fs_type: String,
}

impl MountEntry {
    /// Whether this mount is read-only.
    pub fn readonly(&self) -> bool {
        self.options.iter().any(|o| o == "ro")
    }
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo`.
fn unescape(field: &str) -> PathBuf {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|d| {
            std::str::from_utf8(d)
                .ok()
                .and_then(|d| u8::from_str_radix(d, 8).ok())
        });
        match (bytes[i], octal) {
            (b'\\', Some(b)) => {
                out.push(b);
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(out))
}

/// Parses mountinfo text; malformed lines are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let f: Vec<&str> = left.split(' ').collect();
            let fs_type = right.split(' ').next()?;
            Some(MountEntry {
                device: (*f.get(2)?).to_owned(),
                mount_point: unescape(f.get(4)?),
                options: f.get(5)?.split(',').map(str::to_owned).collect(),
                fs_type: fs_type.to_owned(),
            })
        })
        .collect()
}

/// Every mount of this process's mount namespace.
pub fn all() -> Result<Vec<MountEntry>, MountError> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").map_err(MountError::Read)?;
    Ok(parse(&text))
}

/// The topmost mount at `path` (compared after resolving symlinks), if `path` is a mount point.
pub fn at(path: &Path) -> Result<Option<MountEntry>, MountError> {
    let path = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_owned());
    Ok(all()?.into_iter().rev().find(|m| m.mount_point == path))
}

fn call(op: &'static str, path: &Path, result: nix::Result<()>) -> Result<(), MountError> {
    result.map_err(|source| MountError::Call {
        op,
        path: path.to_owned(),
        source,
    })
}

/// Mounts the ext4 filesystem on `device` at `target`, with `flags` and fs-specific `data`.
pub fn mount_ext4(
    device: &Path,
    target: &Path,
    flags: MsFlags,
    data: &str,
) -> Result<(), MountError> {
    let data = (!data.is_empty()).then_some(data);
    call(
        "mount ext4 at",
        target,
        mount(Some(device), target, Some("ext4"), flags, data),
    )
}

/// Bind-mounts `source` at `target` with the generic `flags` (read-only, nosuid, …): a bind is
/// made with the source's flags and then remounted, which is how the kernel takes them.
pub fn bind(source: &Path, target: &Path, flags: MsFlags) -> Result<(), MountError> {
    call(
        "bind mount at",
        target,
        mount(
            Some(source),
            target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        ),
    )?;
    if !flags.is_empty() {
        let remount = MsFlags::MS_BIND | MsFlags::MS_REMOUNT | flags;
        if let Err(e) = call(
            "remount with the publish flags",
            target,
            mount(None::<&str>, target, None::<&str>, remount, None::<&str>),
        ) {
            let _ = umount2(target, MntFlags::empty());
            return Err(e);
        }
    }
    Ok(())
}

/// Unmounts `target`.
pub fn unmount(target: &Path) -> Result<(), MountError> {
    call("unmount", target, umount2(target, MntFlags::empty()))
}

/// Splits CSI `mount_flags` into the kernel's generic flags and the filesystem's data string.
pub fn split_flags(flags: &[String]) -> (MsFlags, String) {
    let mut ms = MsFlags::empty();
    let mut data = Vec::new();
    for flag in flags.iter().flat_map(|f| f.split(',')) {
        match flag {
            "" | "defaults" | "rw" => {}
            "ro" => ms |= MsFlags::MS_RDONLY,
            "noatime" => ms |= MsFlags::MS_NOATIME,
            "nodiratime" => ms |= MsFlags::MS_NODIRATIME,
            "relatime" => ms |= MsFlags::MS_RELATIME,
            "nosuid" => ms |= MsFlags::MS_NOSUID,
            "nodev" => ms |= MsFlags::MS_NODEV,
            "noexec" => ms |= MsFlags::MS_NOEXEC,
            "sync" => ms |= MsFlags::MS_SYNCHRONOUS,
            other => data.push(other),
        }
    }
    (ms, data.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_mountinfo_lines() {
        let text = "36 35 98:0 /mnt1 /mnt/with\\040space rw,noatime master:1 - ext3 /dev/root rw,errors=continue\n\
                    garbage\n\
                    40 36 7:3 / /tmp/s ro,relatime - ext4 /dev/loop3 ro\n";
        let m = parse(text);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].mount_point, PathBuf::from("/mnt/with space"));
        assert_eq!(m[0].device, "98:0");
        assert!(!m[0].readonly());
        assert_eq!(m[1].device, "7:3");
        assert_eq!(m[1].fs_type, "ext4");
        assert!(m[1].readonly());
    }

    #[test]
    fn splits_mount_flags() {
        let (ms, data) = split_flags(&["noatime,nodev".into(), "errors=remount-ro".into()]);
        assert_eq!(ms, MsFlags::MS_NOATIME | MsFlags::MS_NODEV);
        assert_eq!(data, "errors=remount-ro");
    }
}
