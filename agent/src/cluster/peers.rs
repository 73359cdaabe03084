//! Routes to the other nodes' pods: a list+watch of the cluster's Nodes, and for every other
//! node with a pod CIDR and an InternalIP a route `podCIDR via InternalIP` in the node netns
//! (like a host-gateway network: the nodes share a link). The agent's peer routes are made
//! exactly the wanted set after each change (`network::node::sync_peer_routes`); routes that
//! are not the agent's are never touched. Until the first list nothing changes, a broken
//! watch keeps the routes as they are, and a sync that failed is tried again every 2 s.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;

use futures::StreamExt;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;

use crate::network::node::{peer_route, sync_peer_routes, NodeRoute};

/// (pod CIDR, InternalIP) of `node`, when it has both.
fn peer_of(node: &Node) -> Option<(IpNet, IpAddr)> {
    let spec = node.spec.as_ref()?;
    let cidr = spec
        .pod_cidrs
        .iter()
        .flatten()
        .chain(spec.pod_cidr.iter())
        .find_map(|c| c.parse::<IpNet>().ok().filter(|n| n.addr().is_ipv4()))?;
    let addresses = node.status.as_ref()?.addresses.as_ref()?;
    let ip = addresses
        .iter()
        .filter(|a| a.type_ == "InternalIP")
        .find_map(|a| a.address.parse::<IpAddr>().ok().filter(IpAddr::is_ipv4))?;
    Some((cidr, ip))
}

/// The peer routes for `nodes` (by name), leaving out `own` and any peer whose CIDR overlaps
/// the node's own pod CIDR.
pub fn wanted_routes(
    nodes: &BTreeMap<String, (IpNet, IpAddr)>,
    own: &str,
    own_cidr: IpNet,
) -> Vec<NodeRoute> {
    let overlaps = |c: &IpNet| c.contains(&own_cidr.network()) || own_cidr.contains(&c.network());
    nodes
        .iter()
        .filter(|(name, (cidr, _))| name.as_str() != own && !overlaps(cidr))
        .filter_map(|(_, (cidr, ip))| peer_route(*cidr, *ip).ok())
        .collect()
}

/// How soon a peer route sync that failed is tried again, Node changes or not.
const RETRY: std::time::Duration = std::time::Duration::from_secs(2);

/// The Nodes as the watch delivered them: (pod CIDR, InternalIP) by name, once listed.
#[derive(Default)]
struct Peers {
    nodes: BTreeMap<String, (IpNet, IpAddr)>,
    listing: Option<BTreeMap<String, (IpNet, IpAddr)>>,
    synced: bool,
}

impl Peers {
    fn apply(&mut self, event: Event<Node>) {
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => self.listing = Some(BTreeMap::new()),
            Event::InitApply(n) => {
                if let (Some(l), Some(p)) = (self.listing.as_mut(), peer_of(&n)) {
                    l.insert(name(&n), p);
                }
            }
            Event::InitDone => {
                if let Some(l) = self.listing.take() {
                    self.nodes = l;
                    self.synced = true;
                }
            }
            Event::Apply(n) => match peer_of(&n) {
                Some(p) => {
                    self.nodes.insert(name(&n), p);
                }
                None => {
                    self.nodes.remove(&name(&n));
                }
            },
            Event::Delete(n) => {
                self.nodes.remove(&name(&n));
            }
        }
    }

    /// Whether the routes may be made: listed, and not in the middle of a relist.
    fn ready(&self) -> bool {
        self.synced && self.listing.is_none()
    }
}

