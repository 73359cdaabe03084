//! Netlink, blocking: a [`Netlink`] owns a current-thread tokio runtime and an rtnetlink
//! connection bound to the network namespace of the thread that opened it. Links, addresses,
//! routes and neighbours — exactly the operations the plugin and the agent's node routing
//! need, each failure naming what it was doing to which object. Knows nothing of CNI verbs.

use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::RawFd;

use futures::TryStreamExt;
use netlink_packet_route::link::{InfoData, InfoVeth, LinkAttribute, LinkFlags, LinkMessage};
pub use netlink_packet_route::route::RouteType as RouteKind;
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteMessage, RouteScope, RouteType,
};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

/// A netlink failure: the operation, its object, and the kernel's errno when there is one.
#[derive(Debug, thiserror::Error)]
#[error("netlink {op} {object}: {message}")]
pub struct NetlinkError {
    pub op: &'static str,
    pub object: String,
    pub errno: Option<i32>,
    pub message: String,
}

const ENODEV: i32 = 19;
const ESRCH: i32 = 3;
const EEXIST: i32 = 17;

fn nl_err(op: &'static str, object: impl ToString, e: rtnetlink::Error) -> NetlinkError {
    let errno = match &e {
        rtnetlink::Error::NetlinkError(m) => Some(m.raw_code().abs()),
        _ => None,
    };
    NetlinkError {
        op,
        object: object.to_string(),
        errno,
        message: e.to_string(),
    }
}

/// `rtm_protocol` of the routes rtnetlink makes unless told otherwise (`proto static`).
pub const PROTO_STATIC: u8 = 4;

/// An IPv4 route of the main table (as written, or as read back from the kernel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route4 {
    pub dst: Ipv4Addr,
    pub prefix: u8,
    pub gateway: Option<Ipv4Addr>,
    pub oif: Option<u32>,
    pub kind: RouteType,
    /// Who installed it (`rtm_protocol`: 2 kernel, 3 boot, 4 static, …); lets an owner find
    /// and delete exactly its own routes.
    pub protocol: u8,
}

/// A link's index, MAC and whether it is up.
#[derive(Debug, Clone)]
pub struct LinkInfo {
    pub index: u32,
    pub mac: Vec<u8>,
    pub up: bool,
}

/// A netlink connection in the calling thread's network namespace.
pub struct Netlink {
    rt: tokio::runtime::Runtime,
    handle: Handle,
}

