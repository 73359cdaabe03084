//! The typed service model userspace programs: what a ClusterIP is, which backends it has,
//! and the canonical ("normalized") form that is written to, and read back from, the maps.
//!
//! Pure data; never touches the kernel.

use std::{fmt, net::Ipv4Addr, time::Duration};

/// Transport protocol of a service port.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub(crate) fn ip_proto(self) -> u8 {
        match self {
            Protocol::Tcp => libc::IPPROTO_TCP as u8,
            Protocol::Udp => libc::IPPROTO_UDP as u8,
        }
    }

    pub(crate) fn from_ip_proto(proto: u8) -> Option<Self> {
        match proto as i32 {
            libc::IPPROTO_TCP => Some(Protocol::Tcp),
            libc::IPPROTO_UDP => Some(Protocol::Udp),
            _ => None,
        }
    }
}

/// A service address: ClusterIP, port and protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let proto = match self.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        };
        write!(f, "{}:{}/{}", self.ip, self.port, proto)
    }
}

/// One endpoint with the EndpointSlice conditions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Backend {
    pub ip: Ipv4Addr,
    pub port: u16,
    pub ready: bool,
    pub serving: bool,
    pub terminating: bool,
}

impl Backend {
    /// A ready backend.
    pub fn ready(ip: Ipv4Addr, port: u16) -> Self {
        Backend {
            ip,
            port,
            ready: true,
            serving: true,
            terminating: false,
        }
    }

    /// A terminating backend that still serves (used only when none is ready).
    pub fn terminating(ip: Ipv4Addr, port: u16) -> Self {
        Backend {
            ip,
            port,
            ready: false,
            serving: true,
            terminating: true,
        }
    }

    fn class(&self) -> Option<BackendClass> {
        if self.ready && !self.terminating {
            Some(BackendClass::Ready)
        } else if self.serving && self.terminating {
            Some(BackendClass::TerminatingServing)
        } else {
            None
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum BackendClass {
    Ready,
    TerminatingServing,
}

/// What a service should do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    pub backends: Vec<Backend>,
    /// ClientIP session affinity with this timeout (whole seconds, at least one).
    pub affinity_timeout: Option<Duration>,
    /// Pick backends from a Maglev table instead of at random.
    pub maglev: bool,
}

impl ServiceSpec {
    /// The canonical form the maps hold: only usable backends (ready, or terminating but
    /// serving), ready ones first, each group sorted by address without duplicates, flags
    /// canonical, affinity rounded to whole seconds. `services()` returns specs in this form,
    /// so a diff compares `desired.normalized()` with what is installed.
    pub fn normalized(&self) -> ServiceSpec {
        let mut ready = Vec::new();
        let mut fallback = Vec::new();
        for b in &self.backends {
            match b.class() {
                Some(BackendClass::Ready) => ready.push(Backend::ready(b.ip, b.port)),
                Some(BackendClass::TerminatingServing) => {
                    fallback.push(Backend::terminating(b.ip, b.port))
                }
                None => {}
            }
        }
        for group in [&mut ready, &mut fallback] {
            group.sort_by_key(|b| (b.ip, b.port));
            group.dedup_by_key(|b| (b.ip, b.port));
        }
        fallback.retain(|f| !ready.iter().any(|r| (r.ip, r.port) == (f.ip, f.port)));
        ready.extend(fallback);
        ServiceSpec {
            backends: ready,
            affinity_timeout: self
                .affinity_timeout
                .map(|t| Duration::from_secs(t.as_secs().max(1))),
            maglev: self.maglev,
        }
    }

    /// Number of ready backends (in normalized form they come first).
    pub(crate) fn ready_count(&self) -> usize {
        self.backends
            .iter()
            .filter(|b| b.class() == Some(BackendClass::Ready))
            .count()
    }
}

/// A service as installed in the maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstalledService {
    /// Stable for the life of the service; indexes the counters.
    pub id: u32,
    /// Normalized spec.
    pub spec: ServiceSpec,
}

/// Per-service counters, summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServiceCounters {
    /// connect() calls translated (TCP, and connected UDP).
    pub connections: u64,
    /// Unconnected UDP sendmsg() calls translated.
    pub datagrams: u64,
    /// Calls refused with ECONNREFUSED for lack of a backend.
    pub refused: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalized_keeps_ready_first_then_terminating_serving_and_drops_the_rest() {
        let ip = |n| Ipv4Addr::new(10, 0, 0, n);
        let spec = ServiceSpec {
            backends: vec![
                Backend::terminating(ip(1), 80),
                Backend::ready(ip(3), 80),
                Backend {
                    ready: false,
                    serving: false,
                    terminating: true,
                    ..Backend::ready(ip(4), 80)
                },
                Backend::ready(ip(2), 80),
                Backend::ready(ip(2), 80),
            ],
            affinity_timeout: Some(Duration::from_millis(10)),
            maglev: false,
        };
        let n = spec.normalized();
        let addrs: Vec<_> = n.backends.iter().map(|b| b.ip).collect();
        assert_eq!(addrs, vec![ip(2), ip(3), ip(1)]);
        assert_eq!(n.ready_count(), 2);
        assert_eq!(n.affinity_timeout, Some(Duration::from_secs(1)));
        assert_eq!(n.normalized(), n);
    }
}
