//! The CNI verbs of bosun-cni. ADD: allocate an address, create the veth with its pod end
//! directly in the pod netns, /32 route on the node, address + link-local default route +
//! permanent gateway neighbour in the pod. DEL: release and delete, idempotent. CHECK: compare
//! the kernel with prevResult. GC: release allocations (and their veths) not in
//! `cni.dev/valid-attachments`. STATUS: whether ADD can succeed. Never panics on input.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::os::fd::AsRawFd;
use std::path::Path;

use netlink_packet_route::route::RouteType;
use serde_json::{json, Value};

use crate::ipam::IpamStore;
use crate::link::{format_mac, Netlink, NetlinkError, Route4, PROTO_STATIC};
use crate::names::host_if_name;
use crate::netns;
use crate::spec::{
    self, code, parse_conf, prev_result_ipv4, version_at_least, AddResult, CniError, Command, Env,
    NetConf, LATEST_VERSION, SUPPORTED_VERSIONS,
};

/// The link-local gateway every pod routes through; the host veth answers for it.
pub const GATEWAY: Ipv4Addr = Ipv4Addr::new(169, 254, 1, 1);
const DEFAULT_MTU: u32 = 1500;

impl From<NetlinkError> for CniError {
    fn from(e: NetlinkError) -> Self {
        CniError::new(
            code::IO_FAILURE,
            format!("netlink {} failed", e.op),
            e.to_string(),
        )
    }
}

/// One plugin invocation: `vars` is the environment, `stdin` the config. `Ok(Some(json))` is
/// printed on stdout; `Err(json)` is the spec error object (printed, exit status 1).
pub fn run(vars: &HashMap<String, String>, stdin: &[u8]) -> Result<Option<Value>, Value> {
    let stdin_version = || {
        serde_json::from_slice::<Value>(stdin)
            .ok()
            .and_then(|v| v.get("cniVersion")?.as_str().map(str::to_owned))
            .filter(|v| SUPPORTED_VERSIONS.contains(&v.as_str()))
            .unwrap_or_else(|| LATEST_VERSION.to_owned())
    };
    let env = Env::from_vars(vars).map_err(|e| e.to_json(&stdin_version()))?;
    if env.command == Command::Version {
        return Ok(Some(json!({
            "cniVersion": stdin_version(),
            "supportedVersions": SUPPORTED_VERSIONS,
        })));
    }
    let conf = parse_conf(stdin).map_err(|e| e.to_json(&stdin_version()))?;
    dispatch(&env, &conf).map_err(|e| e.to_json(&conf.cni_version))
}

fn dispatch(env: &Env, conf: &NetConf) -> Result<Option<Value>, CniError> {
    let store = IpamStore::new(&conf.ipam, &conf.name)?;
    match env.command {
        Command::Add => add(env, conf, &store).map(Some),
        Command::Del => del(env, &store).map(|()| None),
        Command::Check => {
            require_version(conf, "0.4.0", "CHECK")?;
            check(env, conf, &store).map(|()| None)
        }
        Command::Gc => {
            require_version(conf, "1.1.0", "GC")?;
            gc(conf, &store).map(|()| None)
        }
        Command::Status => {
            require_version(conf, "1.1.0", "STATUS")?;
            if store.has_free()? {
                Ok(None)
            } else {
                Err(CniError::new(
                    code::NOT_AVAILABLE,
                    "no free address in the pod range",
                    "",
                ))
            }
        }
        Command::Version => Ok(None),
    }
}

fn require_version(conf: &NetConf, min: &str, verb: &str) -> Result<(), CniError> {
    if version_at_least(&conf.cni_version, min) {
        Ok(())
    } else {
        Err(CniError::new(
            code::INCOMPATIBLE_VERSION,
            format!("{verb} needs cniVersion {min} or later"),
            conf.cni_version.clone(),
        ))
    }
}

fn netns_path(env: &Env) -> Result<&Path, CniError> {
    env.netns
        .as_deref()
        .ok_or_else(|| CniError::new(code::INVALID_ENV, "required variable unset", "CNI_NETNS"))
}

