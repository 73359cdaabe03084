//! Node routing: blackhole routes for the pod CIDR and the service CIDR (a live pod's /32
//! route is more specific and wins; unknown pod or service addresses die here instead of
//! leaking to the default gateway) and routes to other nodes' pod CIDRs via their node
//! addresses. Works in the calling thread's netns, in the main table only.
//!
//! Every route it installs carries [`ROUTE_PROTOCOL`] (`ip route` shows `proto 176`), so its
//! own routes are found and removed exactly ([`teardown`], `bosun-agent network teardown`).
//! It never installs a route that would shadow one already in the table (an existing route
//! covering the same or a wider range, other than the default route and its own): that would
//! silently cut traffic the node's network relies on. [`AddedRoutes`] remembers what one
//! process added so a one-off `run` can leave the node as it found it.

use std::net::IpAddr;
use std::path::PathBuf;

use bosun_cni::link::RouteKind;
use bosun_cni::link::{Netlink, Route4, PROTO_STATIC};
use ipnet::{IpNet, Ipv4Net};

use super::NetworkError;

/// `rtm_protocol` of the agent's node routes (unassigned by iproute2's `rt_protos`).
pub const ROUTE_PROTOCOL: u8 = 176;

/// One route the node needs and what it is for (named in errors).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeRoute {
    pub route: Route4,
    /// "pod CIDR", "service CIDR", "peer pod CIDR".
    pub purpose: &'static str,
}

fn v4(net: IpNet, field: &'static str) -> Result<Ipv4Net, NetworkError> {
    match net {
        IpNet::V4(n) => Ok(n.trunc()),
        IpNet::V6(_) => Err(NetworkError::Field {
            field,
            message: format!("{net}: only IPv4 is supported yet"),
        }),
    }
}

/// A blackhole for `net` marked as the agent's.
pub fn blackhole(net: Ipv4Net) -> Route4 {
    Route4 {
        dst: net.network(),
        prefix: net.prefix_len(),
        gateway: None,
        oif: None,
        kind: RouteKind::BlackHole,
        protocol: ROUTE_PROTOCOL,
    }
}

/// The routes a node with these CIDRs and peers needs.
pub fn node_routes(
    pod_cidr: IpNet,
    service_cidr: IpNet,
    peers: &[(IpNet, IpAddr)],
) -> Result<Vec<NodeRoute>, NetworkError> {
    let mut out = vec![
        NodeRoute {
            route: blackhole(v4(pod_cidr, "pod_cidr")?),
            purpose: "pod CIDR",
        },
        NodeRoute {
            route: blackhole(v4(service_cidr, "service_cidr")?),
            purpose: "service CIDR",
        },
    ];
    for (cidr, node_ip) in peers {
        out.push(peer_route(*cidr, *node_ip)?);
    }
    Ok(out)
}

/// The route to another node's pod CIDR through that node's address.
pub fn peer_route(cidr: IpNet, node_ip: IpAddr) -> Result<NodeRoute, NetworkError> {
    let net = v4(cidr, "peers[].cidr")?;
    let IpAddr::V4(gw) = node_ip else {
        return Err(NetworkError::Field {
            field: "peers[].node_ip",
            message: format!("{node_ip}: only IPv4 is supported yet"),
        });
    };
    Ok(NodeRoute {
        route: Route4 {
            gateway: Some(gw),
            kind: RouteKind::Unicast,
            ..blackhole(net)
        },
        purpose: "peer pod CIDR",
    })
}

/// Whether `r` is one of the agent's peer routes (its protocol, through a gateway).
fn is_peer_route(r: &Route4) -> bool {
    r.protocol == ROUTE_PROTOCOL && r.kind == RouteKind::Unicast && r.gateway.is_some()
}

/// What [`sync_peer_routes`] changed, and the peers it could not route.
#[derive(Debug, Default)]
pub struct PeerSync {
    pub added: Vec<Route4>,
    pub removed: Vec<Route4>,
    pub failed: Vec<(NodeRoute, NetworkError)>,
}

/// Makes the agent's peer routes in the current netns exactly `wanted`: removes its peer
/// routes to a destination or through a gateway no longer wanted, installs the missing ones
/// (each alone: one that would shadow a route already there is refused without holding up
/// the others). Routes that are not the agent's are never touched.
pub fn sync_peer_routes(wanted: &[NodeRoute]) -> Result<PeerSync, NetworkError> {
    let nl = Netlink::connect()?;
    let mut out = PeerSync::default();
    let same =
        |a: &Route4, b: &Route4| a.dst == b.dst && a.prefix == b.prefix && a.gateway == b.gateway;
    let table = nl.routes()?;
    for r in table.iter().filter(|r| is_peer_route(r)) {
        if !wanted.iter().any(|w| same(&w.route, r)) {
            nl.del_route(r)?;
            out.removed.push(r.clone());
        }
    }
    for w in wanted {
        if table.iter().any(|r| is_peer_route(r) && same(&w.route, r)) {
            continue;
        }
        match install_routes(std::slice::from_ref(w)) {
            Ok(added) => out.added.extend(added),
            Err(e) => out.failed.push((w.clone(), e)),
        }
    }
    Ok(out)
}

