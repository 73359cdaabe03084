//! The routing benchmark's sealed world: one network namespace `bosun-bench-rt-<pid>` with
//! `lo` (10 backend addresses 10.250.0.1..10/32), a veth pair `brt0`/`brt1` with both ends
//! inside (the client's pod address 10.250.1.1/32 on brt0) and no route out; a cgroup v2 directory for the bosun client; and the HTTP
//! backends, Rust threads serving a fixed 200 response on 10.250.0.k:8080.
//!
//! The service CIDR 10.96.0.0/16 is a blackhole route by default (DESIGN.md §4: unhandled
//! VIPs die locally). iptables/nftables DNAT happens after the route lookup of `connect`,
//! which a blackhole route fails at once, so for those peers [`Netns::route_services`] points
//! the CIDR at `brt0` instead, whose peer `brt1` drops whatever reaches it (not local, no
//! forwarding): the stand-in for a kube-proxy node's default gateway, still inside the netns. Every external command
//! runs with `setns` into the namespace before exec ([`Netns::command`]), never in the host's.
//! Everything is removed on drop, also on failure.

use std::{
    fs::{File, OpenOptions},
    io::Read,
    net::Ipv4Addr,
    os::{
        fd::{AsRawFd, BorrowedFd},
        unix::process::CommandExt,
    },
    path::Path,
    process::{Command, Stdio},
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{bail, Context, Result};
use bosun_test_support::CgroupDir;
use nix::{
    sched::{setns, CloneFlags},
    sys::resource::{getrusage, UsageWho},
};

/// Where cgroup v2 lives on this hybrid host (the BPF cgroup hooks attach there).
pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";
/// The backends' port.
pub const BACKEND_PORT: u16 = 8080;
/// The client's own address (a "pod" in the cluster CIDR 10.250.0.0/16).
pub const CLIENT_IP: Ipv4Addr = Ipv4Addr::new(10, 250, 1, 1);
/// The cluster (pod) CIDR the kube-proxy layouts use for their masquerade rules.
pub const CLUSTER_CIDR: &str = "10.250.0.0/16";
const SERVICE_CIDR: &str = "10.96.0.0/16";

/// Backend `k` (0-based) of [`BACKENDS`].
pub fn backend_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 250, 0, k as u8 + 1)
}

/// How many backend addresses (and endpoints per service) there are.
pub const BACKENDS: usize = 10;

/// The test network namespace (deleted on drop, after its nftables ruleset).
pub struct Netns {
    ns: bosun_test_support::Netns,
    /// The last client source address index handed out by [`Netns::route_services`].
    phase: std::sync::atomic::AtomicU8,
}

impl Netns {
    /// Creates the namespace with its addresses, the blackhole route and bench sysctls.
    pub fn create() -> Result<Netns> {
        let name = format!("bosun-bench-rt-{}", std::process::id());
        // From here on, drop deletes the namespace whatever fails next.
        let ns = Netns {
            ns: bosun_test_support::Netns::create(&name)?,
            phase: std::sync::atomic::AtomicU8::new(0),
        };
        for k in 0..BACKENDS {
            ns.ip(&["addr", "add", &format!("{}/32", backend_ip(k)), "dev", "lo"])?;
        }
        // No dummy driver in this kernel: a veth pair with both ends in the namespace. What
        // reaches brt0 arrives on brt1, is not local, and is dropped (forwarding is off).
        ns.ip(&[
            "link", "add", "brt0", "type", "veth", "peer", "name", "brt1",
        ])?;
        ns.ip(&["addr", "add", &format!("{CLIENT_IP}/32"), "dev", "brt0"])?;
        ns.ip(&["link", "set", "brt1", "up"])?;
        ns.ip(&["link", "set", "brt0", "up"])?;
        ns.sysctl("net.ipv4.ip_forward", "0")?;
        ns.route_services(false)?;
        // Many short connections: wide port range, and conntrack (iptables/nft peers) must
        // not fill up with TIME_WAIT entries between runs. All per-netns sysctls.
        ns.sysctl("net.ipv4.ip_local_port_range", "1024 65535")?;
        ns.sysctl("net.ipv4.tcp_tw_reuse", "1")?;
        ns.sysctl("net.core.somaxconn", "4096")?;
        Ok(ns)
    }

    /// Runs `ip -n NAME ARGS`.
    pub fn ip(&self, args: &[&str]) -> Result<()> {
        self.ns.try_ip(args)?;
        Ok(())
    }

    fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        run_checked(
            self.command("sysctl")
                .args(["-q", "-w", &format!("{key}={value}")]),
        )
    }

    /// Conntrack sysctls exist only once a NAT table made the namespace use conntrack.
    pub fn tune_conntrack(&self) -> Result<()> {
        self.sysctl("net.netfilter.nf_conntrack_tcp_timeout_time_wait", "1")
    }

    /// The service CIDR: a blackhole route (`false`), or a route into the dropping veth
    /// `brt0` (`true`) so that netfilter DNAT gets to see the connection. Each such phase
    /// gets a fresh client source address 10.250.1.k: the backends' TIME_WAIT sockets
    /// (60 s) from an earlier phase's clients must not meet this phase's SYNs.
    pub fn route_services(&self, via_veth: bool) -> Result<()> {
        if !via_veth {
            return self.ip(&["route", "replace", "blackhole", SERVICE_CIDR]);
        }
        let k = self.phase.load(Ordering::Relaxed) % 250 + 1;
        self.phase.store(k, Ordering::Relaxed);
        let src = Ipv4Addr::new(10, 250, 1, k);
        self.ip(&["addr", "replace", &format!("{src}/32"), "dev", "brt0"])?;
        let src = src.to_string();
        self.ip(&["route", "replace", SERVICE_CIDR, "dev", "brt0", "src", &src])
    }

    /// Removes every nftables table (iptables-nft's too) in the namespace, so the next
    /// peer starts without rules and without conntrack.
    pub fn flush_ruleset(&self) -> Result<()> {
        run_checked(self.command("nft").args(["flush", "ruleset"]))
    }

    /// A command that enters this namespace just before exec.
    pub fn command(&self, program: &str) -> Command {
        let mut command = Command::new(program);
        self.place(&mut command, None);
        command
    }

    /// Makes `command` join the cgroup whose `cgroup.procs` is open as `procs` (first: it is
    /// written through this process's view), then enter this namespace, just before exec.
    /// Both fds must stay open until the command is spawned.
    pub fn place(&self, command: &mut Command, procs: Option<&File>) {
        let ns_fd = self.ns.file().as_raw_fd();
        let procs_fd = procs.map(|f| f.as_raw_fd());
        // SAFETY: the closure runs in the forked child before exec and makes only raw,
        // async-signal-safe syscalls (write(2), setns(2)) on fds the parent keeps open until
        // the command is spawned (the caller's contract above; `self` outlives it).
        unsafe {
            command.pre_exec(move || {
                if let Some(fd) = procs_fd {
                    let procs = BorrowedFd::borrow_raw(fd);
                    nix::unistd::write(procs, b"0").map_err(std::io::Error::from)?;
                }
                let ns = BorrowedFd::borrow_raw(ns_fd);
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
            });
        }
    }

    /// Runs `f` on a thread that entered this namespace (setns is per thread).
    pub fn on_thread<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        self.ns.try_run_in(f)?
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // The namespace itself goes when `self.ns` drops, right after this.
        let _ = self.flush_ruleset();
    }
}

/// The client's cgroup v2 directory (removed on drop).
pub struct Cgroup(CgroupDir);

impl Cgroup {
    pub fn create() -> Result<Cgroup> {
        let name = format!("bosun-bench-rt-{}", std::process::id());
        CgroupDir::create(Path::new(CGROUP2_ROOT), &name)
            .map(Cgroup)
            .with_context(|| format!("mkdir {CGROUP2_ROOT}/{name}"))
    }

    pub fn path(&self) -> &Path {
        &self.0.path
    }

    /// `cgroup.procs`, open for writing; pass it to [`Netns::place`].
    pub fn procs(&self) -> Result<File> {
        let path = self.0.procs();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))
    }
}

/// Runs a command to completion; fails with its stderr if it exits non-zero.
pub fn run_checked(command: &mut Command) -> Result<()> {
    xtask::util::output_raw(command).map(drop)
}

/// Runs a (programming) command for at most `limit`; returns its wall time and CPU time
/// (user + system of the child, from getrusage(RUSAGE_CHILDREN)), both in ms, or `None`
/// when it was killed at the limit.
pub fn run_timed(command: &mut Command, limit: Duration) -> Result<Option<(f64, f64)>> {
    let line = xtask::util::display(command);
    let before = children_cpu()?;
    let start = Instant::now();
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting `{line}`"))?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Ok(None);
        }
        std::thread::sleep(Duration::from_micros(200));
    };
    let wall = start.elapsed().as_secs_f64() * 1e3;
    if !status.success() {
        let mut err = String::new();
        if let Some(mut stderr) = child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        bail!("`{line}` failed ({status}): {}", err.trim());
    }
    Ok(Some((wall, children_cpu()? - before)))
}

fn children_cpu() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_CHILDREN).context("getrusage")?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    Ok(ms(usage.user_time()) + ms(usage.system_time()))
}

/// CPU time (user + system) of the calling thread, in ms.
pub fn thread_cpu_ms() -> Result<f64> {
    let usage = getrusage(UsageWho::RUSAGE_THREAD).context("getrusage")?;
    let ms = |t: nix::sys::time::TimeVal| t.tv_sec() as f64 * 1e3 + t.tv_usec() as f64 / 1e3;
    Ok(ms(usage.user_time()) + ms(usage.system_time()))
}