impl Netlink {
    /// Opens the connection; the socket belongs to the current thread's netns.
    pub fn connect() -> Result<Self, NetlinkError> {
        let io = |e: std::io::Error| NetlinkError {
            op: "connect",
            object: "rtnetlink".into(),
            errno: e.raw_os_error(),
            message: e.to_string(),
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .build()
            .map_err(io)?;
        let handle = rt.block_on(async {
            let (conn, handle, _) = rtnetlink::new_connection()?;
            tokio::spawn(conn);
            Ok::<_, std::io::Error>(handle)
        });
        Ok(Netlink {
            rt,
            handle: handle.map_err(io)?,
        })
    }

    /// The link called `name`, or `None` if there is none.
    pub fn link(&self, name: &str) -> Result<Option<LinkInfo>, NetlinkError> {
        let mut req = std::pin::pin!(self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute());
        match self.rt.block_on(req.try_next()) {
            Ok(Some(msg)) => Ok(Some(link_info(&msg))),
            Ok(None) => Ok(None),
            Err(e) => {
                let err = nl_err("get link", name, e);
                if err.errno == Some(ENODEV) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Creates veth `host` here and its peer `peer` directly in the netns `peer_ns`
    /// (an open fd), both with `mtu`; the host end comes up at once.
    pub fn add_veth(
        &self,
        host: &str,
        peer: &str,
        peer_ns: RawFd,
        mtu: u32,
    ) -> Result<(), NetlinkError> {
        let peer_msg = LinkMessageBuilder::<LinkUnspec>::new()
            .name(peer.to_owned())
            .mtu(mtu)
            .setns_by_fd(peer_ns)
            .build();
        let msg = LinkVeth::new(host, peer)
            .mtu(mtu)
            .up()
            .set_info_data(InfoData::Veth(InfoVeth::Peer(peer_msg)))
            .build();
        self.rt
            .block_on(self.handle.link().add(msg).execute())
            .map_err(|e| nl_err("add veth", format!("{host}/{peer}"), e))
    }

    /// The name of link `index`, or `None` if there is none.
    pub fn link_name(&self, index: u32) -> Result<Option<String>, NetlinkError> {
        let mut req = std::pin::pin!(self.handle.link().get().match_index(index).execute());
        match self.rt.block_on(req.try_next()) {
            Ok(Some(msg)) => Ok(msg.attributes.iter().find_map(|a| match a {
                LinkAttribute::IfName(n) => Some(n.clone()),
                _ => None,
            })),
            Ok(None) => Ok(None),
            Err(e) => {
                let err = nl_err("get link", index, e);
                if err.errno == Some(ENODEV) {
                    Ok(None)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Sets link `index` up.
    pub fn set_up(&self, index: u32) -> Result<(), NetlinkError> {
        let msg = LinkUnspec::new_with_index(index).up().build();
        self.rt
            .block_on(self.handle.link().set(msg).execute())
            .map_err(|e| nl_err("set up", index, e))
    }

    /// Deletes link `name`; a missing link is fine. Returns whether one was deleted.
    pub fn del_link(&self, name: &str) -> Result<bool, NetlinkError> {
        let Some(link) = self.link(name)? else {
            return Ok(false);
        };
        match self
            .rt
            .block_on(self.handle.link().del(link.index).execute())
        {
            Ok(()) => Ok(true),
            Err(e) => {
                let err = nl_err("delete link", name, e);
                if err.errno == Some(ENODEV) {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Adds `ip/prefix` to link `index` (an existing identical address is fine).
    pub fn add_addr(&self, index: u32, ip: IpAddr, prefix: u8) -> Result<(), NetlinkError> {
        let req = self.handle.address().add(index, ip, prefix).replace();
        self.rt
            .block_on(req.execute())
            .map_err(|e| nl_err("add address", format!("{ip}/{prefix}"), e))
    }

    /// Whether link `index` holds IPv4 address `ip`.
    pub fn has_addr(&self, index: u32, ip: Ipv4Addr) -> Result<bool, NetlinkError> {
        use netlink_packet_route::address::AddressAttribute;
        let req = self.handle.address().get().set_link_index_filter(index);
        let addrs: Vec<_> = self
            .rt
            .block_on(req.execute().try_collect())
            .map_err(|e| nl_err("list addresses", index, e))?;
        Ok(addrs.iter().any(|a| {
            a.attributes
                .iter()
                .any(|attr| matches!(attr, AddressAttribute::Address(IpAddr::V4(x)) if *x == ip))
        }))
    }

    /// Adds or replaces an IPv4 route in the main table.
    pub fn replace_route(&self, route: &Route4) -> Result<(), NetlinkError> {
        let msg = route_message(route);
        let req = self.handle.route().add(msg).replace();
        self.rt.block_on(req.execute()).map_err(|e| {
            nl_err(
                "replace route",
                format!("{}/{}", route.dst, route.prefix),
                e,
            )
        })
    }

    /// Deletes an IPv4 route (matched on destination, type and protocol, so only the owner's
    /// route goes); a missing route is fine.
    pub fn del_route(&self, route: &Route4) -> Result<(), NetlinkError> {
        let msg = route_message(route);
        match self.rt.block_on(self.handle.route().del(msg).execute()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = nl_err("delete route", format!("{}/{}", route.dst, route.prefix), e);
                if err.errno == Some(ESRCH) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }

    /// The IPv4 routes of the main table.
    pub fn routes(&self) -> Result<Vec<Route4>, NetlinkError> {
        let filter = RouteMessageBuilder::<Ipv4Addr>::new().build();
        let msgs: Vec<RouteMessage> = self
            .rt
            .block_on(self.handle.route().get(filter).execute().try_collect())
            .map_err(|e| nl_err("list routes", "ipv4", e))?;
        Ok(msgs
            .iter()
            .filter(|m| m.header.table == 254)
            .map(route4)
            .collect())
    }

    /// A permanent neighbour entry `ip` → `mac` on link `index`.
    pub fn add_neighbour(&self, index: u32, ip: Ipv4Addr, mac: &[u8]) -> Result<(), NetlinkError> {
        let req = self
            .handle
            .neighbours()
            .add(index, IpAddr::V4(ip))
            .link_layer_address(mac)
            .replace();
        match self.rt.block_on(req.execute()) {
            Ok(()) => Ok(()),
            Err(e) => {
                let err = nl_err("add neighbour", ip, e);
                if err.errno == Some(EEXIST) {
                    Ok(())
                } else {
                    Err(err)
                }
            }
        }
    }
}

fn link_info(msg: &LinkMessage) -> LinkInfo {
    let mac = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            LinkAttribute::Address(mac) => Some(mac.clone()),
            _ => None,
        })
        .unwrap_or_default();
    LinkInfo {
        index: msg.header.index,
        mac,
        up: msg.header.flags.contains(LinkFlags::Up),
    }
}

fn route_message(r: &Route4) -> RouteMessage {
    let mut b = RouteMessageBuilder::<Ipv4Addr>::new()
        .destination_prefix(r.dst, r.prefix)
        .kind(r.kind)
        .protocol(r.protocol.into());
    if let Some(oif) = r.oif {
        b = b.output_interface(oif);
    }
    match r.gateway {
        Some(gw) => b = b.gateway(gw),
        None if r.oif.is_some() => b = b.scope(RouteScope::Link),
        None => {}
    }
    b.build()
}

fn route4(m: &RouteMessage) -> Route4 {
    let mut r = Route4 {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: m.header.destination_prefix_length,
        gateway: None,
        oif: None,
        kind: m.header.kind,
        protocol: m.header.protocol.into(),
    };
    for a in &m.attributes {
        match a {
            RouteAttribute::Destination(RouteAddress::Inet(d)) => r.dst = *d,
            RouteAttribute::Gateway(RouteAddress::Inet(g)) => r.gateway = Some(*g),
            RouteAttribute::Oif(i) => r.oif = Some(*i),
            _ => {}
        }
    }
    r
}

/// A MAC address as `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: &[u8]) -> String {
    mac.iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}