fn net_of(r: &Route4) -> Ipv4Net {
    Ipv4Net::new(r.dst, r.prefix).unwrap_or_default().trunc()
}

/// Whether `existing` is `wanted` already, as far as ownership goes: the agent's own route
/// for the same destination (to be replaced), or the very same blackhole whoever made it
/// (older agents installed theirs with `proto static`; replacing it changes nothing).
fn is_own(existing: &Route4, wanted: &Route4) -> bool {
    let same_dst = existing.dst == wanted.dst && existing.prefix == wanted.prefix;
    same_dst
        && (existing.protocol == ROUTE_PROTOCOL
            || (existing.kind == RouteKind::BlackHole && wanted.kind == RouteKind::BlackHole))
}

/// The first route of `table` that `wanted` would shadow: one covering the same or a wider
/// range (so `wanted` would take some of its traffic), other than the default route (taking
/// traffic from it is what the blackholes are for) and the agent's own.
pub fn shadowed<'a>(table: &'a [Route4], wanted: &Route4) -> Option<&'a Route4> {
    let net = net_of(wanted);
    table.iter().find(|r| {
        r.prefix > 0
            && r.prefix <= wanted.prefix
            && net_of(r).contains(&net.network())
            && !is_own(r, wanted)
    })
}

/// A route the way `ip route` prints it (`blackhole 10.96.0.0/16`,
/// `10.96.0.0/12 via 192.168.1.1 dev eth0`); `dev` names come from `link_name`.
pub fn describe(r: &Route4, link_name: impl Fn(u32) -> Option<String>) -> String {
    let mut s = match r.kind {
        RouteKind::Unicast => String::new(),
        RouteKind::BlackHole => "blackhole ".into(),
        RouteKind::Unreachable => "unreachable ".into(),
        RouteKind::Prohibit => "prohibit ".into(),
        RouteKind::Local => "local ".into(),
        RouteKind::Broadcast => "broadcast ".into(),
        other => format!("{other:?} ").to_lowercase(),
    };
    s.push_str(&format!("{}/{}", r.dst, r.prefix));
    if let Some(gw) = r.gateway {
        s.push_str(&format!(" via {gw}"));
    }
    if let Some(oif) = r.oif {
        match link_name(oif) {
            Some(name) => s.push_str(&format!(" dev {name}")),
            None => s.push_str(&format!(" dev #{oif}")),
        }
    }
    s
}

/// Installs `routes` in the current netns's main table, after checking that none of them
/// shadows a route already there (then nothing is installed). A route that is there already
/// is left exactly as it is; one of the agent's own for the same destination is replaced.
/// Returns the routes that were not there before (what [`AddedRoutes`] would remove).
pub fn install_routes(routes: &[NodeRoute]) -> Result<Vec<Route4>, NetworkError> {
    let nl = Netlink::connect()?;
    let table = nl.routes()?;
    for want in routes {
        if let Some(theirs) = shadowed(&table, &want.route) {
            let name = |i| nl.link_name(i).ok().flatten();
            return Err(NetworkError::ShadowsRoute {
                purpose: want.purpose,
                ours: describe(&want.route, name),
                theirs: describe(theirs, name),
            });
        }
    }
    let mut added = Vec::new();
    for want in routes {
        let w = &want.route;
        let same = |r: &&Route4| {
            r.dst == w.dst
                && r.prefix == w.prefix
                && r.kind == w.kind
                && r.gateway == w.gateway
                && r.oif == w.oif
        };
        if table.iter().any(|r| same(&r)) {
            continue; // there already, whoever made it: left exactly as it is
        }
        let replaces_own = table.iter().any(|r| is_own(r, w));
        nl.replace_route(w)?;
        if !replaces_own {
            added.push(w.clone());
        }
    }
    Ok(added)
}

/// Removes the agent's routes for these CIDRs and peers from the current netns's main table
/// (and, with `all`, every route marked [`ROUTE_PROTOCOL`]); also the identical blackholes
/// older agents installed with `proto static`. Returns what was removed.
pub fn teardown(routes: &[NodeRoute], all: bool) -> Result<Vec<Route4>, NetworkError> {
    let nl = Netlink::connect()?;
    let mut removed = Vec::new();
    for r in nl.routes()? {
        let wanted = routes.iter().any(|w| {
            r.dst == w.route.dst
                && r.prefix == w.route.prefix
                && r.kind == w.route.kind
                && (r.protocol == ROUTE_PROTOCOL
                    || (r.protocol == PROTO_STATIC && r.kind == RouteKind::BlackHole))
        });
        if wanted || (all && r.protocol == ROUTE_PROTOCOL) {
            nl.del_route(&r)?;
            removed.push(r);
        }
    }
    Ok(removed)
}

