//! The daemon's cluster DNS settings: whether the node runs its DNS server (joined to a
//! cluster with the eBPF dataplane, and `--cluster-dns` not `none`), the cluster DNS address
//! (`--cluster-dns`, default the 10th address of `--service-cidr`, as kubeadm gives kube-dns),
//! the server's sockets on the node's IP (`--dns-port`), and what pods' resolv.conf is made of.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, SocketAddrV4};

use anyhow::{bail, Context};
use bosun_agent::dns::resolv::ClusterDns;
use bosun_agent::dns::{self, DnsServing, DnsSockets};
use bosun_agent::pod::PodDnsSettings;

use super::Args;

/// The cluster DNS address, or None when `--cluster-dns none`.
pub fn cluster_dns_address(args: &Args) -> anyhow::Result<Option<Ipv4Addr>> {
    match args.cluster_dns.as_deref() {
        Some("none") => Ok(None),
        Some(ip) => ip
            .parse()
            .map(Some)
            .with_context(|| format!("--cluster-dns {ip}: not an IPv4 address")),
        None => {
            let net: ipnet::Ipv4Net = args
                .service_cidr
                .parse()
                .with_context(|| format!("--service-cidr {}", args.service_cidr))?;
            let tenth = u32::from(net.network()).checked_add(10);
            match tenth.map(Ipv4Addr::from).filter(|ip| net.contains(ip)) {
                Some(ip) => Ok(Some(ip)),
                None => bail!("--service-cidr {net} has no 10th address for --cluster-dns"),
            }
        }
    }
}

/// What pod workers need for resolv.conf; `runs`: the node's DNS server will run.
pub fn pod_settings(args: &Args, runs: bool) -> anyhow::Result<PodDnsSettings> {
    let address = match runs {
        true => cluster_dns_address(args)?.map(IpAddr::V4),
        false => None,
    };
    Ok(PodDnsSettings {
        cluster: ClusterDns {
            address,
            domain: args.cluster_domain.clone(),
        },
        node_resolv_conf: args.resolv_conf.clone(),
    })
}

/// The DNS server's sockets on the node's IP and what it serves; the address the dataplane
/// steers the cluster DNS address to.
pub fn serving(
    args: &Args,
    node_ip: IpAddr,
) -> anyhow::Result<(DnsSockets, DnsServing, SocketAddrV4)> {
    let IpAddr::V4(ip) = node_ip else {
        bail!("cluster DNS needs an IPv4 node IP (--node-ip), got {node_ip}")
    };
    let listen = SocketAddrV4::new(ip, args.dns_port);
    let sockets = dns::bind(args.node_netns.as_deref(), SocketAddr::V4(listen))
        .with_context(|| format!("the cluster DNS server on {listen} (--dns-port)"))?;
    let text = match std::fs::read_to_string(&args.resolv_conf) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => {
            return Err(e).with_context(|| format!("--resolv-conf {}", args.resolv_conf.display()))
        }
    };
    let upstreams = dns::upstreams(&dns::resolv::parse(&text));
    let serving = DnsServing {
        domain: args.cluster_domain.clone(),
        upstreams,
        resolv_conf: args.resolv_conf.clone(),
    };
    Ok((sockets, serving, listen))
}
