//! The container's /dev: a small tmpfs with the standard character devices, devpts and shm,
//! and the matching device-cgroup allow list (everything else denied, as runc does).

use std::path::{Path, PathBuf};

use nix::mount::{mount, MsFlags};
use nix::sys::stat::{makedev, mknod, Mode, SFlag};
use oci_spec::runtime::{LinuxDeviceCgroup, LinuxDeviceCgroupBuilder, LinuxDeviceType};

/// (name, major, minor) of the device nodes every container gets, mode 0666.
const DEVICES: &[(&str, u64, u64)] = &[
    ("null", 1, 3),
    ("zero", 1, 5),
    ("full", 1, 7),
    ("random", 1, 8),
    ("urandom", 1, 9),
    ("tty", 5, 0),
];

/// Mounts and fills `<root>/dev`. Runs in the container's mount namespace before pivot_root.
pub fn populate_dev(root: &Path) -> Result<(), String> {
    let dev = root.join("dev");
    std::fs::create_dir_all(&dev).map_err(|e| format!("creating /dev: {e}"))?;
    let flags = MsFlags::MS_NOSUID | MsFlags::MS_STRICTATIME;
    mount(
        Some("tmpfs"),
        &dev,
        Some("tmpfs"),
        flags,
        Some("mode=755,size=65536k"),
    )
    .map_err(|e| format!("mount /dev tmpfs: {e}"))?;
    for (name, major, minor) in DEVICES {
        let path = dev.join(name);
        let mode = Mode::from_bits_truncate(0o666);
        mknod(&path, SFlag::S_IFCHR, mode, makedev(*major, *minor))
            .map_err(|e| format!("mknod /dev/{name}: {e}"))?;
        // mknod honours the umask; make the mode exact.
        nix::sys::stat::fchmodat(
            None,
            &path,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| format!("chmod /dev/{name}: {e}"))?;
    }
    for (link, target) in [
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
        ("ptmx", "pts/ptmx"),
        ("core", "/proc/kcore"),
    ] {
        std::os::unix::fs::symlink(target, dev.join(link))
            .map_err(|e| format!("symlink /dev/{link}: {e}"))?;
    }
    let pts = dev.join("pts");
    std::fs::create_dir(&pts).map_err(|e| format!("creating /dev/pts: {e}"))?;
    mount(
        Some("devpts"),
        &pts,
        Some("devpts"),
        MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC,
        Some("newinstance,ptmxmode=0666,mode=0620,gid=5"),
    )
    .map_err(|e| format!("mount /dev/pts: {e}"))?;
    let shm = dev.join("shm");
    std::fs::create_dir(&shm).map_err(|e| format!("creating /dev/shm: {e}"))?;
    mount(
        Some("shm"),
        &shm,
        Some("tmpfs"),
        MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC,
        Some("mode=1777,size=65536k"),
    )
    .map_err(|e| format!("mount /dev/shm: {e}"))?;
    Ok(())
}

/// A device node of the node's /dev, given to a privileged container (under its /dev at the
/// same relative path, with the same owner and mode).
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct HostDevice {
    /// Relative to /dev (`loop0`, `net/tun`).
    pub path: PathBuf,
    pub block: bool,
    pub rdev: u64,
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
}

/// Directories of /dev that are not device nodes of the node (the container has its own
/// ptys, shared memory and message queues), as runc skips them.
const NOT_HOST_DEVICES: &[&str] = &["pts", "shm", "mqueue", "fd", "console", ".udev"];

/// The character and block devices under the node's /dev (read by the agent, which sees the
/// node's /dev; the container's intermediate may not).
pub fn host_devices() -> Vec<HostDevice> {
    let mut out = Vec::new();
    collect_devices(Path::new("/dev"), Path::new(""), 0, &mut out);
    out
}

