//! The mount namespace every container's own namespace is cut from.
//!
//! `unshare(CLONE_NEWNS)` copies the caller's whole mount table under the kernel's global
//! namespace lock, and the agent's table grows with every pod (three namespace-file bind mounts
//! per sandbox, plus volumes). Copying it for each container made starting N pods cost O(N²)
//! under one lock: with 1 000 pods, most of the start time was containers queued on that lock.
//! The agent instead takes one private copy of its table when it first starts a container,
//! without any namespace-file mount and without the mounts under the agent's own directories
//! (pods' volumes: a copy held there would keep their filesystems busy after the agent
//! unmounts them), and each container's intermediate enters that copy before unsharing. What a container needs from mounts made later (volumes, /etc/hosts,
//! hostPath under a later mount) the intermediate takes along as detached mount trees
//! (`open_tree`, [`crate::sys::mount_api`]) before it switches namespace.

use std::fs::File;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

static TEMPLATE: OnceLock<Option<File>> = OnceLock::new();

/// A path the intermediate can open to enter the template (`/proc/<agent>/fd/<n>`), or `None`
/// when it could not be made (then containers copy the agent's table, as before). The first
/// call makes it, leaving out the mounts below `own_dirs`.
pub fn path(own_dirs: &[&Path]) -> Option<PathBuf> {
    let template = TEMPLATE.get_or_init(|| match create(own_dirs) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!(error = %e, "no container mount template; containers copy the agent's mount table");
            None
        }
    });
    template
        .as_ref()
        .map(|f| PathBuf::from(format!("/proc/{}/fd/{}", std::process::id(), f.as_raw_fd())))
}

/// Makes a private copy of the calling process's mount namespace without its namespace-file
/// mounts and the mounts below `own_dirs`, and returns the open namespace file that keeps it
/// alive. Runs on a thread of its own, which leaves the process's namespace untouched.
pub fn create(own_dirs: &[&Path]) -> Result<File, String> {
    let own_dirs: Vec<PathBuf> = own_dirs.iter().map(|d| d.to_path_buf()).collect();
    std::thread::spawn(move || -> Result<File, String> {
        unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS): {e}"))?;
        mount(
            None::<&str>,
            "/",
            None::<&str>,
            MsFlags::MS_REC | MsFlags::MS_PRIVATE,
            None::<&str>,
        )
        .map_err(|e| format!("making the template private: {e}"))?;
        let table = std::fs::read_to_string("/proc/thread-self/mountinfo")
            .map_err(|e| format!("reading mountinfo: {e}"))?;
        for target in mounts_to_leave_out(&table, &own_dirs) {
            // A mount below one already detached is gone with it.
            let _ = umount2(target.as_str(), MntFlags::MNT_DETACH);
        }
        File::open("/proc/thread-self/ns/mnt").map_err(|e| format!("opening the template: {e}"))
    })
    .join()
    .map_err(|_| "the template thread panicked".to_string())?
}

/// The mount points a template leaves out, deepest first: namespace files (`nsfs`) and
/// whatever is mounted strictly below one of `own_dirs`. Octal escapes (`\040` for a space)
/// are decoded.
fn mounts_to_leave_out(mountinfo: &str, own_dirs: &[PathBuf]) -> Vec<String> {
    let mut targets: Vec<String> = mountinfo
        .lines()
        .filter_map(|line| {
            let (left, right) = line.split_once(" - ")?;
            let fstype = right.split_whitespace().next()?;
            let target = unescape(left.split_whitespace().nth(4)?);
            let below_own = own_dirs
                .iter()
                .any(|d| Path::new(&target).starts_with(d) && Path::new(&target) != d);
            (fstype == "nsfs" || below_own).then_some(target)
        })
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    targets
}

fn unescape(field: &str) -> String {
    let bytes = field.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match (bytes[i], octal) {
            (b'\\', Some(d)) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            (b, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn namespace_files_and_mounts_below_own_dirs_are_left_out_deepest_first() {
        let table = "\
22 1 8:1 / / rw,relatime shared:1 - ext4 /dev/vda rw
40 22 0:4 net:[4026532] /run/bosun/pods/a/ns/net rw shared:1 - nsfs nsfs rw
41 22 0:4 net:[4026533] /run/netns/with\\040space rw shared:1 - nsfs nsfs rw
42 22 0:4 uts:[4026534] /run/bosun/pods/a/ns/deeper/uts rw - nsfs nsfs rw
43 22 0:50 / /tmp rw - tmpfs tmpfs rw
44 22 0:51 / /var/lib/bosun rw - tmpfs tmpfs rw
45 44 0:52 / /var/lib/bosun/pods/a/volumes/mem rw - tmpfs tmpfs rw
46 22 0:53 / /var/lib/bosun-other rw - tmpfs tmpfs rw
";
        let own = [PathBuf::from("/var/lib/bosun")];
        assert_eq!(
            mounts_to_leave_out(table, &own),
            vec![
                "/var/lib/bosun/pods/a/volumes/mem".to_string(),
                "/run/bosun/pods/a/ns/deeper/uts".to_string(),
                "/run/bosun/pods/a/ns/net".to_string(),
                "/run/netns/with space".to_string(),
            ]
        );
    }
}
