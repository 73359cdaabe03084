//! Node routing: blackhole routes for the pod CIDR and the service CIDR (a live pod's /32
//! route is more specific and wins; unknown pod or service addresses die here instead of
//! leaking to the default gateway) and routes to other nodes' pod CIDRs via their node
//! addresses. Works in the calling thread's netns; idempotent (routes are replaced).

use std::net::IpAddr;

use bosun_cni::link::RouteKind as RouteType;
use bosun_cni::link::{Netlink, Route4};
use ipnet::IpNet;

use super::NetworkError;

fn v4(net: IpNet, field: &'static str) -> Result<ipnet::Ipv4Net, NetworkError> {
    match net {
        IpNet::V4(n) => Ok(n.trunc()),
        IpNet::V6(_) => Err(NetworkError::Field {
            field,
            message: format!("{net}: only IPv4 is supported yet"),
        }),
    }
}

/// Installs the node's routes in the current netns.
pub fn setup_routes(
    pod_cidr: IpNet,
    service_cidr: IpNet,
    peers: &[(IpNet, IpAddr)],
) -> Result<(), NetworkError> {
    let nl = Netlink::connect()?;
    for (net, field) in [(pod_cidr, "pod_cidr"), (service_cidr, "service_cidr")] {
        let net = v4(net, field)?;
        nl.replace_route(&Route4 {
            dst: net.network(),
            prefix: net.prefix_len(),
            gateway: None,
            oif: None,
            kind: RouteType::BlackHole,
        })?;
    }
    for (cidr, node_ip) in peers {
        let net = v4(*cidr, "peers[].cidr")?;
        let IpAddr::V4(gw) = node_ip else {
            return Err(NetworkError::Field {
                field: "peers[].node_ip",
                message: format!("{node_ip}: only IPv4 is supported yet"),
            });
        };
        nl.replace_route(&Route4 {
            dst: net.network(),
            prefix: net.prefix_len(),
            gateway: Some(*gw),
            oif: None,
            kind: RouteType::Unicast,
        })?;
    }
    Ok(())
}
