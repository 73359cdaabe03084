//! Kernel test fixtures: a network namespace with backends on `lo`, a cgroup v2 directory
//! with the socket LB attached, a private bpffs pin directory, and a client process that
//! joins the cgroup and the netns. Every packet stays inside the test's netns: it has only
//! `lo` (backends 10.250.x.y/32) and a blackhole route for the service CIDR 10.96.0.0/16.
//! Everything is removed on drop, also when the test fails.

#![allow(dead_code)]

pub mod client;
pub mod servers;
pub mod svc;

use std::{
    fs,
    net::Ipv4Addr,
    os::fd::{AsRawFd, OwnedFd},
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicU32, Ordering},
};

use bosun_ebpf::{MapSizes, SockLb};

pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A name unique to this process and call, short enough for a netns.
pub fn unique(tag: &str) -> String {
    format!(
        "bosun-t-{}-{}-{}",
        tag,
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::SeqCst)
    )
}

fn run(cmd: &[&str]) {
    let out = Command::new(cmd[0])
        .args(&cmd[1..])
        .output()
        .unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Makes sure a bpffs is mounted at /sys/fs/bpf.
pub fn ensure_bpffs() {
    let mounts = fs::read_to_string("/proc/self/mounts").expect("read mounts");
    if !mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(BPFFS_ROOT) && l.contains(" bpf "))
    {
        let _ = Command::new("mount")
            .args(["-t", "bpf", "bpf", BPFFS_ROOT])
            .status();
    }
}

/// A network namespace created by the test (deleted on drop).
pub struct Netns {
    pub name: String,
    pub fd: OwnedFd,
}

impl Netns {
    pub fn new(tag: &str) -> Netns {
        let name = unique(tag);
        run(&["ip", "netns", "add", &name]);
        let fd = fs::File::open(format!("/run/netns/{name}"))
            .expect("open netns file")
            .into();
        let ns = Netns { name, fd };
        ns.ip(&["link", "set", "lo", "up"]);
        // Unhandled service traffic dies here; nothing in this netns leads anywhere else.
        ns.ip(&["route", "add", "blackhole", "10.96.0.0/16"]);
        ns
    }

    pub fn ip(&self, args: &[&str]) {
        let mut cmd = vec!["ip", "-n", &self.name];
        cmd.extend_from_slice(args);
        run(&cmd);
    }

    /// Adds `10.250.<sub>.<host>/32` on lo and returns it.
    pub fn add_backend_ip(&self, sub: u8, host: u8) -> Ipv4Addr {
        let ip = Ipv4Addr::new(10, 250, sub, host);
        self.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
        ip
    }

    /// Runs `f` on a thread that entered this netns (setns is per thread).
    pub fn run_in<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> T {
        let fd = self.fd.as_raw_fd();
        let handle = std::thread::spawn(move || {
            // SAFETY: fd is a valid netns fd kept open by `self` for the thread's lifetime
            // (we join before returning); setns(CLONE_NEWNET) affects only this thread.
            let rc = unsafe { libc::setns(fd, libc::CLONE_NEWNET) };
            assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
            f()
        });
        handle.join().expect("netns thread panicked")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
}

/// A cgroup v2 directory created by the test (removed on drop).
pub struct Cgroup {
    pub path: PathBuf,
}

impl Cgroup {
    pub fn new(tag: &str) -> Cgroup {
        let path = Path::new(CGROUP2_ROOT).join(unique(tag));
        fs::create_dir(&path).unwrap_or_else(|e| panic!("mkdir {}: {e}", path.display()));
        Cgroup { path }
    }
}

impl Drop for Cgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        eprintln!("warning: could not remove cgroup {}", self.path.display());
    }
}

/// A private pin directory on bpffs; everything under it is unpinned on drop.
pub struct PinDir {
    pub path: PathBuf,
}

impl PinDir {
    pub fn new(tag: &str) -> PinDir {
        ensure_bpffs();
        PinDir {
            path: Path::new(BPFFS_ROOT).join(unique(tag)),
        }
    }
}

impl Drop for PinDir {
    fn drop(&mut self) {
        if let Err(e) = bosun_ebpf::unpin_all(&self.path) {
            eprintln!("warning: unpin {}: {e}", self.path.display());
        }
    }
}

/// Small sizes for tests (Maglev table 1021).
pub fn test_sizes() -> MapSizes {
    MapSizes {
        services: 1024,
        backend_slots: 4096,
        maglev_services: 8,
        maglev_table_size: 1021,
        affinity: 1024,
        revnat: 4096,
    }
}

/// netns + cgroup + pins + a loaded, attached socket LB. Field order is drop order.
pub struct Fixture {
    pub lb: Option<SockLb>,
    pub pins: PinDir,
    pub cgroup: Cgroup,
    pub netns: Netns,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        Self::with_sizes(tag, test_sizes())
    }

    pub fn with_sizes(tag: &str, sizes: MapSizes) -> Fixture {
        let netns = Netns::new(tag);
        let cgroup = Cgroup::new(tag);
        let pins = PinDir::new(tag);
        let lb = SockLb::load_or_adopt(&pins.path, sizes).expect("load socket LB");
        lb.attach(&cgroup.path).expect("attach socket LB");
        Fixture {
            lb: Some(lb),
            pins,
            cgroup,
            netns,
        }
    }

    pub fn lb(&mut self) -> &mut SockLb {
        self.lb.as_mut().expect("socket LB loaded")
    }
}
