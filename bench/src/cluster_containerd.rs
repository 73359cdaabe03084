//! The cluster benchmark's peer: Debian's containerd starting the same `sleep` containers with
//! `ctr run -d` ([`CONCURRENCY`] at once), from the same busybox OCI image imported into a
//! private namespace. The containerd is a private instance (its own config, root, state and
//! socket under `target/bench-work/cluster/containerd`), so the machine's own containerd, if
//! any, is untouched. It has no API server, no scheduler, no pod network (each container gets
//! a netns with only lo) and no status reporting: it only starts the processes, one runc
//! shim per container as containerd runs one per pod. runc's state goes under the
//! work directory too (`--runc-root`); only the shims' sockets must be in
//! `/run/containerd/s`. Torn down however it ends: the containers' processes (by their
//! cgroups), the shims (by the socket they name), the daemon, the mounts, the shims' sockets
//! and the directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cluster_env::{cgroup_dirs, kill_tree, procs, rmdir_tree, unmount_under, PREFIX};
use super::control_procs::Guarded;
use xtask::util;

pub const CONTAINERD: &str = "/usr/bin/containerd";
/// `ctr run` processes at once.
pub const CONCURRENCY: usize = 8;
const IMAGE: &str = "bosun.test/busybox:1";
const START_LIMIT: Duration = Duration::from_secs(30);

/// A private containerd; everything it made goes when it is dropped.
struct Containerd {
    dir: PathBuf,
    daemon: Option<Guarded>,
    /// Containers `0..count` may exist (their shim sockets are removed at the end).
    count: usize,
}

impl Containerd {
    fn socket(&self) -> PathBuf {
        self.dir.join("containerd.sock")
    }

    fn start(dir: &Path, count: usize) -> Result<Self> {
        if !Path::new(CONTAINERD).is_file() {
            bail!("{CONTAINERD} missing: apt-get install containerd (cargo xtask setup)");
        }
        let mut this = Containerd {
            dir: dir.to_owned(),
            daemon: None,
            count,
        };
        this.teardown();
        std::fs::create_dir_all(dir)?;
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n",
            root = dir.join("root").display(),
            state = dir.join("state").display(),
            sock = this.socket().display(),
        );
        let config_path = dir.join("config.toml");
        std::fs::write(&config_path, config)?;
        let args: Vec<OsString> = vec!["--config".into(), config_path.into()];
        this.daemon = Some(Guarded::spawn(
            "containerd",
            &dir.join("containerd.log"),
            Path::new(CONTAINERD),
            &args,
        )?);
        let deadline = Instant::now() + START_LIMIT;
        while !util::succeeds(&mut this.ctr(["version"])) {
            if let Some(daemon) = &this.daemon {
                daemon.check()?;
            }
            if Instant::now() > deadline {
                bail!("containerd not answering after {START_LIMIT:?}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(this)
    }

    fn ctr<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(&self, args: I) -> Command {
        let mut c = Command::new("ctr");
        c.arg("--address")
            .arg(self.socket())
            .args(["--namespace", PREFIX])
            .args(args);
        c
    }

    /// Kills what runs, removes what was made.
    fn teardown(&mut self) {
        let cgroups = cgroup_dirs(PREFIX);
        cgroups.iter().for_each(|d| kill_tree(d));
        let socket = self.socket().display().to_string();
        for pid in shims(&socket) {
            let _ =
                nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), nix::sys::signal::SIGKILL);
        }
        drop(self.daemon.take());
        let deadline = Instant::now() + Duration::from_secs(10);
        while cgroups.iter().map(|d| procs(d)).sum::<usize>() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        unmount_under(&self.dir);
        cgroups.iter().for_each(|d| rmdir_tree(d));
        // The shims' sockets are always under /run/containerd/s, named by a hash.
        for i in 0..self.count {
            let _ = std::fs::remove_file(shim_socket(&socket, &container(i)));
        }
        for dir in [SHIM_SOCKETS, "/run/containerd"] {
            let _ = std::fs::remove_dir(dir); // only when empty: never another containerd's
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        self.teardown();
    }
}

/// Where containerd 1.6's shims put their sockets, whatever the daemon's state directory.
const SHIM_SOCKETS: &str = "/run/containerd/s";

/// The socket of container `id`'s shim (`SocketAddress` of containerd's shim package: the
/// sha256 of `<daemon socket>/<namespace>/<id>`).
fn shim_socket(daemon_socket: &str, id: &str) -> PathBuf {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{daemon_socket}/{PREFIX}/{id}").as_bytes());
    Path::new(SHIM_SOCKETS).join(hex::encode(digest))
}

/// The runc shims serving `socket` (`containerd-shim-runc-v2 … -address SOCKET`).
fn shims(socket: &str) -> Vec<i32> {
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        let Ok(raw) = std::fs::read(e.path().join("cmdline")) else {
            continue;
        };
        let argv: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
        if is_shim_of(&argv, socket) {
            found.push(pid);
        }
    }
    found
}

