//! Service helpers shared by the kernel tests: addresses, specs, spread checks.

use std::{collections::BTreeMap, net::Ipv4Addr};

use bosun_ebpf::{Backend, Protocol, ServiceKey, ServiceSpec};

use super::{client::Outcome, servers::Server};

pub fn vip(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(10, 96, 0, n)
}

pub fn key(ip: Ipv4Addr, port: u16, protocol: Protocol) -> ServiceKey {
    ServiceKey { ip, port, protocol }
}

pub fn spec_for(servers: &[Server]) -> ServiceSpec {
    ServiceSpec {
        backends: servers
            .iter()
            .map(|s| Backend::ready(*s.addr.ip(), s.addr.port()))
            .collect(),
        ..ServiceSpec::default()
    }
}

/// Successful backends by count; panics on any failure.
pub fn spread(outcomes: &[Outcome]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for o in outcomes {
        let b = o
            .backend()
            .unwrap_or_else(|| panic!("attempt failed: {o:?}"));
        *counts.entry(b.to_string()).or_insert(0) += 1;
    }
    counts
}

pub fn assert_even(counts: &BTreeMap<String, usize>, servers: &[Server], total: usize) {
    assert_eq!(
        counts.len(),
        servers.len(),
        "not every backend was reached: {counts:?}"
    );
    let fair = total / servers.len();
    for (b, &c) in counts {
        assert!(c >= fair / 3, "backend {b} got {c} of {total}: {counts:?}");
    }
}
