//! The nftables peer: kube-proxy's nftables-mode layout (table `ip kube-proxy`), applied with
//! one `nft -f` transaction inside the bench netns, as kube-proxy (knftables) does.
//!
//! `nat-output` (hook output, priority -100) jumps to `services`, which does one
//! `ip daddr . meta l4proto . th dport vmap @service-ips` lookup (a hash map: O(1) in the
//! service count) to a per-service chain: a masquerade-mark rule for traffic from outside the
//! cluster CIDR, then `numgen random mod n vmap { k : goto endpoint-… }`; each endpoint chain
//! marks hairpin traffic and does `dnat to IP:PORT`. `masquerading` (postrouting) SNATs
//! marked traffic. A one-endpoint change rewrites the service chain and adds or deletes the
//! endpoint chain in one transaction.

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{
    routing::{endpoints, vip},
    routing_env::{run_timed, Netns, CLUSTER_CIDR},
};

const T: &str = "ip kube-proxy";

fn svc_chain(i: u32) -> String {
    let name = format!("bench/svc-{i}/tcp/http");
    let hash = hex::encode_upper(&Sha256::digest(name.as_bytes())[..4]);
    format!("service-{hash}-{name}")
}

fn ep_chain(i: u32, k: usize) -> String {
    let ep = endpoints()[k];
    let name = format!("bench/svc-{i}/tcp/http__{}/{}", ep.ip(), ep.port());
    let hash = hex::encode_upper(&Sha256::digest(name.as_bytes())[..4]);
    format!("endpoint-{hash}-{name}")
}

/// The whole table for services `0..n`, 10 endpoints each (`nft -f` input).
pub fn full(n: u32) -> String {
    let mut out = String::with_capacity(n as usize * 3000 + 2048);
    let _ = write!(
        out,
        concat!(
            "add table {t} {{ comment \"rules for kube-proxy\" ; }}\n",
            "add chain {t} mark-for-masquerade\n",
            "add rule {t} mark-for-masquerade mark set mark or 0x4000\n",
            "add chain {t} masquerading {{ type nat hook postrouting priority srcnat ; policy accept ; }}\n",
            "add rule {t} masquerading mark and 0x4000 == 0 return\n",
            "add rule {t} masquerading mark set mark xor 0x4000\n",
            "add rule {t} masquerading masquerade fully-random\n",
            "add map {t} service-ips {{ type ipv4_addr . inet_proto . inet_service : verdict ; ",
            "comment \"ClusterIP, ExternalIP and LoadBalancer IP traffic\" ; }}\n",
            "add chain {t} services\n",
            "add rule {t} services ip daddr . meta l4proto . th dport vmap @service-ips\n",
            "add chain {t} nat-output {{ type nat hook output priority -100 ; policy accept ; }}\n",
            "add rule {t} nat-output jump services\n",
        ),
        t = T
    );
    for i in 0..n {
        let _ = writeln!(out, "add chain {T} {}", svc_chain(i));
        for k in 0..endpoints().len() {
            endpoint(&mut out, i, k);
        }
        service_rules(&mut out, i, endpoints().len());
        let _ = writeln!(
            out,
            "add element {T} service-ips {{ {} . tcp . 80 : goto {} }}",
            vip(i),
            svc_chain(i)
        );
    }
    out
}

fn endpoint(out: &mut String, i: u32, k: usize) {
    let (chain, ep) = (ep_chain(i, k), endpoints()[k]);
    let _ = writeln!(out, "add chain {T} {chain}");
    let _ = writeln!(
        out,
        "add rule {T} {chain} ip saddr {} jump mark-for-masquerade",
        ep.ip()
    );
    let _ = writeln!(out, "add rule {T} {chain} meta l4proto tcp dnat to {ep}");
}

/// The rules of service `i`'s chain with its first `count` endpoints.
fn service_rules(out: &mut String, i: u32, count: usize) {
    let chain = svc_chain(i);
    let _ = writeln!(
        out,
        "add rule {T} {chain} ip daddr {} tcp dport 80 ip saddr != {CLUSTER_CIDR} jump mark-for-masquerade",
        vip(i)
    );
    let arms: Vec<String> = (0..count)
        .map(|k| format!("{k} : goto {}", ep_chain(i, k)))
        .collect();
    let _ = writeln!(
        out,
        "add rule {T} {chain} numgen random mod {count} vmap {{ {} }}",
        arms.join(" , ")
    );
}

/// A transaction that leaves service `i` with its first `count` endpoints: 9 removes the
/// last endpoint (its chain flushed and deleted after the service chain stops using it), 10
/// adds it back (its chain created first). Toggles start from the full service.
pub fn one_change(i: u32, count: usize) -> String {
    let mut out = String::new();
    let all = endpoints().len();
    if count == all {
        endpoint(&mut out, i, all - 1);
    }
    let _ = writeln!(out, "flush chain {T} {}", svc_chain(i));
    service_rules(&mut out, i, count);
    for k in count..all {
        let _ = writeln!(out, "flush chain {T} {}", ep_chain(i, k));
        let _ = writeln!(out, "delete chain {T} {}", ep_chain(i, k));
    }
    out
}

/// Applies a transaction in the netns; returns (wall ms, CPU ms of nft), `None` if killed
/// at `limit`.
pub fn apply(ns: &Netns, file: &Path, text: &str, limit: Duration) -> Result<Option<(f64, f64)>> {
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    run_timed(ns.command("nft").arg("-f").arg(file), limit)
}
