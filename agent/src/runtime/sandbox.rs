//! Pod sandboxes: the net, ipc and uts namespaces a pod's containers share, held by bind
//! mounts of the namespace files under `<run-dir>/pods/<uid>/ns/` — no pause process — and,
//! with `shareProcessNamespace`, a PID namespace, whose PID 1 (`pod_init`) the sandbox starts
//! and kills. A sandbox may hold only some of them (the pod shares the others with the node:
//! hostNetwork, hostIPC). Must never leave a bind mount behind on delete, and never enter the
//! agent's own namespaces.

use std::path::{Path, PathBuf};

use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};

use super::RuntimeError;
use crate::sys::loopback::bring_up_loopback;

/// The namespace kinds a sandbox holds.
pub const SANDBOX_NAMESPACES: [&str; 4] = ["net", "ipc", "uts", "pid"];

/// The file recording the pod init's pid and start time.
const POD_INIT: &str = "pod-init";

/// A pod's held namespaces.
#[derive(Debug, Clone)]
pub struct PodSandbox {
    pub dir: PathBuf,
    /// The kinds this sandbox holds (a subset of [`SANDBOX_NAMESPACES`]).
    kinds: Vec<&'static str>,
}

impl PodSandbox {
    /// The sandbox at `dir` (`<run-dir>/pods/<uid>`) holding every kind, whether or not it
    /// exists yet.
    pub fn at(dir: PathBuf) -> Self {
        PodSandbox::with_kinds(dir, &SANDBOX_NAMESPACES)
    }