/// Routes this process added to the node's main table (none that were there before), in the
/// node netns `netns` (`None`: the agent's own). Removed by [`AddedRoutes::remove`] or, best
/// effort, when dropped (an error path, a panic): a one-off `run` leaves the node as it found
/// it. The node daemon keeps its routes instead ([`AddedRoutes::keep`]).
#[derive(Debug)]
pub struct AddedRoutes {
    netns: Option<PathBuf>,
    routes: Vec<Route4>,
}

impl AddedRoutes {
    pub fn new(netns: Option<PathBuf>, routes: Vec<Route4>) -> Self {
        AddedRoutes { netns, routes }
    }

    /// The routes (for logs).
    pub fn routes(&self) -> &[Route4] {
        &self.routes
    }

    /// Leaves the routes in place.
    pub fn keep(mut self) {
        self.routes.clear();
    }

    /// Deletes the routes again.
    pub fn remove(mut self) -> Result<(), NetworkError> {
        self.remove_now()
    }

    fn remove_now(&mut self) -> Result<(), NetworkError> {
        let routes = std::mem::take(&mut self.routes);
        if routes.is_empty() {
            return Ok(());
        }
        crate::sys::netns_exec::in_netns(self.netns.as_deref(), || {
            let nl = Netlink::connect()?;
            for r in &routes {
                nl.del_route(r)?;
            }
            Ok(())
        })
        .map_err(|source| NetworkError::NodeNetns {
            path: self.netns.clone().unwrap_or_default(),
            source,
        })?
    }
}

impl Drop for AddedRoutes {
    fn drop(&mut self) {
        if let Err(e) = self.remove_now() {
            tracing::warn!(error = %e, "removing the node routes this process added");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn route(dst: &str, kind: RouteKind, protocol: u8) -> Route4 {
        let net: Ipv4Net = dst.parse().unwrap();
        Route4 {
            dst: net.network(),
            prefix: net.prefix_len(),
            gateway: None,
            oif: None,
            kind,
            protocol,
        }
    }

    fn via(dst: &str, gw: [u8; 4], oif: u32) -> Route4 {
        Route4 {
            gateway: Some(Ipv4Addr::from(gw)),
            oif: Some(oif),
            ..route(dst, RouteKind::Unicast, 3)
        }
    }

    fn svc() -> Route4 {
        blackhole("10.96.0.0/16".parse().unwrap())
    }

    #[test]
    fn a_wider_or_equal_route_of_someone_else_is_shadowed() {
        let wide = via("10.96.0.0/12", [192, 168, 1, 1], 2);
        assert_eq!(shadowed(std::slice::from_ref(&wide), &svc()), Some(&wide));
        let same = via("10.96.0.0/16", [192, 168, 1, 1], 2);
        assert_eq!(shadowed(std::slice::from_ref(&same), &svc()), Some(&same));
        let other_blackhole_kind = route("10.96.0.0/16", RouteKind::Unreachable, 3);
        assert!(shadowed(std::slice::from_ref(&other_blackhole_kind), &svc()).is_some());
    }

    #[test]
    fn default_route_narrower_routes_and_own_routes_are_not_shadowed() {
        let table = [
            via("0.0.0.0/0", [192, 168, 1, 1], 2),
            via("10.96.5.0/24", [192, 168, 1, 1], 2),
            via("192.168.0.0/16", [192, 168, 1, 1], 2),
            route("10.96.0.0/16", RouteKind::BlackHole, PROTO_STATIC),
            route("10.244.0.0/24", RouteKind::Unreachable, ROUTE_PROTOCOL),
        ];
        assert_eq!(shadowed(&table, &svc()), None);
        let pods = blackhole("10.244.0.0/24".parse().unwrap());
        assert_eq!(shadowed(&table, &pods), None, "own route: replaced");
    }

    #[test]
    fn routes_are_described_like_ip_route() {
        let name = |i| (i == 2).then(|| "eth0".to_string());
        assert_eq!(describe(&svc(), name), "blackhole 10.96.0.0/16");
        assert_eq!(
            describe(&via("10.96.0.0/12", [192, 168, 1, 1], 2), name),
            "10.96.0.0/12 via 192.168.1.1 dev eth0"
        );
        assert_eq!(
            describe(&via("10.0.0.0/8", [10, 0, 0, 1], 7), name),
            "10.0.0.0/8 via 10.0.0.1 dev #7"
        );
    }

    #[test]
    fn node_routes_are_marked_as_the_agents() {
        let routes = node_routes(
            "10.244.0.0/24".parse().unwrap(),
            "10.96.0.0/16".parse().unwrap(),
            &[(
                "10.244.1.0/24".parse().unwrap(),
                "10.0.0.2".parse().unwrap(),
            )],
        )
        .unwrap();
        assert_eq!(routes.len(), 3);
        assert!(routes.iter().all(|r| r.route.protocol == ROUTE_PROTOCOL));
        assert_eq!(routes[2].route.gateway, Some(Ipv4Addr::new(10, 0, 0, 2)));
        assert_eq!(routes[2].route.kind, RouteKind::Unicast);
    }
}
