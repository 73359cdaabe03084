//! The container's /dev: a small tmpfs with the standard character devices, devpts and shm,
//! and the matching device-cgroup allow list (everything else denied, as runc does).

use std::path::Path;

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