fn add(env: &Env, conf: &NetConf, store: &IpamStore) -> Result<Value, CniError> {
    let ns_path = netns_path(env)?;
    let ns = netns::open(ns_path)?;
    let ip = store.allocate(&env.container_id, &env.ifname)?;
    match attach(env, conf, &ns, ip) {
        Ok(mut result) => {
            result.pod_if.2 = ns_path.display().to_string();
            Ok(result.to_json(&conf.cni_version))
        }
        Err(e) => {
            // Leave nothing behind: the next ADD starts clean.
            let _ = store.release(&env.container_id, &env.ifname);
            if let Ok(nl) = Netlink::connect() {
                let _ = nl.del_link(&host_if_name(&env.container_id, &env.ifname));
            }
            Err(e)
        }
    }
}

fn attach(
    env: &Env,
    conf: &NetConf,
    ns: &std::fs::File,
    ip: Ipv4Addr,
) -> Result<AddResult, CniError> {
    let host_if = host_if_name(&env.container_id, &env.ifname);
    let mtu = conf.mtu.unwrap_or(DEFAULT_MTU);
    let nl = Netlink::connect()?;
    nl.del_link(&host_if)?; // a repeated ADD replaces what the first one made
    nl.add_veth(&host_if, &env.ifname, ns.as_raw_fd(), mtu)?;
    let host = nl
        .link(&host_if)?
        .ok_or_else(|| CniError::new(code::IO_FAILURE, "host veth vanished", host_if.clone()))?;
    if !host.up {
        nl.set_up(host.index)?;
    }
    write_sysctl(&format!("net/ipv4/conf/{host_if}/proxy_arp"), "1")?;
    write_sysctl(&format!("net/ipv4/neigh/{host_if}/proxy_delay"), "0")?;
    if conf.ip_forward.unwrap_or(true) {
        write_sysctl("net/ipv4/ip_forward", "1")?;
        // Two ADDs flipping ip_forward at once can leave interfaces behind: the kernel turns
        // forwarding on for every interface only in the write that changed the value, which
        // retries when it finds the rtnl lock taken, and the other ADD may read the value
        // set meanwhile and skip its own write. Seen: `all` on, `default` and the node's
        // uplink off, so the pods' packets to other nodes went out but the replies were
        // dropped. Each interface (this veth among them) is set as ip_forward would.
        forward_on_every_interface()?;
    }
    nl.replace_route(&pod_route(ip, host.index))?;
    let ifname = env.ifname.clone();
    let host_mac = host.mac.clone();
    let pod_mac = netns::run_in(ns, move || {
        let nl = Netlink::connect()?;
        let pod = nl.link(&ifname)?.ok_or_else(|| {
            CniError::new(
                code::IO_FAILURE,
                "pod veth missing in netns",
                ifname.clone(),
            )
        })?;
        nl.add_addr(pod.index, ip.into(), 32)?;
        nl.set_up(pod.index)?;
        nl.replace_route(&Route4 {
            dst: GATEWAY,
            prefix: 32,
            gateway: None,
            oif: Some(pod.index),
            kind: RouteType::Unicast,
            protocol: PROTO_STATIC,
        })?;
        nl.replace_route(&default_route(pod.index))?;
        nl.add_neighbour(pod.index, GATEWAY, &host_mac)?;
        Ok(pod.mac)
    })?;
    Ok(AddResult {
        host_if: (host_if, format_mac(&host.mac)),
        pod_if: (env.ifname.clone(), format_mac(&pod_mac), String::new()),
        ip,
        gateway: GATEWAY,
    })
}

fn pod_route(ip: Ipv4Addr, host_index: u32) -> Route4 {
    Route4 {
        dst: ip,
        prefix: 32,
        gateway: None,
        oif: Some(host_index),
        kind: RouteType::Unicast,
        protocol: PROTO_STATIC,
    }
}

fn default_route(pod_index: u32) -> Route4 {
    Route4 {
        dst: Ipv4Addr::UNSPECIFIED,
        prefix: 0,
        gateway: Some(GATEWAY),
        oif: Some(pod_index),
        kind: RouteType::Unicast,
        protocol: PROTO_STATIC,
    }
}

