//! The link between the test's nodes: a netns of its own holding a bridge, and one veth per
//! node (`eth0` in the node's netns, its address `<subnet>.<n>/24`). Like a rack switch with
//! no uplink: the nodes reach each other and nothing else. The agents route pod CIDRs between
//! the nodes over it (peer routes from the Node objects).
//!
//! With [`Fabric::with_host_link`] the host (where bosun-control runs) is plugged in too, the
//! way an API server sits on the nodes' network to reach their kubelets: a veth whose host end
//! has `<subnet>.254/24` — the connected route to that /24 and nothing else (no default
//! route, no forwarding set up) — and whose other end is on the bridge. Its subnet is one no
//! address or route of the host uses yet, so parallel tests never share one.

use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};

use bosun_test_support::Netns;

pub struct Fabric {
    pub netns: Netns,
    /// The first three octets of the nodes' /24; node `n` is `.n`.
    pub subnet: String,
    /// The host end of the host link, when there is one.
    host_link: Option<String>,
}

/// The subnet of a fabric without host link (it exists only inside the test's netns).
pub const SUBNET: &str = "192.168.254";

fn host_ip(args: &[&str]) -> std::process::Output {
    Command::new("ip").args(args).output().expect("run ip")
}

/// A /24 (`192.168.<k>`, k in 201..=253) that no address or route of the host uses.
fn free_host_subnet() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let start = std::process::id() + NEXT.fetch_add(1, Ordering::SeqCst) * 7;
    let routes = String::from_utf8_lossy(&host_ip(&["-4", "route", "show", "table", "all"]).stdout)
        .into_owned();
    let addrs = String::from_utf8_lossy(&host_ip(&["-4", "addr"]).stdout).into_owned();
    (0..53)
        .map(|i| format!("192.168.{}", 201 + (start + i) % 53))
        .find(|s| {
            let prefix = format!("{s}.");
            !routes.contains(&prefix) && !addrs.contains(&prefix)
        })
        .expect("a free 192.168.201-253.0/24 on the host")
}

impl Fabric {
    pub fn new() -> Fabric {
        Fabric::make(SUBNET.to_owned())
    }

    fn make(subnet: String) -> Fabric {
        crate::require_root();
        let netns = Netns::new("bsfb");
        netns.ip(&["link", "set", "lo", "up"]);
        netns.ip(&["link", "add", "br0", "type", "bridge"]);
        netns.ip(&["link", "set", "br0", "up"]);
        Fabric {
            netns,
            subnet,
            host_link: None,
        }
    }

    /// A fabric the host is plugged into (`<subnet>.254`), so bosun-control reaches the
    /// nodes' kubelet APIs.
    pub fn with_host_link() -> Fabric {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let mut fabric = Fabric::make(free_host_subnet());
        let link = format!(
            "bsh{}x{}",
            std::process::id() % 1_000_000,
            NEXT.fetch_add(1, Ordering::SeqCst)
        );
        let fabric_ns = fabric.netns.path().display().to_string();
        let run = |args: &[&str]| {
            let out = host_ip(args);
            assert!(out.status.success(), "ip {args:?}: {}", crate::stderr(&out));
        };
        run(&[
            "link", "add", &link, "type", "veth", "peer", "name", "host", "netns", &fabric_ns,
        ]);
        fabric.host_link = Some(link.clone());
        fabric.netns.ip(&["link", "set", "host", "master", "br0"]);
        fabric.netns.ip(&["link", "set", "host", "up"]);
        let addr = format!("{}.254/24", fabric.subnet);
        run(&["addr", "add", &addr, "dev", &link]);
        run(&["link", "set", &link, "up"]);
        fabric
    }

    /// Plugs node `n`'s netns in: `eth0` there (up, `<subnet>.<n>/24`), its peer `fab<n>` on
    /// the bridge. Returns the node's address.
    pub fn plug(&self, n: u8, node: &Netns) -> String {
        let port = format!("fab{n}");
        let fabric = self.netns.path().display().to_string();
        node.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &fabric,
        ]);
        self.netns.ip(&["link", "set", &port, "master", "br0"]);
        self.netns.ip(&["link", "set", &port, "up"]);
        let ip = format!("{}.{n}", self.subnet);
        node.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        node.ip(&["link", "set", "eth0", "up"]);
        ip
    }
}

impl Drop for Fabric {
    fn drop(&mut self) {
        // Deleting one end of a veth deletes both (the netns goes when `self.netns` drops).
        if let Some(link) = &self.host_link {
            let _ = host_ip(&["link", "del", link]);
        }
    }
}

impl Default for Fabric {
    fn default() -> Self {
        Fabric::new()
    }
}
