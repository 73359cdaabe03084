//! Desired vs installed → the map writes to make: pure, compared in the normalized form the
//! maps hold, so a sync with nothing changed writes nothing.

use std::collections::BTreeMap;

use bosun_ebpf::{ServiceKey, ServiceSpec as LbSpec};

/// The writes one sync makes.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Plan {
    /// New or changed services, normalized.
    pub upserts: Vec<(ServiceKey, LbSpec)>,
    /// Installed services nobody wants any more.
    pub removes: Vec<ServiceKey>,
    /// Backends added or dropped over all upserts (what changed, not what was rewritten).
    pub backends_changed: usize,
}

impl Plan {
    pub fn is_empty(&self) -> bool {
        self.upserts.is_empty() && self.removes.is_empty()
    }
}

/// What to write so that `installed` becomes `desired`.
pub fn plan(
    desired: &BTreeMap<ServiceKey, LbSpec>,
    installed: &BTreeMap<ServiceKey, LbSpec>,
) -> Plan {
    let mut out = Plan::default();
    for (key, spec) in desired {
        let spec = spec.normalized();
        match installed.get(key) {
            Some(old) if *old == spec => {}
            old => {
                out.backends_changed += changed_backends(old, &spec);
                out.upserts.push((*key, spec));
            }
        }
    }
    for (key, old) in installed {
        if !desired.contains_key(key) {
            out.backends_changed += old.backends.len();
            out.removes.push(*key);
        }
    }
    out
}

fn changed_backends(old: Option<&LbSpec>, new: &LbSpec) -> usize {
    let Some(old) = old else {
        return new.backends.len();
    };
    let added = new.backends.iter().filter(|b| !old.backends.contains(b));
    let dropped = old.backends.iter().filter(|b| !new.backends.contains(b));
    added.count() + dropped.count()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use bosun_ebpf::{Backend, Protocol};

    use super::*;

    fn key(n: u8) -> ServiceKey {
        ServiceKey {
            ip: Ipv4Addr::new(10, 96, 0, n),
            port: 80,
            protocol: Protocol::Tcp,
        }
    }

    fn spec(backends: &[u8]) -> LbSpec {
        LbSpec {
            backends: backends
                .iter()
                .map(|n| Backend::ready(Ipv4Addr::new(10, 244, 0, *n), 8080))
                .collect(),
            ..LbSpec::default()
        }
    }

    #[test]
    fn nothing_changed_writes_nothing() {
        let desired = BTreeMap::from([(key(1), spec(&[2, 1]))]);
        let installed = BTreeMap::from([(key(1), spec(&[1, 2]).normalized())]);
        assert!(plan(&desired, &installed).is_empty());
    }

    #[test]
    fn changed_new_and_gone_services_are_written() {
        let desired = BTreeMap::from([(key(1), spec(&[1, 3])), (key(2), spec(&[1]))]);
        let installed = BTreeMap::from([(key(1), spec(&[1, 2])), (key(3), spec(&[4, 5]))]);
        let p = plan(&desired, &installed);
        let upserted: Vec<_> = p.upserts.iter().map(|(k, _)| *k).collect();
        assert_eq!(upserted, vec![key(1), key(2)]);
        assert_eq!(p.removes, vec![key(3)]);
        // key 1: +3 -2, key 2: +1, key 3: -4 -5.
        assert_eq!(p.backends_changed, 5);
    }
}
