//! `cargo xtask down`: undoes `cargo xtask up`, step by step, each step tolerating that its
//! object is already gone (idempotent). The workloads go through the API first (`kubectl
//! delete`, bounded), so the agents stop their pods properly; then every agent and control
//! process of `up`'s state gets SIGTERM (found by command lines naming `up`'s directories and
//! by who holds a node's API socket, so a process restarted by hand goes too, not only those in
//! `up`'s pidfiles; the nodes' `bosun-csi-local` drivers too); whatever is left in the
//! `bosun-up…` cgroups is killed, and the mounts, the loop devices of the drivers' volume
//! files, cgroups, pinned programs and maps, the netns (with their routes and veths) and the
//! directories are removed. Touches nothing not named by `up`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::up::{self, BPFFS, CGROUP_PREFIX, ROOT, RUN_DIR};
use crate::{up_net, up_storage, util};

const PODS_GONE_LIMIT: Duration = Duration::from_secs(40);
const EXIT_LIMIT: Duration = Duration::from_secs(15);

/// Every running agent or control process of `up`'s state, however it was started: any
/// `bosun-agent`/`bosun-control` whose command line names a directory in `up`'s root or run
/// dir, and whoever holds a node's API socket. Sorted, without duplicates, never this process.
pub fn running_processes() -> Vec<i32> {
    let mut pids = Vec::new();
    for pid in all_pids() {
        if let Some(argv) = cmdline(pid) {
            if names_up_state(&argv, &cwd(pid)) {
                pids.push(pid);
            }
        }
    }
    for e in std::fs::read_dir(RUN_DIR).into_iter().flatten().flatten() {
        pids.extend(socket_holders(&e.path().join("agent.sock")));
    }
    let me = std::process::id() as i32;
    pids.retain(|p| *p != me);
    pids.sort_unstable();
    pids.dedup();
    pids
}

/// How many nodes `up` made (from their directories).
pub fn node_count() -> u8 {
    let count = std::fs::read_dir(ROOT)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("node-"))
        .count();
    u8::try_from(count).unwrap_or(u8::MAX)
}

fn all_pids() -> Vec<i32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
        .collect()
}

fn cmdline(pid: i32) -> Option<Vec<String>> {
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter(|a| !a.is_empty())
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect(),
    )
}

fn cwd(pid: i32) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/cwd")).unwrap_or_else(|_| PathBuf::from("/"))
}

/// `path` made absolute against `cwd`, with `.`, `..` and trailing slashes resolved lexically.
fn normalize(path: &str, cwd: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in cwd.join(path).components() {
        match c {
            Component::ParentDir => {
                out.pop();
            }
            Component::CurDir => {}
            other => out.push(other),
        }
    }
    out
}

/// Whether `argv` (run in `cwd`) is a `bosun-agent` or `bosun-control` using `up`'s root or
/// run dir (or a directory in them) as its `--root`, `--run-dir` or `--data-dir`.
fn names_up_state(argv: &[String], cwd: &Path) -> bool {
    let ours = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "bosun-agent" || n == "bosun-control" || n == "bosun-csi-local");
    if !ours {
        return false;
    }
    let in_up = |flag: &str, value: &str| {
        if !matches!(flag, "--root" | "--run-dir" | "--data-dir" | "--state-dir") {
            return false;
        }
        let path = normalize(value, cwd);
        path.starts_with(ROOT) || path.starts_with(RUN_DIR)
    };
    argv.iter()
        .enumerate()
        .skip(1)
        .any(|(i, a)| match a.split_once('=') {
            Some((flag, value)) => in_up(flag, value),
            None => argv.get(i + 1).is_some_and(|v| in_up(a, v)),
        })
}

/// Inodes of the unix sockets bound to `path`, from the text of /proc/net/unix
/// (`Num RefCount Protocol Flags Type St Inode Path`).
fn socket_inodes(proc_net_unix: &str, path: &Path) -> Vec<u64> {
    proc_net_unix
        .lines()
        .skip(1)
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && Path::new(f[7]) == path)
                .then(|| f[6].parse().ok())
                .flatten()
        })
        .collect()
}