    /// The sandbox at `dir` holding only `kinds` (the pod shares the others with the node).
    pub fn with_kinds(dir: PathBuf, kinds: &[&'static str]) -> Self {
        let kinds = SANDBOX_NAMESPACES
            .into_iter()
            .filter(|k| kinds.contains(k))
            .collect();
        PodSandbox { dir, kinds }
    }

    pub fn ns_path(&self, kind: &str) -> PathBuf {
        self.dir.join("ns").join(kind)
    }

    /// The namespace files joined by setns before the fork, as
    /// [`super::InitSpec::namespaces`] wants them (the PID namespace is
    /// [`PodSandbox::pid_namespace`]).
    pub fn namespaces(&self) -> Vec<(String, PathBuf)> {
        self.kinds
            .iter()
            .filter(|k| **k != "pid")
            .map(|k| (k.to_string(), self.ns_path(k)))
            .collect()
    }

    /// The pod's shared PID namespace (`shareProcessNamespace`), if it has one.
    pub fn pid_namespace(&self) -> Option<PathBuf> {
        self.kinds.contains(&"pid").then(|| self.ns_path("pid"))
    }

    /// Starts the PID 1 of the pod's shared PID namespace (in the cgroup `spec` names) and
    /// pins the namespace; nothing without one.
    pub fn start_pid_init(
        &self,
        init_exe: &Path,
        spec: &super::pod_init::PodInitSpec,
    ) -> Result<(), RuntimeError> {
        let Some(target) = self.pid_namespace() else {
            return Ok(());
        };
        let (pid, started) = super::pod_init::start(init_exe, spec)?;
        let record = self.dir.join(POD_INIT);
        let pinned = std::fs::write(&record, format!("{pid} {started}\n"))
            .map_err(|e| RuntimeError::io("write", &record, e))
            .and_then(|()| {
                let src = format!("/proc/{pid}/ns/pid");
                mount(
                    Some(src.as_str()),
                    &target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| RuntimeError::sys("bind-mount the pod's PID namespace", e))
            });
        if pinned.is_err() {
            super::pod_init::kill(pid, started);
        }
        pinned
    }

    /// Whether all namespace files are still held (e.g. after an agent restart).
    pub fn exists(&self) -> bool {
        self.kinds.iter().all(|k| is_nsfs(&self.ns_path(k)))
    }

    /// Creates all the namespaces (see [`PodSandbox::create_with`]).
    pub fn create(dir: PathBuf, hostname: &str) -> Result<Self, RuntimeError> {
        PodSandbox::create_with(dir, hostname, &SANDBOX_NAMESPACES)
    }

    /// Creates the namespaces of `kinds` on a short-lived thread (unshare affects only that
    /// thread), sets the pod hostname (with uts), brings up `lo` (with net) and pins the
    /// namespaces with bind mounts.
    pub fn create_with(
        dir: PathBuf,
        hostname: &str,
        kinds: &[&'static str],
    ) -> Result<Self, RuntimeError> {
        let sandbox = PodSandbox::with_kinds(dir, kinds);
        let ns_dir = sandbox.dir.join("ns");
        std::fs::create_dir_all(&ns_dir).map_err(|e| RuntimeError::io("mkdir", &ns_dir, e))?;
        if sandbox.kinds.is_empty() {
            return Ok(sandbox);
        }
        for k in &sandbox.kinds {
            let p = sandbox.ns_path(k);
            std::fs::File::create(&p).map_err(|e| RuntimeError::io("create", &p, e))?;
        }
        let targets: Vec<(&'static str, PathBuf)> = sandbox
            .kinds
            .iter()
            .filter(|k| **k != "pid")
            .map(|k| (*k, sandbox.ns_path(k)))
            .collect();
        let has = |kind: &str| sandbox.kinds.contains(&kind);
        let (net, uts) = (has("net"), has("uts"));
        let mut flags = CloneFlags::empty();
        for (kind, flag) in [
            ("net", CloneFlags::CLONE_NEWNET),
            ("ipc", CloneFlags::CLONE_NEWIPC),
            ("uts", CloneFlags::CLONE_NEWUTS),
        ] {
            if has(kind) {
                flags |= flag;
            }
        }
        let hostname = hostname.to_string();
        let result = std::thread::spawn(move || -> Result<(), RuntimeError> {
            unshare(flags).map_err(|e| RuntimeError::sys("unshare(net|ipc|uts)", e))?;
            if uts {
                nix::unistd::sethostname(&hostname)
                    .map_err(|e| RuntimeError::sys("sethostname", e))?;
            }
            if net {
                bring_up_loopback()
                    .map_err(|e| RuntimeError::io("bring up lo in", "pod netns", e))?;
            }
            for (kind, target) in &targets {
                let src = format!("/proc/thread-self/ns/{kind}");
                mount(
                    Some(src.as_str()),
                    target,
                    None::<&str>,
                    MsFlags::MS_BIND,
                    None::<&str>,
                )
                .map_err(|e| RuntimeError::sys("bind-mount namespace file", e))?;
            }
            Ok(())
        })
        .join();
        match result {
            Ok(Ok(())) => Ok(sandbox),
            Ok(Err(e)) => {
                let _ = sandbox.remove();
                Err(e)
            }
            Err(_) => {
                let _ = sandbox.remove();
                Err(RuntimeError::Start {
                    id: sandbox.dir.display().to_string(),
                    message: "sandbox thread panicked".into(),
                })
            }
        }
    }

    /// Kills the pod's init (shared PID namespace), if it has one running; idempotent.
    pub fn kill_pid_init(&self) {
        if let Ok(record) = std::fs::read_to_string(self.dir.join(POD_INIT)) {
            let mut fields = record.split_whitespace().map(str::parse::<u64>);
            if let (Some(Ok(pid)), Some(Ok(started))) = (fields.next(), fields.next()) {
                if let Ok(pid) = i32::try_from(pid) {
                    super::pod_init::kill(pid, started);
                }
            }
        }
    }

    /// Kills the pod's init (shared PID namespace), unmounts the namespace files and removes
    /// the directory; idempotent.
    pub fn remove(&self) -> Result<(), RuntimeError> {
        self.kill_pid_init();
        for k in SANDBOX_NAMESPACES {
            let p = self.ns_path(k);
            if is_nsfs(&p) {
                umount2(&p, MntFlags::MNT_DETACH).map_err(|e| RuntimeError::sys("umount ns", e))?;
            }
        }
        match std::fs::remove_dir_all(&self.dir) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(RuntimeError::io("remove", &self.dir, e)),
        }
    }
}

/// Whether `path` is a mounted namespace file (nsfs), not the empty placeholder under it.
fn is_nsfs(path: &Path) -> bool {
    const NSFS_MAGIC: i64 = 0x6e736673;
    nix::sys::statfs::statfs(path)
        .map(|s| s.filesystem_type().0 == NSFS_MAGIC)
        .unwrap_or(false)
}
