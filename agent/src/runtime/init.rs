//! The container's intermediate process and its PID 1, run as `bosun-agent __container-init`
//! before any thread or async runtime exists (so fork is safe). The intermediate reads an
//! [`InitSpec`] on stdin, joins the pod's cgroup and namespaces, unshares mount+pid(+cgroup)
//! namespaces, forks the container's PID 1, reports its pid on stdout and exits: no process
//! stays behind between the agent and the container. PID 1 builds the rootfs, drops
//! privileges and execs the workload; if anything fails it writes `error: ...` on the status
//! channel, which the agent turns into a StartError. Must never return into the agent's code.

use std::ffi::CString;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use nix::sched::{setns, unshare, CloneFlags};
use nix::unistd::dup2;

use crate::sys::clone3::fork_child;

use super::init_mounts::{build_rootfs, MountSource};
use super::init_spec::{ContainerInput, ProcessSpec};
use super::InitSpec;

/// Entry point of `bosun-agent __container-init`. Never returns.
pub fn container_init_main() -> ! {
    let mut status = File::from(
        std::io::stdout()
            .as_fd()
            .try_clone_to_owned()
            .unwrap_or_else(|_| std::process::exit(120)),
    );
    match intermediate(&mut status) {
        Ok(()) => std::process::exit(0),
        Err(msg) => {
            let _ = writeln!(status, "error: {msg}");
            std::process::exit(1);
        }
    }
}

fn intermediate(status: &mut File) -> Result<(), String> {
    let mut raw = String::new();
    std::io::stdin()
        .read_to_string(&mut raw)
        .map_err(|e| format!("reading spec: {e}"))?;
    let spec: InitSpec = serde_json::from_str(&raw).map_err(|e| format!("decoding spec: {e}"))?;

    join_cgroups(&spec.cgroup_tasks)?;
    let v2_dir = open_cgroup_dir(spec.cgroup_v2_dir.as_deref())?;
    for (kind, path) in &spec.namespaces {
        let flag = match kind.as_str() {
            "net" => CloneFlags::CLONE_NEWNET,
            "ipc" => CloneFlags::CLONE_NEWIPC,
            "uts" => CloneFlags::CLONE_NEWUTS,
            other => return Err(format!("unknown namespace kind {other}")),
        };
        let f = File::open(path).map_err(|e| format!("opening {}: {e}", path.display()))?;
        setns(f.as_fd(), flag).map_err(|e| format!("setns {kind} {}: {e}", path.display()))?;
    }
    let stdio = ContainerStdio::open(&spec)?;
    // Opened while the host's /proc is still where the path says.
    let target_pid_ns = spec
        .pid_namespace
        .as_ref()
        .map(|p| File::open(p).map_err(|e| format!("opening {}: {e}", p.display())))
        .transpose()?;
    let sources = match &spec.mount_template {
        Some(template) => Some(enter_mount_template(template, &spec.mounts)?),
        None => None,
    };
    // The cgroup namespace is unshared by PID 1 itself, once it is in its cgroups.
    let mut flags = CloneFlags::CLONE_NEWNS;
    if !spec.host_pid && target_pid_ns.is_none() {
        flags |= CloneFlags::CLONE_NEWPID;
    }
    unshare(flags).map_err(|e| format!("unshare mount/pid namespaces: {e}"))?;
    if let Some(ns) = &target_pid_ns {
        // The child forked next is created in it.
        setns(ns.as_fd(), CloneFlags::CLONE_NEWPID)
            .map_err(|e| format!("joining the target's PID namespace: {e}"))?;
    }

    let pid = fork_child(v2_dir.as_ref().map(|f| f.as_fd()), || {
        let err = container_pid1(&spec, sources.as_deref(), stdio, status);
        let _ = writeln!(status, "error: {err}");
        127
    })
    .map_err(|e| format!("clone3: {e}"))?;
    writeln!(status, "pid {pid}").map_err(|e| format!("reporting pid: {e}"))?;
    Ok(())
}

/// Takes a detached copy of every bind mount's source, then moves this (single-threaded)
/// process into the template mount namespace (see [`super::mount_template`]), where the
/// sources may not exist as mounts.
fn enter_mount_template(
    template: &Path,
    mounts: &[super::init_spec::BindMount],
) -> Result<Vec<MountSource>, String> {
    let sources = mounts
        .iter()
        .map(|m| {
            let is_dir = m.source.is_dir();
            let tree = crate::sys::mount_api::clone_tree(&m.source, is_dir)
                .map_err(|e| format!("taking bind mount source {}: {e}", m.source.display()))?;
            Ok(MountSource { tree, is_dir })
        })
        .collect::<Result<Vec<_>, String>>()?;
    let f = File::open(template)
        .map_err(|e| format!("opening mount template {}: {e}", template.display()))?;
    setns(f.as_fd(), CloneFlags::CLONE_NEWNS)
        .map_err(|e| format!("entering mount template: {e}"))?;
    Ok(sources)
}