/// Processes holding a unix socket bound to `path` (an agent serving its API there).
fn socket_holders(path: &Path) -> Vec<i32> {
    let table = std::fs::read_to_string("/proc/net/unix").unwrap_or_default();
    let wanted: Vec<String> = socket_inodes(&table, path)
        .iter()
        .map(|i| format!("socket:[{i}]"))
        .collect();
    if wanted.is_empty() {
        return Vec::new();
    }
    all_pids()
        .into_iter()
        .filter(|pid| {
            std::fs::read_dir(format!("/proc/{pid}/fd"))
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|fd| std::fs::read_link(fd.path()).ok())
                .any(|target| wanted.iter().any(|w| target == Path::new(w)))
        })
        .collect()
}

fn is_control(pid: i32) -> bool {
    cmdline(pid)
        .and_then(|a| a.first().cloned())
        .is_some_and(|a| {
            Path::new(&a)
                .file_name()
                .is_some_and(|n| n == "bosun-control")
        })
}

/// SIGTERM, a bounded wait, then SIGKILL for what is left.
fn stop(pids: &[i32]) {
    for pid in pids {
        println!("stopping pid {pid}");
        let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
    }
    let deadline = Instant::now() + EXIT_LIMIT;
    let alive = |pid: &i32| Path::new(&format!("/proc/{pid}")).exists();
    while pids.iter().any(alive) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids.iter().filter(|p| alive(p)) {
        let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
    }
}

pub fn run() -> Result<()> {
    if !util::is_root() {
        anyhow::bail!("cargo xtask down must run as root");
    }
    let running = running_processes();
    if !running.is_empty() {
        delete_workloads();
        // The agents first (the control process still answers them), then the control.
        let (controls, agents): (Vec<i32>, Vec<i32>) =
            running.iter().partition(|p| is_control(**p));
        stop(&agents);
        stop(&controls);
    }
    kill_cgroup_processes();
    unmount_under(&[ROOT, RUN_DIR]);
    up_storage::detach_loops();
    remove_cgroups();
    for ns in up_net::existing() {
        util::run(&mut util::cmd("ip", ["netns", "del", &ns]))?;
        println!("removed netns {ns}");
    }
    // Unlinking the pins (links, programs, maps) detaches the hooks and frees the maps.
    for dir in [
        PathBuf::from(BPFFS),
        PathBuf::from(ROOT),
        PathBuf::from(RUN_DIR),
        up::up_dir(),
    ] {
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => println!("removed {}", dir.display()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("removing {}", dir.display())),
        }
    }
    println!(
        "bosun is down: no process, mount, cgroup, netns, route or pinned map of `up` is left"
    );
    Ok(())
}

/// Deletes the demo's workloads through the API so the agents stop their pods (grace
/// periods, CNI DEL, cgroups, mounts), and waits for the pods to go, bounded.
fn delete_workloads() {
    if !up::admin_kubeconfig().exists() {
        return;
    }
    println!("deleting the workloads through the API");
    let _ = up::kubectl()
        .args([
            "--request-timeout=10s",
            "delete",
            "deployments,statefulsets,services,pods,persistentvolumeclaims",
            "--all",
        ])
        .args(["--wait=false"])
        .status();
    let deadline = Instant::now() + PODS_GONE_LIMIT;
    while Instant::now() < deadline {
        let out = up::kubectl()
            .args(["--request-timeout=5s", "get", "pods", "-A", "-o", "name"])
            .output();
        if out.is_ok_and(|o| o.status.success() && o.stdout.is_empty()) {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("pods still there after {PODS_GONE_LIMIT:?}; killing what is left");
}

/// Whether a cgroup directory name is one of `up`'s roots (`bosun-up` or `bosun-up-<n>`).
fn is_up_cgroup(name: &str) -> bool {
    up_net::is_ours(name) && name.starts_with(CGROUP_PREFIX)
}

/// `up`'s cgroup roots in every mounted cgroup hierarchy (v1 controllers and v2).
fn cgroup_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let children = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .into_iter()
            .flatten()
            .flatten()
            .filter(|e| is_up_cgroup(&e.file_name().to_string_lossy()))
            .map(|e| e.path())
            .filter(|p| p.is_dir())
            .collect()
    };
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        dirs.extend(children(&h.path()));
    }
    // cgroup v2 mounted at /sys/fs/cgroup itself.
    if Path::new("/sys/fs/cgroup/cgroup.procs").exists() {
        for d in children(Path::new("/sys/fs/cgroup")) {
            if !dirs.contains(&d) {
                dirs.push(d);
            }
        }
    }
    dirs
}

fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            walk(&e.path(), out);
        }
    }
    out.push(dir.to_path_buf());
}

fn kill_cgroup_processes() {
    let mut all = Vec::new();
    for d in cgroup_dirs() {
        walk(&d, &mut all);
    }
    let mut killed = 0;
    for d in &all {
        let procs = std::fs::read_to_string(d.join("cgroup.procs")).unwrap_or_default();
        for pid in procs.lines().filter_map(|p| p.parse::<i32>().ok()) {
            if kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok() {
                killed += 1;
            }
        }
    }
    if killed > 0 {
        println!("killed {killed} leftover container processes");
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// Removes the cgroup trees bottom-up (`walk` lists children before parents).
fn remove_cgroups() {
    for d in cgroup_dirs() {
        let mut all = Vec::new();
        walk(&d, &mut all);
        for dir in all {
            let _ = std::fs::remove_dir(&dir);
        }
        if !d.exists() {
            println!("removed cgroup {}", d.display());
        }
    }
}

/// Detaches every mount below the given directories, deepest first.
fn unmount_under(dirs: &[&str]) {
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| dirs.iter().any(|d| m.starts_with(&format!("{d}/"))))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        if nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH).is_ok() {
            println!("unmounted {t}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn argv(s: &str) -> Vec<String> {
        s.split(' ').map(str::to_string).collect()
    }

    #[test]
    fn processes_naming_ups_directories_are_found_however_spelled() {
        let cwd = Path::new("/work/bosun");
        for ours in [
            "target/release/bosun-agent --root /var/lib/bosun-up/node-1 --kubeconfig k",
            "/usr/local/bin/bosun-agent --run-dir /run/bosun-up/node-2/ ps",
            "bosun-agent --run-dir=/run/bosun-up --manifests target/up/manifests",
            "./bosun-agent --root=/var/lib/../lib/bosun-up run pod.yaml",
            "bosun-control --data-dir /var/lib/bosun-up/control --secure-port 16443",
            "target/release/bosun-csi-local --endpoint unix:///x.sock --state-dir /var/lib/bosun-up/csi-local/node-1",
        ] {
            assert!(names_up_state(&argv(ours), cwd), "{ours}");
        }
        assert!(names_up_state(
            &argv("bosun-agent --run-dir bosun-up"),
            Path::new("/run")
        ));
        for other in [
            "bosun-agent --root /var/lib/bosun --run-dir /run/bosun",
            "bosun-agent --root /var/lib/bosun-up2",
            "vim --root /var/lib/bosun-up",
            "bosun-agent --manifests /run/bosun-up",
            "bosun-control --data-dir /var/lib/bosun-control",
            "bosun-agent --root",
        ] {
            assert!(!names_up_state(&argv(other), cwd), "{other}");
        }
    }

    #[test]
    fn socket_inodes_are_read_from_proc_net_unix() {
        let table = "Num       RefCount Protocol Flags    Type St Inode Path
0000000032c205e7: 00000003 00000000 00000000 0001 03 133309
00000000a5e9a811: 00000002 00000000 00010000 0001 01 4242 /run/bosun-up/agent.sock
00000000a5e9a812: 00000002 00000000 00010000 0001 01 4243 /run/bosun-up/agent.sock.old
00000000a5e9a813: 00000003 00000000 00000000 0001 03 4244 /run/bosun-up/agent.sock
";
        assert_eq!(
            socket_inodes(table, Path::new("/run/bosun-up/agent.sock")),
            vec![4242, 4244]
        );
    }

    #[test]
    fn the_holder_of_a_listening_socket_is_found() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("agent.sock");
        let _listener = std::os::unix::net::UnixListener::bind(&path).expect("bind");
        let me = std::process::id() as i32;
        assert_eq!(socket_holders(&path), vec![me]);
        assert!(socket_holders(&dir.path().join("other.sock")).is_empty());
    }
}
