//! The link between the test's nodes: a netns of its own holding a bridge, and one veth per
//! node (`eth0` in the node's netns, its address `192.168.254.<n>/24`). Like a rack switch with
//! no uplink: the nodes reach each other and nothing else. The agents route pod CIDRs between
//! the nodes over it (peer routes from the Node objects).

use bosun_test_support::Netns;

pub struct Fabric {
    pub netns: Netns,
}

/// The fabric's subnet; node `n` is `.n`.
pub const SUBNET: &str = "192.168.254";

impl Fabric {
    pub fn new() -> Fabric {
        crate::require_root();
        let netns = Netns::new("bsfb");
        netns.ip(&["link", "set", "lo", "up"]);
        netns.ip(&["link", "add", "br0", "type", "bridge"]);
        netns.ip(&["link", "set", "br0", "up"]);
        Fabric { netns }
    }

    /// Plugs node `n`'s netns in: `eth0` there (up, `192.168.254.<n>/24`), its peer `fab<n>` on
    /// the bridge. Returns the node's address.
    pub fn plug(&self, n: u8, node: &Netns) -> String {
        let port = format!("fab{n}");
        let fabric = self.netns.path().display().to_string();
        node.ip(&[
            "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &fabric,
        ]);
        self.netns.ip(&["link", "set", &port, "master", "br0"]);
        self.netns.ip(&["link", "set", &port, "up"]);
        let ip = format!("{SUBNET}.{n}");
        node.ip(&["addr", "add", &format!("{ip}/24"), "dev", "eth0"]);
        node.ip(&["link", "set", "eth0", "up"]);
        ip
    }
}

impl Default for Fabric {
    fn default() -> Self {
        Fabric::new()
    }
}