/// Watches the Nodes and keeps the peer routes of node `own` (pod CIDR `own_cidr`) in
/// `netns` (`None`: the agent's own) for as long as the agent runs. A sync that failed is
/// tried again every [`RETRY`].
pub async fn run(client: kube::Client, own: String, own_cidr: IpNet, netns: Option<PathBuf>) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut peers = Peers::default();
    let mut installed: Option<Vec<NodeRoute>> = None;
    let mut failed = false;
    loop {
        let next = if failed {
            tokio::time::timeout(RETRY, stream.next()).await.ok()
        } else {
            Some(stream.next().await)
        };
        match next {
            None => {} // the retry
            Some(None) => break,
            Some(Some(Ok(event))) => peers.apply(event),
            Some(Some(Err(e))) => {
                tracing::warn!(error = %e, "watching Nodes for peer routes; keeping the routes");
                continue;
            }
        }
        if !peers.ready() {
            continue;
        }
        let wanted = wanted_routes(&peers.nodes, &own, own_cidr);
        if installed.as_ref() == Some(&wanted) {
            continue;
        }
        failed = !sync(netns.clone(), &wanted).await;
        if !failed {
            installed = Some(wanted);
        }
    }
}

/// Makes the peer routes in `netns` exactly `wanted`, logging what changed; false when any
/// route could not be made.
async fn sync(netns: Option<PathBuf>, wanted: &[NodeRoute]) -> bool {
    let routes = wanted.to_vec();
    let result = tokio::task::spawn_blocking(move || {
        crate::sys::netns_exec::in_netns(netns.as_deref(), || sync_peer_routes(&routes))
    })
    .await;
    match result {
        Ok(Ok(Ok(sync))) => {
            for r in &sync.added {
                tracing::info!(dst = %r.dst, prefix = r.prefix, gateway = ?r.gateway, "route to a peer node's pods added");
            }
            for r in &sync.removed {
                tracing::info!(dst = %r.dst, prefix = r.prefix, gateway = ?r.gateway, "route to a peer node's pods removed");
            }
            for (r, e) in &sync.failed {
                tracing::warn!(dst = %r.route.dst, error = %e, "cannot route to a peer node's pods; retrying");
            }
            sync.failed.is_empty()
        }
        Ok(Ok(Err(e))) => {
            tracing::warn!(error = %e, "syncing the peer routes; retrying");
            false
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, "entering the node netns for the peer routes; retrying");
            false
        }
        Err(e) => {
            tracing::warn!(error = %e, "peer route task failed; retrying");
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_other_node_with_a_separate_cidr_is_a_peer() {
        let mut nodes = BTreeMap::new();
        let peer = |c: &str, ip: &str| (c.parse().unwrap(), ip.parse().unwrap());
        nodes.insert("a".to_string(), peer("10.244.1.0/24", "192.168.0.1"));
        nodes.insert("b".to_string(), peer("10.244.2.0/24", "192.168.0.2"));
        nodes.insert("c".to_string(), peer("10.244.0.0/16", "192.168.0.3"));
        let routes = wanted_routes(&nodes, "a", "10.244.1.0/24".parse().unwrap());
        assert_eq!(routes.len(), 1, "{routes:?}");
        assert_eq!(routes[0].route.dst, std::net::Ipv4Addr::new(10, 244, 2, 0));
        assert_eq!(
            routes[0].route.gateway,
            Some(std::net::Ipv4Addr::new(192, 168, 0, 2))
        );
    }

    fn node(name: &str, cidr: &str, ip: &str) -> Node {
        serde_json::from_value(serde_json::json!({
            "metadata": {"name": name},
            "spec": {"podCIDR": cidr},
            "status": {"addresses": [{"type": "InternalIP", "address": ip}]},
        }))
        .unwrap()
    }

    #[test]
    fn peers_are_known_once_listed_and_follow_changes() {
        let mut peers = Peers::default();
        peers.apply(Event::Init);
        peers.apply(Event::InitApply(node("a", "10.244.1.0/24", "192.168.0.1")));
        assert!(!peers.ready(), "not before the list is complete");
        peers.apply(Event::InitDone);
        assert!(peers.ready());
        peers.apply(Event::Apply(node("b", "10.244.2.0/24", "192.168.0.2")));
        assert_eq!(peers.nodes.len(), 2);
        peers.apply(Event::Delete(node("a", "10.244.1.0/24", "192.168.0.1")));
        assert_eq!(peers.nodes.keys().collect::<Vec<_>>(), ["b"]);
        // A relist: the old view stands until it completes.
        peers.apply(Event::Init);
        assert!(!peers.ready());
        peers.apply(Event::InitDone);
        assert!(peers.ready() && peers.nodes.is_empty());
    }
}
