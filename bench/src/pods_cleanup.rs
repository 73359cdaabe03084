//! Finding and removing what the pods benchmark leaves behind: processes and cgroups named
//! `bosun-bench*`, crun/runc container state, mounts under the work dir, the work dir. The
//! `_in` variants do the same for another cgroup prefix (the probes bench's).
//!
//! [`report_leftovers`] only looks (what the agent failed to clean up is a finding worth
//! printing); [`cleanup`] removes everything, bounded in time, and only warns on failure.

use std::path::{Path, PathBuf};
use std::thread::sleep;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::pods::CGROUP_ROOT;
use super::pods_peers::{state_dir, Peer};
use xtask::util;

const CGROUP_FS: &str = "/sys/fs/cgroup";
const CLEANUP_LIMIT: Duration = Duration::from_secs(20);

/// Notes what the agent left after `phase`: mounts under `work`, pod cgroups under the
/// agent's cgroup root, files under its run dir's `pods/`, live processes in bench cgroups.
pub fn report_leftovers(phase: &str, work: &Path, notes: &mut Vec<String>) {
    report_leftovers_in(phase, work, CGROUP_ROOT, notes);
}

/// [`report_leftovers`] for an agent whose cgroup root is `root` (also the cgroup prefix).
pub fn report_leftovers_in(phase: &str, work: &Path, root: &str, notes: &mut Vec<String>) {
    let mounts = mounts_under(work);
    if !mounts.is_empty() {
        notes.push(format!(
            "after {phase}: {} mounts left under {} (e.g. {})",
            mounts.len(),
            work.display(),
            mounts[0].display()
        ));
    }
    // The agent keeps its QoS-tier cgroups (besteffort, burstable); pods must go.
    let pod_cgroups: Vec<PathBuf> = bench_cgroups(root)
        .into_iter()
        .filter(|dir| {
            dir.components().any(|c| c.as_os_str() == root)
                && dir
                    .file_name()
                    .is_some_and(|name| name.to_string_lossy().starts_with("pod"))
        })
        .collect();
    if !pod_cgroups.is_empty() {
        notes.push(format!(
            "after {phase}: {} pod cgroups left below {root} (e.g. {})",
            pod_cgroups.len(),
            pod_cgroups[0].display()
        ));
    }
    let pods_dir = work.join("run").join("pods");
    let entries = std::fs::read_dir(&pods_dir).map_or(0, Iterator::count);
    if entries > 0 {
        notes.push(format!(
            "after {phase}: {entries} entries left in {}",
            pods_dir.display()
        ));
    }
    let procs = bench_processes(root);
    if !procs.is_empty() {
        notes.push(format!(
            "after {phase}: {} processes still in {root}* cgroups",
            procs.len()
        ));
    }
}

/// Removes everything the bench made (see the module doc); `verbose` prints what it did.
pub fn cleanup(work: &Path, verbose: bool) {
    cleanup_in(work, CGROUP_ROOT, verbose);
}

/// [`cleanup`] of the cgroups (and their processes) whose top-level name starts with `prefix`.
pub fn cleanup_in(work: &Path, prefix: &str, verbose: bool) {
    let deadline = Instant::now() + CLEANUP_LIMIT;
    for peer in [Peer::Crun, Peer::Runc] {
        delete_containers(work, peer, deadline);
    }
    let mut killed = 0;
    while Instant::now() < deadline {
        let procs = bench_processes(prefix);
        if procs.is_empty() {
            break;
        }
        for pid in procs {
            killed += usize::from(kill(Pid::from_raw(pid), Signal::SIGKILL).is_ok());
        }
        sleep(Duration::from_millis(100));
    }
    let unmounted = unmount_under(work);
    let mut cgroups = bench_cgroups(prefix);
    while !cgroups.is_empty() && Instant::now() < deadline {
        // Deepest first: a cgroup cannot go before its children.
        cgroups.sort_by_key(|dir| std::cmp::Reverse(dir.components().count()));
        for dir in &cgroups {
            let _ = std::fs::remove_dir(dir);
        }
        cgroups = bench_cgroups(prefix);
        if !cgroups.is_empty() {
            sleep(Duration::from_millis(100));
        }
    }
    if !cgroups.is_empty() {
        eprintln!(
            "warning: {} cgroups left (e.g. {})",
            cgroups.len(),
            cgroups[0].display()
        );
    }
    if work.exists() {
        if let Err(error) = std::fs::remove_dir_all(work) {
            eprintln!("warning: removing {}: {error}", work.display());
        }
    }
    if let Some(parent) = work.parent() {
        let _ = std::fs::remove_dir(parent); // only if empty
    }
    if verbose {
        println!(
            "cleanup: killed {killed} processes, unmounted {unmounted} mounts, removed {}",
            work.display()
        );
    }
}