/// Moves this (single-threaded) process into cgroup v1 hierarchies through their `tasks` files.
pub(crate) fn join_cgroups(tasks: &[std::path::PathBuf]) -> Result<(), String> {
    for f in tasks {
        std::fs::write(f, "0").map_err(|e| format!("joining cgroup {}: {e}", f.display()))?;
    }
    Ok(())
}

/// Opens the cgroup v2 directory a child is to be created in.
pub(crate) fn open_cgroup_dir(dir: Option<&Path>) -> Result<Option<File>, String> {
    dir.map(|d| {
        OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_DIRECTORY | libc::O_CLOEXEC)
            .open(d)
            .map_err(|e| format!("opening cgroup {}: {e}", d.display()))
    })
    .transpose()
}

/// The container's stdin (/dev/null, or the agent's FIFO) and its stdout/stderr FIFOs — or
/// the slave of the agent's pty for all three. The log FIFOs are opened read-write so a write
/// never fails with EPIPE while the agent is restarting: the data waits in the pipe until the
/// agent reads it again. The stdin FIFO is opened read-only, so the container reads EOF once
/// the agent closes its end (`stdinOnce`); the agent holds that end already, so this open does
/// not block.
struct ContainerStdio {
    stdin: OwnedFd,
    stdout: OwnedFd,
    stderr: OwnedFd,
    terminal: bool,
}

impl ContainerStdio {
    fn open(spec: &InitSpec) -> Result<Self, String> {
        let open = |p: &Path, write: bool, what: &str| -> Result<OwnedFd, String> {
            OpenOptions::new()
                .read(true)
                .write(write)
                .custom_flags(libc::O_CLOEXEC | libc::O_NOCTTY)
                .open(p)
                .map(OwnedFd::from)
                .map_err(|e| format!("opening {what} {}: {e}", p.display()))
        };
        let dup = |fd: &OwnedFd| fd.try_clone().map_err(|e| format!("dup: {e}"));
        let stdin = match &spec.input {
            ContainerInput::Null => open(Path::new("/dev/null"), false, "stdin")?,
            ContainerInput::Fifo(fifo) => open(fifo, false, "stdin fifo")?,
            ContainerInput::Terminal(slave) => {
                let slave = open(slave, true, "terminal")?;
                return Ok(ContainerStdio {
                    stdin: dup(&slave)?,
                    stdout: dup(&slave)?,
                    stderr: slave,
                    terminal: true,
                });
            }
        };
        Ok(ContainerStdio {
            stdin,
            stdout: open(&spec.stdout_fifo, true, "log fifo")?,
            stderr: open(&spec.stderr_fifo, true, "log fifo")?,
            terminal: false,
        })
    }
}

/// PID 1 of the container: returns only on failure, with the reason.
fn container_pid1(
    spec: &InitSpec,
    sources: Option<&[MountSource]>,
    stdio: ContainerStdio,
    status: &File,
) -> String {
    // Keep the status channel open only until exec succeeds.
    if let Err(e) = set_cloexec(status) {
        return format!("status channel: {e}");
    }
    if let Err(e) = unshare(CloneFlags::CLONE_NEWCGROUP) {
        return format!("unshare cgroup namespace: {e}");
    }
    // In the host's PID namespace the workload's orphans would go to the agent while the
    // workload runs; as a subreaper (kept across exec) it keeps them, as PID 1 would.
    if spec.host_pid {
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            return format!("becoming a child subreaper: {e}");
        }
    }
    if let Err(e) = build_rootfs(spec, sources) {
        return e;
    }
    if let Err(e) = drop_privileges(&spec.process) {
        return e;
    }
    for (fd, target) in [(&stdio.stdin, 0), (&stdio.stdout, 1), (&stdio.stderr, 2)] {
        if let Err(e) = dup2(fd.as_raw_fd(), target) {
            return format!("dup2 stdio: {e}");
        }
    }
    if stdio.terminal {
        // A session of its own whose controlling terminal the pty is (job control, ^C).
        if let Err(e) = nix::unistd::setsid() {
            return format!("setsid: {e}");
        }
        if let Err(e) = rustix::process::ioctl_tiocsctty(std::io::stdin()) {
            return format!("TIOCSCTTY: {e}");
        }
    }
    exec_program(&spec.process)
}

fn set_cloexec(f: &File) -> Result<(), nix::errno::Errno> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    fcntl(f.as_raw_fd(), FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC)).map(|_| ())
}