/// Writes `value` to /proc/sys/`key` (of the current thread's netns).
/// `net.ipv4.conf.*.forwarding` on for every interface of the node netns (and `default`),
/// as a write of `net.ipv4.ip_forward=1` sets them.
fn forward_on_every_interface() -> Result<(), CniError> {
    let dir = Path::new("/proc/sys/net/ipv4/conf");
    let entries = std::fs::read_dir(dir).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            "listing interfaces' sysctls",
            format!("{}: {e}", dir.display()),
        )
    })?;
    for entry in entries.flatten() {
        let name = entry.file_name();
        let key = format!("net/ipv4/conf/{}/forwarding", name.to_string_lossy());
        match write_sysctl(&key, "1") {
            Ok(()) => {}
            // An interface deleted since the listing.
            Err(_) if !entry.path().exists() => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn write_sysctl(key: &str, value: &str) -> Result<(), CniError> {
    let path = Path::new("/proc/sys").join(key);
    if std::fs::read_to_string(&path).is_ok_and(|v| v.trim() == value) {
        return Ok(());
    }
    std::fs::write(&path, value).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            "writing sysctl",
            format!("{}: {e}", path.display()),
        )
    })
}

fn del(env: &Env, store: &IpamStore) -> Result<(), CniError> {
    store.release(&env.container_id, &env.ifname)?;
    // Deleting the host end deletes the pod end and the /32 route with it.
    Netlink::connect()?.del_link(&host_if_name(&env.container_id, &env.ifname))?;
    Ok(())
}

fn check_failed(what: impl Into<String>, details: impl Into<String>) -> CniError {
    CniError::new(code::CHECK_FAILED, what, details)
}

fn check(env: &Env, conf: &NetConf, store: &IpamStore) -> Result<(), CniError> {
    let prev = conf
        .prev_result
        .as_ref()
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "CHECK needs prevResult", ""))?;
    let ip = prev_result_ipv4(prev)
        .ok_or_else(|| CniError::new(code::INVALID_CONFIG, "prevResult has no IPv4 address", ""))?;
    if store.held_by(&env.container_id, &env.ifname)? != Some(ip) {
        return Err(check_failed(
            "ipam: address not allocated to this attachment",
            ip.to_string(),
        ));
    }
    let host_if = host_if_name(&env.container_id, &env.ifname);
    let nl = Netlink::connect()?;
    let host = nl
        .link(&host_if)?
        .ok_or_else(|| check_failed("host veth missing", host_if.clone()))?;
    if !host.up {
        return Err(check_failed("host veth is down", host_if));
    }
    let want = pod_route(ip, host.index);
    if !nl
        .routes()?
        .iter()
        .any(|r| r.dst == want.dst && r.prefix == 32 && r.oif == want.oif)
    {
        return Err(check_failed(
            "node route to pod missing",
            format!("{ip}/32 dev {host_if}"),
        ));
    }
    let ns = netns::open(netns_path(env)?)
        .map_err(|e| CniError::new(code::CONTAINER_UNKNOWN, "pod netns gone", e.details))?;
    let ifname = env.ifname.clone();
    netns::run_in(&ns, move || {
        let nl = Netlink::connect()?;
        let pod = nl
            .link(&ifname)?
            .ok_or_else(|| check_failed("pod interface missing", ifname.clone()))?;
        if !pod.up || !nl.has_addr(pod.index, ip)? {
            return Err(check_failed(
                "pod interface down or without its address",
                ifname,
            ));
        }
        let default = nl
            .routes()?
            .into_iter()
            .any(|r| r.prefix == 0 && r.gateway == Some(GATEWAY) && r.oif == Some(pod.index));
        if default {
            Ok(())
        } else {
            Err(check_failed(
                "pod default route missing",
                format!("via {GATEWAY}"),
            ))
        }
    })
}

fn gc(conf: &NetConf, store: &IpamStore) -> Result<(), CniError> {
    let valid = conf.valid_attachments.clone().unwrap_or_default();
    let leaked = store.release_all_but(&valid)?;
    if leaked.is_empty() {
        return Ok(());
    }
    let nl = Netlink::connect()?;
    for a in leaked {
        nl.del_link(&host_if_name(&a.container_id, &a.ifname))?;
    }
    Ok(())
}

/// The spec error for a panic caught by `main` (should never happen; belt and braces).
pub fn internal_error(details: &str) -> Value {
    CniError::new(spec::code::IO_FAILURE, "internal error", details).to_json(LATEST_VERSION)
}