fn collect_devices(dir: &Path, rel: &Path, depth: usize, out: &mut Vec<HostDevice>) {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        if depth == 0 && NOT_HOST_DEVICES.iter().any(|n| name == *n) {
            continue;
        }
        let Ok(meta) = entry.path().symlink_metadata() else {
            continue;
        };
        let kind = meta.file_type();
        let path = rel.join(&name);
        if kind.is_dir() && depth < 3 {
            collect_devices(&entry.path(), &path, depth + 1, out);
        } else if kind.is_char_device() || kind.is_block_device() {
            out.push(HostDevice {
                path,
                block: kind.is_block_device(),
                rdev: meta.rdev(),
                mode: meta.mode() & 0o7777,
                uid: meta.uid(),
                gid: meta.gid(),
            });
        }
    }
}

/// Makes `devices` under `<root>/dev` (after [`populate_dev`]; a node already there stays).
pub fn add_host_devices(root: &Path, devices: &[HostDevice]) -> Result<(), String> {
    let dev = root.join("dev");
    for d in devices {
        if d.path.is_absolute() || d.path.components().any(|c| c.as_os_str() == "..") {
            return Err(format!("host device path {}", d.path.display()));
        }
        let path = dev.join(&d.path);
        if path.symlink_metadata().is_ok() {
            continue;
        }
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("creating {}: {e}", parent.display()))?;
        }
        let kind = if d.block {
            SFlag::S_IFBLK
        } else {
            SFlag::S_IFCHR
        };
        let mode = Mode::from_bits_truncate(d.mode);
        mknod(&path, kind, mode, d.rdev as nix::libc::dev_t)
            .map_err(|e| format!("mknod {}: {e}", path.display()))?;
        nix::sys::stat::fchmodat(
            None,
            &path,
            mode,
            nix::sys::stat::FchmodatFlags::FollowSymlink,
        )
        .map_err(|e| format!("chmod {}: {e}", path.display()))?;
        let owner = (
            Some(nix::unistd::Uid::from_raw(d.uid)),
            Some(nix::unistd::Gid::from_raw(d.gid)),
        );
        nix::unistd::chown(&path, owner.0, owner.1)
            .map_err(|e| format!("chown {}: {e}", path.display()))?;
    }
    Ok(())
}

/// The device cgroup allow list matching [`populate_dev`] (after denying everything): those
/// nodes, ptys, and mknod (but not use) of any device — runc's defaults.
pub fn device_allow_list() -> Vec<String> {
    let mut rules = vec![
        "c *:* m".to_string(),
        "b *:* m".to_string(),
        "c 136:* rwm".to_string(),
        "c 5:2 rwm".to_string(),
    ];
    for (_, major, minor) in DEVICES {
        rules.push(format!("c {major}:{minor} rwm"));
    }
    rules
}

/// The same rules as OCI device entries, for libcgroups (unified hosts).
pub fn device_rules() -> Vec<LinuxDeviceCgroup> {
    let rule = |allow: bool,
                typ: LinuxDeviceType,
                major: Option<i64>,
                minor: Option<i64>,
                access: &str| {
        let mut b = LinuxDeviceCgroupBuilder::default()
            .allow(allow)
            .typ(typ)
            .access(access);
        if let Some(m) = major {
            b = b.major(m);
        }
        if let Some(m) = minor {
            b = b.minor(m);
        }
        b.build()
    };
    let mut rules = vec![
        rule(false, LinuxDeviceType::A, None, None, "rwm"),
        rule(true, LinuxDeviceType::C, None, None, "m"),
        rule(true, LinuxDeviceType::B, None, None, "m"),
        rule(true, LinuxDeviceType::C, Some(136), None, "rwm"),
        rule(true, LinuxDeviceType::C, Some(5), Some(2), "rwm"),
    ];
    for (_, major, minor) in DEVICES {
        rules.push(rule(
            true,
            LinuxDeviceType::C,
            Some(*major as i64),
            Some(*minor as i64),
            "rwm",
        ));
    }
    rules.into_iter().filter_map(Result::ok).collect()
}
