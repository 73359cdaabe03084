//! Throwaway named network namespaces (`ip netns add`), deleted on drop: the "nodes", "pods"
//! and sealed worlds of bosun's kernel tests and benchmarks.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use nix::sched::{setns, CloneFlags};

use crate::command::{try_run, CommandError};

/// Why a namespace could not be made or entered.
#[derive(Debug, thiserror::Error)]
pub enum NetnsError {
    #[error(transparent)]
    Command(#[from] CommandError),
    #[error("opening {path}: {source}")]
    Open {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("entering netns {name}: {source}")]
    Enter { name: String, source: nix::Error },
    #[error("a thread inside netns {name} panicked")]
    ThreadPanicked { name: String },
}

/// A named network namespace with `lo` up and nothing else; deleted on drop.
pub struct Netns {
    pub name: String,
    file: File,
}

impl Netns {
    /// Creates the namespace `name` (a leftover of a killed earlier run is replaced) and
    /// brings `lo` up. On any failure after `ip netns add`, the namespace is deleted again.
    pub fn create(name: &str) -> Result<Netns, NetnsError> {
        let _ = Command::new("ip")
            .args(["netns", "del", name])
            .stderr(Stdio::null())
            .status();
        try_run(Command::new("ip").args(["netns", "add", name]))?;
        let path = Path::new("/run/netns").join(name);
        let file = match File::open(&path) {
            Ok(file) => file,
            Err(source) => {
                let _ = Command::new("ip").args(["netns", "del", name]).status();
                return Err(NetnsError::Open { path, source });
            }
        };
        let ns = Netns {
            name: name.to_owned(),
            file,
        };
        ns.try_ip(&["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Creates a namespace named [`crate::unique`]`(prefix)`; panics when it cannot.
    pub fn new(prefix: &str) -> Netns {
        let name = crate::unique(prefix);
        Self::create(&name).unwrap_or_else(|e| panic!("creating netns {name}: {e}"))
    }

    /// `/run/netns/NAME`, for `--net=` arguments and CNI's `CNI_NETNS`.
    pub fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }

    /// The open namespace file, for `setns` in a child about to exec.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// `ip -n NAME args…`.
    pub fn try_ip(&self, args: &[&str]) -> Result<Output, CommandError> {
        try_run(Command::new("ip").arg("-n").arg(&self.name).args(args))
    }

    /// `ip -n NAME args…`; panics with the command and its stderr when it fails.
    pub fn ip(&self, args: &[&str]) -> Output {
        self.try_ip(args).unwrap_or_else(|e| panic!("{e}"))
    }

    /// A command that runs `program` inside this namespace (`nsenter --net`, which, unlike
    /// `ip netns exec`, leaves the caller's /sys and cgroup as they are).
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new("nsenter");
        command
            .arg(format!("--net={}", self.path().display()))
            .arg(program);
        command
    }

    /// Runs `f` on a thread that entered this namespace (setns is per thread, so whatever
    /// `f` spawns starts here too).
    pub fn try_run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> Result<T, NetnsError> {
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    setns(&self.file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                        NetnsError::Enter {
                            name: self.name.clone(),
                            source,
                        }
                    })?;
                    Ok(f())
                })
                .join()
                .map_err(|_| NetnsError::ThreadPanicked {
                    name: self.name.clone(),
                })?
        })
    }

    /// [`Netns::try_run_in`], panicking when the namespace cannot be entered.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        self.try_run_in(f).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Whether one ping (busybox, 2 s timeout) from this namespace to `dst` is answered.
    pub fn ping(&self, dst: &str) -> bool {
        self.command("/bin/busybox")
            .args(["ping", "-c1", "-W2", dst])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = try_run(Command::new("ip").args(["netns", "del", &self.name])) {
            eprintln!("warning: {e}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_namespace_has_only_lo_and_is_gone_after_drop() {
        assert!(
            nix::unistd::geteuid().is_root(),
            "kernel tests need root: run them with `cargo xtask test` as root"
        );
        let ns = Netns::new("bst-");
        let path = ns.path();
        assert!(path.exists());
        let links = String::from_utf8_lossy(&ns.ip(&["-o", "link"]).stdout).into_owned();
        assert_eq!(links.lines().count(), 1, "{links}");
        assert!(links.contains("lo:") && links.contains("UP"), "{links}");
        let routes = String::from_utf8_lossy(&ns.ip(&["route"]).stdout).into_owned();
        assert!(routes.trim().is_empty(), "no route out: {routes}");
        // A thread inside sees the namespace's own interfaces, the caller is unaffected.
        let inside = ns.run_in(|| std::fs::read_link("/proc/thread-self/ns/net"));
        let outside = std::fs::read_link("/proc/thread-self/ns/net");
        assert_ne!(inside.ok(), outside.ok());
        drop(ns);
        assert!(!path.exists());
    }
}
