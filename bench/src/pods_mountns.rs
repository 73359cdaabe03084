//! A mount namespace without the cgroup v2 mount, for crun.
//!
//! Debian's crun 1.8 refuses the hybrid cgroup layout while the v2 hierarchy holds a
//! controller (hugetlb here, DESIGN.md §4b). Mounting hugetlb as a v1 hierarchy instead is
//! host-wide — every agent running meanwhile, other test sessions' too, puts its pods'
//! cgroups in it, and hugetlb cannot return to v2 while they exist (seen here). So crun runs
//! in a private mount namespace whose only difference is that /sys/fs/cgroup/unified is
//! unmounted: a `sleep` started by `unshare -m` holds it, and each crun process enters it
//! with one setns(2) between fork and exec, which costs next to nothing. The v1 hierarchies
//! are the host's, so crun's cgroups are visible to (and cleaned up from) the host.

use std::fs::File;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, Stdio};
use std::thread::sleep;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

pub const UNIFIED: &str = "/sys/fs/cgroup/unified";

/// The held namespace; the holder process is killed when this is dropped.
pub struct NoV2MountNs {
    holder: Child,
    ns: File,
}

impl NoV2MountNs {
    /// Whether the v2 hierarchy holds a controller (so crun needs this namespace).
    pub fn needed() -> bool {
        std::fs::read_to_string(format!("{UNIFIED}/cgroup.controllers"))
            .is_ok_and(|controllers| !controllers.trim().is_empty())
    }

    /// Starts the holder and waits (bounded) until its namespace has lost the v2 mount.
    pub fn start() -> Result<Self> {
        let script = format!("umount {UNIFIED} && exec sleep 86400");
        let placeholder = File::open("/dev/null")?;
        let holder = Command::new("unshare")
            .args(["-m", "--propagation", "private", "sh", "-c", &script])
            .stdin(Stdio::null())
            .spawn()
            .context("starting `unshare -m` to hold a mount namespace")?;
        let mut held = Self {
            ns: placeholder,
            holder,
        };
        let pid = held.holder.id();
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            if let Some(status) = held.holder.try_wait()? {
                bail!("`unshare -m sh -c '{script}'` exited: {status}");
            }
            let mountinfo = std::fs::read_to_string(format!("/proc/{pid}/mountinfo"))?;
            let comm = std::fs::read_to_string(format!("/proc/{pid}/comm"))?;
            let unmounted = !mountinfo
                .lines()
                .any(|l| l.contains(&format!(" {UNIFIED} ")));
            if unmounted && comm.trim() == "sleep" {
                break;
            }
            if Instant::now() > deadline {
                bail!("the mount namespace holder did not unmount {UNIFIED} within 5 s");
            }
            sleep(Duration::from_millis(10));
        }
        held.ns = File::open(format!("/proc/{pid}/ns/mnt")).context("opening its mount ns")?;
        Ok(held)
    }

    /// Makes `command` enter this namespace just before it execs; valid while `self` lives.
    pub fn enter_on_exec(&self, command: &mut Command) {
        let fd = self.ns.as_raw_fd();
        // SAFETY: the closure only calls setns(2), which is async-signal-safe, and `fd` stays
        // open in the parent (and so in the forked child) for as long as `self` lives.
        unsafe {
            command.pre_exec(move || {
                let ns = BorrowedFd::borrow_raw(fd);
                setns(ns, CloneFlags::CLONE_NEWNS).map_err(std::io::Error::from)
            });
        }
    }
}

impl Drop for NoV2MountNs {
    fn drop(&mut self) {
        let _ = self.holder.kill();
        let _ = self.holder.wait();
    }
}
