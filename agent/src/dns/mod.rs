//! Cluster DNS, node-local: a DNS server in the agent (hickory) answering the cluster
//! zone (`records.rs`) from the Services and EndpointSlices the agent already watches for its
//! dataplane, rebuilt on every change of the watch, and forwarding every other name to the
//! node's resolvers with a cache (`forward.rs`); plus the pods' resolv.conf (`resolv.rs`).
//! Pods reach it at the cluster DNS address (the `kube-dns` ClusterIP), which the node's
//! socket load balancer steers to this server's address on the node (see ARCHITECTURE.md).

pub mod forward;
pub mod records;
pub mod resolv;
pub mod server;
pub mod udp;
pub mod wire;

use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::cluster::ServiceWatch;

/// A TCP client silent this long is dropped.
const TCP_TIMEOUT: Duration = Duration::from_secs(5);

/// The server's sockets, bound in the node's netns before the agent serves anything (a taken
/// address fails the start).
pub struct DnsSockets {
    pub listen: SocketAddr,
    udp: UdpSocket,
    tcp: std::net::TcpListener,
    /// Unconnected, for the upstream queries.
    upstream: UdpSocket,
}

/// Binds UDP and TCP on `listen` and an upstream socket, in `netns` when given.
pub fn bind(netns: Option<&std::path::Path>, listen: SocketAddr) -> io::Result<DnsSockets> {
    crate::sys::netns_exec::in_netns(netns, || -> io::Result<DnsSockets> {
        let udp = UdpSocket::bind(listen)?;
        let tcp = std::net::TcpListener::bind(listen)?;
        let any: SocketAddr = match listen {
            SocketAddr::V4(_) => ([0, 0, 0, 0], 0).into(),
            SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let upstream = UdpSocket::bind(any)?;
        for s in [&udp, &upstream] {
            s.set_nonblocking(true)?;
        }
        tcp.set_nonblocking(true)?;
        Ok(DnsSockets {
            listen,
            udp,
            tcp,
            upstream,
        })
    })?
}

/// What the server answers with.
#[derive(Debug, Clone)]
pub struct DnsServing {
    /// `--cluster-domain`.
    pub domain: String,
    /// The node's resolvers (`nameserver`s of `--resolv-conf`, port 53).
    pub upstreams: Vec<SocketAddr>,
    /// `--resolv-conf`, for the log.
    pub resolv_conf: PathBuf,
}

/// Serves until the runtime stops: the zone follows `watch` (each change rebuilds it; until
/// the first list it is empty, so cluster names are NXDOMAIN while outside names forward).
pub async fn serve(
    sockets: DnsSockets,
    cfg: DnsServing,
    watch: Arc<ServiceWatch>,
) -> io::Result<()> {
    let zone = records::Zone::build(&cfg.domain, &[], &[]);
    let cell: server::ZoneCell = Arc::new(RwLock::new(Arc::new(zone)));
    tokio::spawn(follow(cfg.domain.clone(), watch, cell.clone()));
    serve_zone(sockets, cfg, cell).await
}

/// Serves the zone in `cell` (whoever holds the cell may swap it) until the runtime stops:
/// the server of [`serve`], and of `bosun-agent dns-serve`, which loads a fixed zone from a
/// file (the DNS benchmark's server, without a cluster).
pub async fn serve_zone(
    sockets: DnsSockets,
    cfg: DnsServing,
    cell: server::ZoneCell,
) -> io::Result<()> {
    let forwarder = forward::Forwarder::start(
        cfg.upstreams.clone(),
        tokio::net::UdpSocket::from_std(sockets.upstream)?,
    );
    let handler = server::Handler {
        zone: cell,
        forwarder,
    };
    tokio::spawn(udp::serve(
        tokio::net::UdpSocket::from_std(sockets.udp)?,
        handler.clone(),
    ));
    let mut server = hickory_server::ServerFuture::new(handler);
    server.register_listener_std(sockets.tcp, TCP_TIMEOUT)?;
    tracing::info!(
        listen = %sockets.listen,
        domain = %cfg.domain,
        upstreams = ?cfg.upstreams,
        resolv_conf = %cfg.resolv_conf.display(),
        "cluster DNS serving"
    );
    server
        .block_until_done()
        .await
        .map_err(|e| io::Error::other(e.to_string()))
}

/// Rebuilds the zone on every change of the Services or EndpointSlices.
async fn follow(domain: String, watch: Arc<ServiceWatch>, cell: server::ZoneCell) {
    let mut built = None;
    loop {
        let snapshot = watch
            .state
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .snapshot();
        if let Some(s) = snapshot.filter(|s| Some(s.generation) != built) {
            let zone = records::Zone::build(&domain, &s.services, &s.slices);
            *cell.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(zone);
            built = Some(s.generation);
            tracing::debug!(
                generation = s.generation,
                services = s.services.len(),
                "cluster DNS zone rebuilt"
            );
        }
        watch.dns_changed.notified().await;
    }
}

/// The `nameserver`s of a resolv.conf as upstream addresses (port 53); names that are not
/// addresses are skipped.
pub fn upstreams(conf: &resolv::ResolvConf) -> Vec<SocketAddr> {
    let parse = |ns: &String| ns.parse::<std::net::IpAddr>().ok();
    conf.nameservers
        .iter()
        .filter_map(parse)
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}
