//! Kernel test fixtures: a network namespace with backends on `lo`, a cgroup v2 directory
//! with the socket LB attached, a private bpffs pin directory (namespaces, cgroups and the
//! client process come from `bosun-test-support`), and a client that joins the cgroup and
//! the netns. Every packet stays inside the test's netns: it has only
//! `lo` (backends 10.250.x.y/32) and a blackhole route for the service CIDR 10.96.0.0/16.
//! Everything is removed on drop, also when the test fails.

#![allow(dead_code)]

pub mod client;
pub mod servers;
pub mod svc;

use std::{
    fs,
    net::Ipv4Addr,
    path::{Path, PathBuf},
    process::Command,
};

use bosun_ebpf::{MapSizes, SockLb};
pub use bosun_test_support::{CgroupDir, Netns};

pub const CGROUP2_ROOT: &str = "/sys/fs/cgroup/unified";
pub const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// A name unique to this process and call, for cgroups and pin directories.
pub fn unique(tag: &str) -> String {
    bosun_test_support::unique(&format!("bosun-t-{tag}-"))
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

/// The test's network namespace: `lo` only, and a blackhole route for the service CIDR, so
/// unhandled service traffic dies here; nothing in it leads anywhere else.
pub fn test_netns(tag: &str) -> Netns {
    let ns = Netns::new(&format!("bosun-t-{tag}-"));
    ns.ip(&["route", "add", "blackhole", "10.96.0.0/16"]);
    ns
}

/// Adds `10.250.<sub>.<host>/32` on the namespace's lo and returns it.
pub fn add_backend_ip(ns: &Netns, sub: u8, host: u8) -> Ipv4Addr {
    let ip = Ipv4Addr::new(10, 250, sub, host);
    ns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
    ip
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
    pub cgroup: CgroupDir,
    pub netns: Netns,
}

impl Fixture {
    pub fn new(tag: &str) -> Fixture {
        Self::with_sizes(tag, test_sizes())
    }

    pub fn with_sizes(tag: &str, sizes: MapSizes) -> Fixture {
        let netns = test_netns(tag);
        let cgroup = CgroupDir::new(Path::new(CGROUP2_ROOT), &unique(tag));
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
