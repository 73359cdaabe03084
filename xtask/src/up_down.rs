//! `cargo xtask down`: undoes `cargo xtask up`, step by step, each step tolerating that its
//! object is already gone (idempotent). The pods go through the agent first (manifests
//! removed, bounded wait), then the agent gets SIGTERM; whatever is left in the `bosun-up`
//! cgroups is killed, and the mounts, cgroups, pinned programs and maps, the netns (with its
//! routes and veths) and the directories are removed. Touches nothing not named by `up`.

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

/// The pid of the agent `up` started, if it still runs.
pub fn running_agent() -> Result<Option<i32>> {
    let Ok(text) = std::fs::read_to_string(pidfile()) else {
        return Ok(None);
    };
    let pid: i32 = text.trim().parse().context("parsing target/up/agent.pid")?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let ours = String::from_utf8_lossy(&cmdline).contains("bosun-agent")
        && String::from_utf8_lossy(&cmdline).contains(RUN_DIR);
    Ok(ours.then_some(pid))
}

pub fn run() -> Result<()> {
    if !util::is_root() {
        anyhow::bail!("cargo xtask down must run as root");
    }
    if let Some(pid) = running_agent()? {
        delete_pods_through_agent();
        println!("stopping agent pid {pid}");
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
        let deadline = Instant::now() + AGENT_EXIT_LIMIT;
        while Path::new(&format!("/proc/{pid}")).exists() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
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
