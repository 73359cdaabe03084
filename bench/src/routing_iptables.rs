//! The iptables peer: kube-proxy's iptables-mode nat layout, applied the way kube-proxy
//! applies it, with one `iptables-restore --noflush` (nf_tables backend on Debian 12) run
//! inside the bench netns.
//!
//! `OUTPUT → KUBE-SERVICES`, one `-d VIP --dport 80 -j KUBE-SVC-*` rule per service (a linear
//! chain: the measured service is the last one), per service a masquerade-mark rule and one
//! `-m statistic --mode random --probability 1/(n-i)` jump per endpoint to a `KUBE-SEP-*`
//! chain (hairpin mark + DNAT), KUBE-MARK-MASQ / KUBE-POSTROUTING with the 0x4000 mark, and
//! the trailing KUBE-NODEPORTS rule. Chain names hash the service port name as kube-proxy
//! does (hex instead of its base32). A one-endpoint change rewrites only that service's
//! KUBE-SVC/KUBE-SEP chains (declaring a chain flushes it under --noflush); kube-proxy's
//! minimized sync also rewrites KUBE-SERVICES each time, so this is a lower bound for it.
//!
//! Debian 12's iptables 1.8.9 (nft backend) is superlinear with `--noflush` on a big input
//! (measured: 1000 services 5 s, 2000 services > 300 s of CPU; without --noflush 4 s), so
//! the full sync is timed both ways: `sync_full_noflush_ms` (kube-proxy's way, killed at a
//! limit) and `sync_full_ms` (a plain restore of the nat table: the same ruleset from empty).

use std::{fmt::Write as _, path::Path, time::Duration};

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};

use super::{
    routing::{endpoints, vip},
    routing_env::{run_timed, Netns, CLUSTER_CIDR},
};

fn hash16(s: &str) -> String {
    hex::encode_upper(&Sha256::digest(s.as_bytes())[..8])
}

fn svc_name(i: u32) -> String {
    format!("bench/svc-{i}:http")
}

fn svc_chain(i: u32) -> String {
    format!("KUBE-SVC-{}", hash16(&format!("{}tcp", svc_name(i))))
}

fn sep_chain(i: u32, k: usize) -> String {
    let ep = endpoints()[k];
    format!("KUBE-SEP-{}", hash16(&format!("{}tcp{ep}", svc_name(i))))
}

/// The full nat table for services `0..n`, 10 endpoints each (iptables-restore input).
pub fn full(n: u32) -> String {
    let mut out = String::with_capacity(n as usize * 3000 + 1024);
    out.push_str("*nat\n");
    for chain in [
        "KUBE-SERVICES",
        "KUBE-POSTROUTING",
        "KUBE-MARK-MASQ",
        "KUBE-NODEPORTS",
    ] {
        let _ = writeln!(out, ":{chain} - [0:0]");
    }
    for i in 0..n {
        let _ = writeln!(out, ":{} - [0:0]", svc_chain(i));
        for k in 0..endpoints().len() {
            let _ = writeln!(out, ":{} - [0:0]", sep_chain(i, k));
        }
    }
    out.push_str(concat!(
        "-A OUTPUT -m comment --comment \"kubernetes service portals\" -j KUBE-SERVICES\n",
        "-A POSTROUTING -m comment --comment \"kubernetes postrouting rules\" -j KUBE-POSTROUTING\n",
        "-A KUBE-POSTROUTING -m mark ! --mark 0x4000/0x4000 -j RETURN\n",
        "-A KUBE-POSTROUTING -j MARK --xor-mark 0x4000\n",
        "-A KUBE-POSTROUTING -m comment --comment \"kubernetes service traffic requiring SNAT\" -j MASQUERADE --random-fully\n",
        "-A KUBE-MARK-MASQ -j MARK --or-mark 0x4000\n",
    ));
    for i in 0..n {
        let _ = writeln!(
            out,
            "-A KUBE-SERVICES -m comment --comment \"{} cluster IP\" -m tcp -p tcp -d {}/32 --dport 80 -j {}",
            svc_name(i),
            vip(i),
            svc_chain(i)
        );
        service_rules(&mut out, i, endpoints().len());
    }
    out.push_str(concat!(
        "-A KUBE-SERVICES -m comment --comment \"kubernetes service nodeports; NOTE: this must be ",
        "the last rule in this chain\" -m addrtype --dst-type LOCAL -j KUBE-NODEPORTS\n",
        "COMMIT\n"
    ));
    out
}

/// The KUBE-SVC rules of service `i` with its first `count` endpoints, and their KUBE-SEPs.
fn service_rules(out: &mut String, i: u32, count: usize) {
    let (name, svc) = (svc_name(i), svc_chain(i));
    let _ = writeln!(
        out,
        "-A {svc} -m comment --comment \"{name} cluster IP\" -m tcp -p tcp -d {}/32 --dport 80 ! -s {CLUSTER_CIDR} -j KUBE-MARK-MASQ",
        vip(i)
    );
    let eps = endpoints();
    for (k, ep) in eps.iter().take(count).enumerate() {
        let statistic = if k + 1 < count {
            format!(
                " -m statistic --mode random --probability {:.10}",
                1.0 / (count - k) as f64
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            out,
            "-A {svc} -m comment --comment \"{name} -> {ep}\"{statistic} -j {}",
            sep_chain(i, k)
        );
    }
    for (k, ep) in eps.iter().take(count).enumerate() {
        let sep = sep_chain(i, k);
        let _ = writeln!(
            out,
            "-A {sep} -m comment --comment {name} -s {}/32 -j KUBE-MARK-MASQ",
            ep.ip()
        );
        let _ = writeln!(
            out,
            "-A {sep} -m comment --comment {name} -m tcp -p tcp -j DNAT --to-destination {ep}"
        );
    }
}

/// A --noflush restore that leaves service `i` with its first `count` endpoints (9: the last
/// endpoint removed, its KUBE-SEP deleted; 10: added back).
pub fn one_change(i: u32, count: usize) -> String {
    let mut out = String::from("*nat\n");
    let _ = writeln!(out, ":{} - [0:0]", svc_chain(i));
    for k in 0..endpoints().len() {
        let _ = writeln!(out, ":{} - [0:0]", sep_chain(i, k));
    }
    service_rules(&mut out, i, count);
    for k in count..endpoints().len() {
        let _ = writeln!(out, "-X {}", sep_chain(i, k));
    }
    out.push_str("COMMIT\n");
    out
}

/// Applies a restore file in the netns, `--noflush` as kube-proxy does or flushing the nat
/// table first; returns (wall ms, CPU ms of iptables-restore), `None` if killed at `limit`.
pub fn apply(
    ns: &Netns,
    file: &Path,
    text: &str,
    noflush: bool,
    limit: Duration,
) -> Result<Option<(f64, f64)>> {
    std::fs::write(file, text).with_context(|| format!("writing {}", file.display()))?;
    let mut command = ns.command("iptables-restore");
    if noflush {
        command.arg("--noflush");
    }
    run_timed(command.arg(file), limit)
}
