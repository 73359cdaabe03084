//! `cargo xtask down`: undoes `cargo xtask up`, step by step, each step tolerating that its
//! object is already gone (idempotent). The pods go through the agent first (manifests
//! removed, bounded wait), then every agent of `up`'s state gets SIGTERM (found by command
//! lines naming `up`'s root or run dir and by who holds `up`'s API socket, so an agent
//! restarted by hand goes too, not only the one in `up`'s pidfile); whatever is left in the
//! `bosun-up` cgroups is killed, and the mounts, cgroups, pinned programs and maps, the netns
//! (with its routes and veths) and the directories are removed. Touches nothing not named by
//! `up`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use crate::up::{self, BPFFS, CGROUP_ROOT, NETNS, ROOT, RUN_DIR};
use crate::util;

const PODS_GONE_LIMIT: Duration = Duration::from_secs(30);
const AGENT_EXIT_LIMIT: Duration = Duration::from_secs(15);

pub fn pidfile() -> PathBuf {
    up::up_dir().join("agent.pid")
}

/// Every running agent of `up`'s state, however it was started (the one `up` started and
/// recorded in its pidfile, or one restarted by hand): any `bosun-agent` whose command line
/// names `up`'s root or run dir, and whoever holds `up`'s API socket. Sorted, without
/// duplicates, never this process.
pub fn running_agents() -> Vec<i32> {
    let mut pids = Vec::new();
    for pid in all_pids() {
        if let Some(argv) = cmdline(pid) {
            if names_up_state(&argv, &cwd(pid)) {
                pids.push(pid);
            }
        }
    }
    pids.extend(socket_holders(&Path::new(RUN_DIR).join("agent.sock")));
    let me = std::process::id() as i32;
    pids.retain(|p| *p != me);
    pids.sort_unstable();
    pids.dedup();
    pids
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

/// Whether `argv` (run in `cwd`) is a `bosun-agent` using `up`'s root or run dir.
fn names_up_state(argv: &[String], cwd: &Path) -> bool {
    let is_agent = argv
        .first()
        .and_then(|a| Path::new(a).file_name())
        .is_some_and(|n| n == "bosun-agent");
    if !is_agent {
        return false;
    }
    let ours = |flag: &str, value: &str| {
        let wanted = match flag {
            "--root" => ROOT,
            "--run-dir" => RUN_DIR,
            _ => return false,
        };
        normalize(value, cwd) == Path::new(wanted)
    };
    argv.iter()
        .enumerate()
        .skip(1)
        .any(|(i, a)| match a.split_once('=') {
            Some((flag, value)) => ours(flag, value),
            None => argv.get(i + 1).is_some_and(|v| ours(a, v)),
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

/// Processes holding a unix socket bound to `path` (the agent serving its API there).
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

pub fn run() -> Result<()> {
    if !util::is_root() {
        anyhow::bail!("cargo xtask down must run as root");
    }
    let agents = running_agents();
    if !agents.is_empty() {
        delete_pods_through_agent();
        for pid in &agents {
            println!("stopping agent pid {pid}");
            let _ = kill(Pid::from_raw(*pid), Signal::SIGTERM);
        }
        let deadline = Instant::now() + AGENT_EXIT_LIMIT;
        let alive = |pid: &i32| Path::new(&format!("/proc/{pid}")).exists();
        while agents.iter().any(alive) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        for pid in agents.iter().filter(|p| alive(p)) {
            let _ = kill(Pid::from_raw(*pid), Signal::SIGKILL);
        }
    }
    kill_cgroup_processes();
    unmount_under(&[ROOT, RUN_DIR]);
    remove_cgroups();
    if Path::new("/run/netns").join(NETNS).exists() {
        util::run(&mut util::cmd("ip", ["netns", "del", NETNS]))?;
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

/// Removes the manifests so the agent deletes its pods (grace periods, CNI DEL, cgroups,
/// mounts), and waits for them to go, bounded.
fn delete_pods_through_agent() {
    let manifests = up::up_dir().join("manifests");
    for e in std::fs::read_dir(&manifests)
        .into_iter()
        .flatten()
        .flatten()
    {
        let _ = std::fs::remove_file(e.path());
    }
    println!("deleting pods through the agent");
    let deadline = Instant::now() + PODS_GONE_LIMIT;
    while Instant::now() < deadline {
        let out = up::agent().args(["ps", "--json"]).output();
        let empty = out.ok().filter(|o| o.status.success()).is_some_and(|o| {
            serde_json::from_slice::<Vec<serde_json::Value>>(&o.stdout)
                .is_ok_and(|pods| pods.is_empty())
        });
        if empty {
            return;
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    println!("pods still there after {PODS_GONE_LIMIT:?}; killing what is left");
}

/// `<hierarchy>/bosun-up` in every mounted cgroup hierarchy (v1 controllers and v2).
fn cgroup_dirs() -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    for h in std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
    {
        let d = h.path().join(CGROUP_ROOT);
        if d.is_dir() {
            dirs.push(d);
        }
    }
    let unified = Path::new("/sys/fs/cgroup").join(CGROUP_ROOT);
    if unified.join("cgroup.procs").exists() && !dirs.contains(&unified) {
        dirs.push(unified);
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
    fn agents_naming_ups_root_or_run_dir_are_found_however_spelled() {
        let cwd = Path::new("/work/bosun");
        for ours in [
            "target/release/bosun-agent --root /var/lib/bosun-up --manifests m",
            "/usr/local/bin/bosun-agent --run-dir /run/bosun-up/ ps",
            "bosun-agent --run-dir=/run/bosun-up --manifests target/up/manifests",
            "./bosun-agent --root=/var/lib/../lib/bosun-up run pod.yaml",
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