/// The RuntimeDefault seccomp filter if asked, then bounding set, groups, uid/gid, effective
/// capabilities (root only) and no_new_privs.
pub(crate) fn drop_privileges(spec: &ProcessSpec) -> Result<(), String> {
    use caps::{CapSet, Capability};
    use std::collections::HashSet;
    use std::str::FromStr;

    // Still root with every capability: the filter needs no no_new_privs (which would stop a
    // setuid program of a container allowed to escalate), and allows what follows.
    if spec.seccomp_default {
        super::seccomp::install(&super::seccomp::runtime_default(&spec.capabilities)?)?;
    }

    let keep: HashSet<Capability> = spec
        .capabilities
        .iter()
        .map(|c| Capability::from_str(c).map_err(|e| format!("capability {c}: {e}")))
        .collect::<Result<_, _>>()?;
    for cap in caps::all() {
        if !keep.contains(&cap) {
            caps::drop(None, CapSet::Bounding, cap).map_err(|e| format!("drop {cap}: {e}"))?;
        }
    }
    let gids: Vec<nix::unistd::Gid> = spec
        .additional_gids
        .iter()
        .map(|g| nix::unistd::Gid::from_raw(*g))
        .collect();
    nix::unistd::setgroups(&gids).map_err(|e| format!("setgroups: {e}"))?;
    let gid = nix::unistd::Gid::from_raw(spec.gid);
    nix::unistd::setresgid(gid, gid, gid).map_err(|e| format!("setgid {}: {e}", spec.gid))?;
    let uid = nix::unistd::Uid::from_raw(spec.uid);
    nix::unistd::setresuid(uid, uid, uid).map_err(|e| format!("setuid {}: {e}", spec.uid))?;
    if spec.uid == 0 {
        for set in [CapSet::Effective, CapSet::Permitted, CapSet::Inheritable] {
            caps::set(None, set, &keep).map_err(|e| format!("set {set:?} capabilities: {e}"))?;
        }
    }
    if spec.no_new_privs {
        nix::sys::prctl::set_no_new_privs().map_err(|e| format!("no_new_privs: {e}"))?;
    }
    Ok(())
}

/// Execs `spec.argv` with `spec.env`; returns only on failure, with the reason.
pub(crate) fn exec_program(spec: &ProcessSpec) -> String {
    let Some(arg0) = spec.argv.first() else {
        return "no command: neither the pod nor the image gives one".to_string();
    };
    let path_var = spec
        .env
        .iter()
        .find_map(|e| e.strip_prefix("PATH="))
        .unwrap_or("/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin");
    let program = match resolve_program(arg0, path_var) {
        Some(p) => p,
        None => return format!("exec {arg0}: executable file not found in $PATH"),
    };
    let to_c = |s: &str| CString::new(s).map_err(|_| format!("{s:?} contains a NUL byte"));
    let argv: Result<Vec<CString>, String> = spec.argv.iter().map(|a| to_c(a)).collect();
    let env: Result<Vec<CString>, String> = spec.env.iter().map(|a| to_c(a)).collect();
    let (argv, env, program) = match (argv, env, to_c(&program)) {
        (Ok(a), Ok(e), Ok(p)) => (a, e, p),
        (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => return e,
    };
    match nix::unistd::execve(&program, &argv, &env) {
        Ok(never) => match never {},
        Err(e) => format!("exec {arg0}: {e}"),
    }
}

/// `execvp`'s lookup against the container's own PATH.
fn resolve_program(arg0: &str, path_var: &str) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    if arg0.contains('/') {
        return Some(arg0.to_string());
    }
    path_var
        .split(':')
        .filter(|d| !d.is_empty())
        .map(|d| format!("{}/{arg0}", d.trim_end_matches('/')))
        .find(|candidate| {
            std::fs::metadata(candidate)
                .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
                .unwrap_or(false)
        })
}

/// Reads the status channel: `Ok(pid)` once PID 1 exec'd, or the first error reported.
pub fn parse_status(text: &str) -> (Option<i32>, Option<String>) {
    let mut pid = None;
    let mut error = None;
    for line in text.lines() {
        if let Some(p) = line.strip_prefix("pid ") {
            pid = p.trim().parse().ok();
        } else if let Some(e) = line.strip_prefix("error: ") {
            error.get_or_insert_with(|| e.to_string());
        }
    }
    (pid, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_channel_reports_pid_and_first_error() {
        assert_eq!(parse_status("pid 42\n"), (Some(42), None));
        assert_eq!(
            parse_status("pid 42\nerror: exec x: not found\nerror: later\n"),
            (Some(42), Some("exec x: not found".into()))
        );
        assert_eq!(parse_status(""), (None, None));
    }

    #[test]
    fn program_lookup_follows_path_and_keeps_slashes() {
        assert_eq!(
            resolve_program("sh", "/nonexistent:/bin"),
            Some("/bin/sh".into())
        );
        assert_eq!(resolve_program("./x", "/bin"), Some("./x".into()));
        assert_eq!(resolve_program("no-such-binary-xyz", "/bin:/usr/bin"), None);
    }
}
