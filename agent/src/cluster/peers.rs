//! Routes to the other nodes' pods: a list+watch of the cluster's Nodes, and for every other
//! node with a pod CIDR and an InternalIP a route `podCIDR via InternalIP` in the node netns
//! (like a host-gateway network: the nodes share a link). The agent's peer routes are made
//! exactly the wanted set after each change (`network::node::sync_peer_routes`); routes that
//! are not the agent's are never touched. Until the first list nothing changes, and a broken
//! watch keeps the routes as they are.

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

/// Watches the Nodes and keeps the peer routes of node `own` (pod CIDR `own_cidr`) in
/// `netns` (`None`: the agent's own) for as long as the agent runs.
pub async fn run(client: kube::Client, own: String, own_cidr: IpNet, netns: Option<PathBuf>) {
    let api: Api<Node> = Api::all(client);
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut nodes: BTreeMap<String, (IpNet, IpAddr)> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, (IpNet, IpAddr)>> = None;
    let mut synced = false;
    let mut installed: Option<Vec<NodeRoute>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "watching Nodes for peer routes; keeping the routes");
                continue;
            }
        };
        let name = |n: &Node| n.metadata.name.clone().unwrap_or_default();
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(n) => {
                if let (Some(l), Some(p)) = (listing.as_mut(), peer_of(&n)) {
                    l.insert(name(&n), p);
                }
            }
            Event::InitDone => {
                if let Some(l) = listing.take() {
                    nodes = l;
                    synced = true;
                }
            }
            Event::Apply(n) => match peer_of(&n) {
                Some(p) => {
                    nodes.insert(name(&n), p);
                }
                None => {
                    nodes.remove(&name(&n));
                }
            },
            Event::Delete(n) => {
                nodes.remove(&name(&n));
            }
        }
        if !synced || listing.is_some() {
            continue;
        }
        let wanted = wanted_routes(&nodes, &own, own_cidr);
        if installed.as_ref() == Some(&wanted) {
            continue;
        }
        let ns = netns.clone();
        let routes = wanted.clone();
        let result = tokio::task::spawn_blocking(move || {
            crate::sys::netns_exec::in_netns(ns.as_deref(), || sync_peer_routes(&routes))
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
                    tracing::warn!(dst = %r.route.dst, error = %e, "cannot route to a peer node's pods");
                }
                if sync.failed.is_empty() {
                    installed = Some(wanted);
                }
            }
            Ok(Ok(Err(e))) => tracing::warn!(error = %e, "syncing the peer routes"),
            Ok(Err(e)) => tracing::warn!(error = %e, "entering the node netns for the peer routes"),
            Err(e) => tracing::warn!(error = %e, "peer route task failed"),
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
}
