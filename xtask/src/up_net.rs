//! The network of `up`'s cluster: netns `bosun-up` holds a bridge (the "switch", with no
//! uplink and no address), and each node's netns `bosun-up-<n>` has lo up and `eth0` (a veth
//! whose peer `up-<n>` is on the bridge) with the node address `192.168.200.<n>/24`. No netns
//! has a default route: packets between nodes stay on the bridge, and nothing reaches the
//! machine's uplink. The host, where bosun-control runs, is plugged into the bridge too
//! (`bosun-up-h`, a veth with `192.168.200.254/24`: the connected route to the nodes' subnet
//! and nothing else), so control reaches the agents' kubelet APIs on their InternalIPs, plus a
//! route to each node's pod CIDR via the node, so it reaches pods (webhooks behind a Service);
//! it goes with the fabric netns (deleting one end of a veth deletes both, and its routes).
//! Idempotent: what exists already is left as it is.

use std::path::Path;

use anyhow::Result;

use crate::up::{UpNode, NETNS};
use crate::util;

/// The nodes' subnet on the bridge; node `n` is `.n`.
pub const SUBNET: &str = "192.168.200";

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

fn ip(netns: &str, args: &[&str]) -> Result<()> {
    let mut all = vec!["-n", netns];
    all.extend_from_slice(args);
    util::run(&mut util::cmd("ip", all))
}

fn has_link(netns: &str, link: &str) -> bool {
    util::succeeds(&mut util::cmd("ip", ["-n", netns, "link", "show", link]))
}

/// Makes the fabric and every node's netns.
pub fn make(nodes: &[UpNode]) -> Result<()> {
    println!("\n==> node networks: netns {NETNS} (bridge), {}", {
        let names: Vec<String> = nodes.iter().map(UpNode::netns).collect();
        names.join(", ")
    });
    if !netns_exists(NETNS) {
        util::run(&mut util::cmd("ip", ["netns", "add", NETNS]))?;
    }
    ip(NETNS, &["link", "set", "lo", "up"])?;
    if !has_link(NETNS, "br0") {
        ip(NETNS, &["link", "add", "br0", "type", "bridge"])?;
    }
    ip(NETNS, &["link", "set", "br0", "up"])?;
    for node in nodes {
        plug(node)?;
    }
    plug_host()?;
    route_pods(nodes)
}

/// Routes each node's pod CIDR from the host through the host link to the node, so
/// bosun-control reaches pods (admission webhooks behind a Service) as an API server on the
/// pod network does. The routes lead only onto the bridge; one to a pod CIDR through
/// anything else is refused rather than replaced.
fn route_pods(nodes: &[UpNode]) -> Result<()> {
    let routes = util::output(&mut util::cmd("ip", ["-4", "route", "show"]))?;
    for node in nodes {
        let cidr = node.pod_cidr();
        let foreign = routes
            .lines()
            .any(|r| r.starts_with(&format!("{cidr} ")) && !r.contains(HOST_LINK));
        if foreign {
            anyhow::bail!("the host already routes {cidr} elsewhere; the pods' route would clash");
        }
        util::run(&mut util::cmd(
            "ip",
            [
                "route",
                "replace",
                &cidr,
                "via",
                &node.ip(),
                "dev",
                HOST_LINK,
            ],
        ))?;
    }
    Ok(())
}

/// The host's end of the host link (its peer on the bridge is `host`).
pub const HOST_LINK: &str = "bosun-up-h";

/// Plugs the host into the bridge with `<SUBNET>.254/24`; refuses when the host already has
/// a route into the subnet through anything else (it would be shadowed or shadow it).
fn plug_host() -> Result<()> {
    let has_host_link = util::succeeds(&mut util::cmd("ip", ["link", "show", HOST_LINK]));
    if !has_host_link {
        let taken = util::output(&mut util::cmd("ip", ["-4", "route", "show"]))?;
        if taken.contains(&format!("{SUBNET}.")) {
            anyhow::bail!(
                "the host already routes {SUBNET}.0/24; the host link to the nodes would clash"
            );
        }
        let fabric = format!("/run/netns/{NETNS}");
        util::run(&mut util::cmd(
            "ip",
            [
                "link", "add", HOST_LINK, "type", "veth", "peer", "name", "host", "netns", &fabric,
            ],
        ))?;
    }
    ip(NETNS, &["link", "set", "host", "master", "br0"])?;
    ip(NETNS, &["link", "set", "host", "up"])?;
    let addr = format!("{SUBNET}.254/24");
    let shown = util::output(&mut util::cmd("ip", ["addr", "show", "dev", HOST_LINK]))?;
    if !shown.contains(&addr) {
        util::run(&mut util::cmd(
            "ip",
            ["addr", "add", &addr, "dev", HOST_LINK],
        ))?;
    }
    util::run(&mut util::cmd("ip", ["link", "set", HOST_LINK, "up"]))
}

fn plug(node: &UpNode) -> Result<()> {
    let ns = node.netns();
    if !netns_exists(&ns) {
        util::run(&mut util::cmd("ip", ["netns", "add", &ns]))?;
    }
    ip(&ns, &["link", "set", "lo", "up"])?;
    let port = format!("up-{}", node.n);
    if !has_link(&ns, "eth0") {
        let fabric = format!("/run/netns/{NETNS}");
        ip(
            &ns,
            &[
                "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns", &fabric,
            ],
        )?;
    }
    ip(NETNS, &["link", "set", &port, "master", "br0"])?;
    ip(NETNS, &["link", "set", &port, "up"])?;
    let addr = format!("{}/24", node.ip());
    let shown = util::output(&mut util::cmd(
        "ip",
        ["-n", &ns, "addr", "show", "dev", "eth0"],
    ))?;
    if !shown.contains(&addr) {
        ip(&ns, &["addr", "add", &addr, "dev", "eth0"])?;
    }
    ip(&ns, &["link", "set", "eth0", "up"])
}

/// Every netns `up` made (the fabric and `bosun-up-<n>`), as they exist now.
pub fn existing() -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir("/run/netns")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().into_string().ok())
        .filter(|n| is_ours(n))
        .collect();
    out.sort();
    out
}

/// `bosun-up` or `bosun-up-<digits>`.
pub fn is_ours(name: &str) -> bool {
    name == NETNS
        || name
            .strip_prefix(NETNS)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn only_ups_netns_are_ours() {
        for ours in ["bosun-up", "bosun-up-1", "bosun-up-12"] {
            assert!(super::is_ours(ours), "{ours}");
        }
        for other in [
            "bosun-up-",
            "bosun-up-x",
            "bosun-upx",
            "bosun",
            "bosun-up-1a",
        ] {
            assert!(!super::is_ours(other), "{other}");
        }
    }
}