fn is_shim_of(argv: &[&[u8]], socket: &str) -> bool {
    let shim = argv
        .first()
        .is_some_and(|a| a.ends_with(b"containerd-shim-runc-v2"));
    shim && argv
        .windows(2)
        .any(|w| w[0] == b"-address" && w[1] == socket.as_bytes())
}

/// The name of container `i`.
fn container(i: usize) -> String {
    format!("sleep-{i:05}")
}

/// Starts `count` sleep containers; returns the seconds from the first `ctr run` to the last
/// one's return (each returns once its task runs).
pub fn measure(count: usize, dir: &Path) -> Result<f64> {
    let containerd = Containerd::start(dir, count)?;
    let runc_root = dir.join("runc");
    let image = util::target_dir().join("images").join("busybox.tar");
    util::output(containerd.ctr(["images", "import"]).arg(&image))
        .with_context(|| format!("importing {}", image.display()))?;
    let next = AtomicUsize::new(0);
    let start = Instant::now();
    let failures: Vec<String> = std::thread::scope(|scope| {
        let workers: Vec<_> = (0..CONCURRENCY)
            .map(|_| {
                scope.spawn(|| {
                    let mut failures = Vec::new();
                    loop {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        if i >= count {
                            return failures;
                        }
                        let run = containerd
                            .ctr(["run", "-d", "--null-io", "--runc-root"])
                            .arg(&runc_root)
                            .args([IMAGE, &container(i)])
                            .args(["sleep", "3600"])
                            .output();
                        match run {
                            Ok(out) if out.status.success() => {}
                            Ok(out) => failures.push(String::from_utf8_lossy(&out.stderr).into()),
                            Err(e) => failures.push(e.to_string()),
                        }
                    }
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap_or_default())
            .collect()
    });
    let elapsed = start.elapsed().as_secs_f64();
    if let Some(first) = failures.first() {
        bail!("{} of {count} `ctr run` failed: {first}", failures.len());
    }
    let tasks = util::output(&mut containerd.ctr(["tasks", "ls"]))?;
    let running = tasks.lines().filter(|l| l.contains("RUNNING")).count();
    if running != count {
        bail!("containerd: {running} of {count} tasks RUNNING");
    }
    Ok(elapsed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_shims_of_our_socket_are_ours() {
        let ours: Vec<&[u8]> = vec![
            b"/usr/bin/containerd-shim-runc-v2",
            b"-namespace",
            b"x",
            b"-address",
            b"/w/containerd.sock",
        ];
        assert!(is_shim_of(&ours, "/w/containerd.sock"));
        assert!(!is_shim_of(&ours, "/run/containerd/containerd.sock"));
        let other: Vec<&[u8]> = vec![b"/usr/bin/containerd", b"-address", b"/w/containerd.sock"];
        assert!(!is_shim_of(&other, "/w/containerd.sock"));
    }

    #[test]
    fn shim_sockets_are_named_as_containerd_names_them() {
        // The formula checked against the sockets containerd 1.6 made on this machine.
        let ours = shim_socket("/w/containerd.sock", "sleep-00000");
        use sha2::Digest;
        let expected = hex::encode(sha2::Sha256::digest(
            b"/w/containerd.sock/bosun-bench-cluster/sleep-00000",
        ));
        assert_eq!(ours, Path::new("/run/containerd/s").join(expected));
    }
}