/// `delete -f` of every container in `peer`'s state dir under `work`.
fn delete_containers(work: &Path, peer: Peer, deadline: Instant) {
    let state = state_dir(work, peer);
    if !state.exists() {
        return;
    }
    let root = state.display().to_string();
    let Ok(ids) = util::output(&mut util::cmd(peer.name(), ["--root", &root, "list", "-q"])) else {
        return;
    };
    for id in ids.lines().filter(|id| !id.is_empty()) {
        if Instant::now() > deadline {
            break;
        }
        let _ = util::succeeds(&mut util::cmd(
            peer.name(),
            ["--root", &root, "delete", "-f", id],
        ));
    }
}

/// Lazily unmounts every mount point under `dir`, deepest first; returns how many.
fn unmount_under(dir: &Path) -> usize {
    let mut mounts = mounts_under(dir);
    mounts.sort_by_key(|m| std::cmp::Reverse(m.components().count()));
    mounts
        .iter()
        .filter(|m| nix::mount::umount2(m.as_path(), nix::mount::MntFlags::MNT_DETACH).is_ok())
        .count()
}

/// Mount points under `dir`, from /proc/mounts (stacked mounts appear once per layer).
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    mounts
        .lines()
        .filter_map(|line| line.split_whitespace().nth(1))
        .map(unescape)
        .filter(|point| point.starts_with(dir))
        .collect()
}

/// Undoes /proc/mounts' octal escapes (`\040` for a space).
fn unescape(field: &str) -> PathBuf {
    let mut out = String::new();
    let mut rest = field;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let code = rest
            .get(at + 1..at + 4)
            .and_then(|c| u8::from_str_radix(c, 8).ok());
        match code {
            Some(byte) => {
                out.push(char::from(byte));
                rest = &rest[at + 4..];
            }
            None => {
                out.push('\\');
                rest = &rest[at + 1..];
            }
        }
    }
    out.push_str(rest);
    PathBuf::from(out)
}

/// Every cgroup directory, at any depth, under a top-level `PREFIX*` cgroup of any
/// hierarchy (those top-level directories included).
fn bench_cgroups(prefix: &str) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let Ok(hierarchies) = std::fs::read_dir(CGROUP_FS) else {
        return found;
    };
    for hierarchy in hierarchies.flatten() {
        let Ok(tops) = std::fs::read_dir(hierarchy.path()) else {
            continue;
        };
        for top in tops.flatten() {
            let is_bench = top.file_name().to_string_lossy().starts_with(prefix);
            if is_bench && top.path().is_dir() {
                walk_dirs(&top.path(), &mut found);
            }
        }
    }
    found
}

fn walk_dirs(dir: &Path, found: &mut Vec<PathBuf>) {
    found.push(dir.to_owned());
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            walk_dirs(&entry.path(), found);
        }
    }
}

/// Pids in any `PREFIX*` cgroup.
fn bench_processes(prefix: &str) -> Vec<i32> {
    let mut pids: Vec<i32> = bench_cgroups(prefix)
        .iter()
        .filter_map(|dir| std::fs::read_to_string(dir.join("cgroup.procs")).ok())
        .flat_map(|procs| {
            procs
                .lines()
                .filter_map(|l| l.trim().parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect();
    pids.sort_unstable();
    pids.dedup();
    pids
}
