//! Desired state: (Services, EndpointSlices, this node's pods) → one load-balancer spec per
//! (VIP, port, protocol). Pure functions; a bad Service becomes a [`ServiceError`] naming its
//! field and only that Service (or that port) is left out.

use std::collections::{BTreeMap, BTreeSet};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

use bosun_ebpf::{Backend, Protocol as LbProtocol, ServiceKey, ServiceSpec as LbSpec};
use ipnet::Ipv4Net;

use crate::pod::PodStatus;
use crate::spec::{EndpointSlice, IntOrString, Pod, Protocol, Service, ServicePort, ServiceVips};

/// Annotation selecting Maglev backend selection instead of random (`maglev`).
pub const LB_ANNOTATION: &str = "bosun.dev/load-balancing";

/// A container port of a local pod, for resolving named target ports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedPort {
    pub name: Option<String>,
    pub port: u16,
    pub protocol: Protocol,
}

/// What the dataplane needs to know of one pod on this node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPod {
    pub namespace: String,
    pub name: String,
    pub labels: BTreeMap<String, String>,
    pub ip: Option<Ipv4Addr>,
    pub ready: bool,
    /// Every app container is running (readiness aside).
    pub running: bool,
    /// Being deleted: a ready terminating pod is only a fallback backend.
    pub terminating: bool,
    pub ports: Vec<NamedPort>,
}

impl LocalPod {
    pub fn new(pod: &Pod, status: &PodStatus, terminating: bool) -> LocalPod {
        let ports = pod.spec.containers.iter().flat_map(|c| &c.ports);
        let ports = ports.filter_map(|p| {
            Some(NamedPort {
                name: p.name.clone(),
                port: u16::try_from(p.container_port).ok()?,
                protocol: p.protocol,
            })
        });
        LocalPod {
            namespace: pod.metadata.namespace.clone(),
            name: pod.metadata.name.clone(),
            labels: pod.metadata.labels.clone(),
            ip: status.pod_ip.as_deref().and_then(|ip| ip.parse().ok()),
            ready: status.ready,
            running: !status.container_statuses.is_empty()
                && status
                    .container_statuses
                    .iter()
                    .all(|c| c.state.is_running()),
            terminating,
            ports: ports.collect(),
        }
    }
}

/// The pods as the dataplane sees them during the grace after adopting a running dataplane:
/// an adopted pod is not ready until its readiness probe passes again, but it was serving,
/// so a running pod whose address is installed as a backend (`serving`) counts as ready.
pub fn with_adoption_grace(pods: &[LocalPod], serving: &BTreeSet<Ipv4Addr>) -> Vec<LocalPod> {
    let mut out = pods.to_vec();
    for p in &mut out {
        if p.running && p.ip.is_some_and(|ip| serving.contains(&ip)) {
            p.ready = true;
        }
    }
    out
}

/// (namespace, name) without allocating.
fn name(s: &Service) -> (&str, &str) {
    (&s.metadata.namespace, &s.metadata.name)
}

/// Which Service port a (VIP, port, proto) belongs to; labels for logs and metrics.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceRef {
    pub namespace: String,
    pub name: String,
    /// The Service port's name, empty when unnamed.
    pub port_name: String,
}

/// A manifest object the dataplane could not program, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ServiceError {
    /// `Service` or `EndpointSlice`.
    pub kind: &'static str,
    /// `namespace/name`.
    pub object: String,
    pub field: String,
    pub message: String,
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} {}: {}: {}",
            self.kind, self.object, self.field, self.message
        )
    }
}

/// Bounds the input is checked against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--service-cidr`: every ClusterIP must be inside.
    pub service_cidr: Ipv4Net,
    /// Most backends one service may have (the backend map holds two generations).
    pub max_backends: usize,
    /// The cluster DNS address and this node's DNS server: port 53 of the address, UDP and
    /// TCP, goes to the node's own server whatever Service claims it (node-local DNS).
    pub cluster_dns: Option<(Ipv4Addr, SocketAddrV4)>,
}

/// Everything that should be programmed, and what could not be.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct DesiredState {
    pub services: BTreeMap<ServiceKey, (ServiceRef, LbSpec)>,
    pub errors: Vec<ServiceError>,
}

/// Computes the desired state. Services are taken in (namespace, name) order, so when two
/// claim the same (VIP, port, protocol) the first keeps it and the second gets the error.
pub fn desired_state(
    services: &[Service],
    slices: &[EndpointSlice],
    pods: &[LocalPod],
    limits: &Limits,
) -> DesiredState {
    let mut out = DesiredState::default();
    let mut ordered: Vec<&Service> = services.iter().collect();
    ordered.sort_by(|a, b| name(a).cmp(&name(b)));
    let mut seen = BTreeSet::new();
    let slices = valid_slices(slices, &mut out.errors);
    for svc in ordered {
        let error = |field: String, message: String| ServiceError {
            kind: "Service",
            object: svc.id(),
            field,
            message,
        };
        if !seen.insert(name(svc)) {
            let msg = "duplicate Service (another manifest has the same namespace/name)";
            out.errors.push(error("metadata.name".into(), msg.into()));
            continue;
        }
        let vips = match svc.validate() {
            Ok(ServiceVips::None) => continue,
            Ok(ServiceVips::Ipv4(vips)) => vips,
            Err(e) => {
                out.errors.push(error(e.field, e.message));
                continue;
            }
        };
        if let Some(vip) = vips.iter().find(|v| !limits.service_cidr.contains(*v)) {
            let msg = format!("{vip} is outside the service CIDR {}", limits.service_cidr);
            out.errors.push(error("spec.clusterIP".into(), msg));
            continue;
        }
        for (i, port) in svc.spec.ports.iter().enumerate() {
            let backends = match svc.selector().filter(|_| !svc.api_endpoints) {
                Some(selector) => pod_backends(svc, selector, port, pods),
                None => slice_backends(svc, port, &slices),
            };
            if backends.len() > limits.max_backends {
                let msg = format!(
                    "{} backends; the maps allow at most {} per service",
                    backends.len(),
                    limits.max_backends
                );
                out.errors.push(error(format!("spec.ports[{i}]"), msg));
                continue;
            }
            let spec = LbSpec {
                backends,
                affinity_timeout: svc
                    .affinity_timeout_seconds()
                    .map(|s| Duration::from_secs(s.into())),
                maglev: svc
                    .metadata
                    .annotations
                    .get(LB_ANNOTATION)
                    .map(String::as_str)
                    == Some("maglev"),
            };
            let owner = ServiceRef {
                namespace: svc.metadata.namespace.clone(),
                name: svc.metadata.name.clone(),
                port_name: port.name.clone().unwrap_or_default(),
            };
            for vip in &vips {
                let key = ServiceKey {
                    ip: *vip,
                    port: port.port as u16,
                    protocol: lb_protocol(port.protocol),
                };
                if let Some((other, _)) = out.services.get(&key) {
                    let msg = format!(
                        "{key} is already used by {}/{}",
                        other.namespace, other.name
                    );
                    out.errors.push(error(format!("spec.ports[{i}].port"), msg));
                    continue;
                }
                out.services.insert(key, (owner.clone(), spec.clone()));
            }
        }
    }
    if let Some((vip, server)) = limits.cluster_dns {
        for (protocol, port_name) in [(LbProtocol::Udp, "dns"), (LbProtocol::Tcp, "dns-tcp")] {
            let key = ServiceKey {
                ip: vip,
                port: 53,
                protocol,
            };
            let owner = out.services.remove(&key).map(|(o, _)| o);
            let owner = owner.unwrap_or_else(|| ServiceRef {
                namespace: "kube-system".into(),
                name: "kube-dns".into(),
                port_name: port_name.into(),
            });
            let spec = LbSpec {
                backends: vec![Backend::ready(*server.ip(), server.port())],
                affinity_timeout: None,
                maglev: false,
            };
            out.services.insert(key, (owner, spec));
        }
    }
    out
}

fn lb_protocol(p: Protocol) -> LbProtocol {
    match p {
        Protocol::Udp => LbProtocol::Udp,
        // SCTP is rejected by validation.
        Protocol::Tcp | Protocol::Sctp => LbProtocol::Tcp,
    }
}

/// Ready pods of the namespace matching the selector; terminating ready pods as fallbacks.
/// With `publishNotReadyAddresses` every matching pod with an IP counts as ready (the
/// endpoints controller's rule).
fn pod_backends(
    svc: &Service,
    selector: &BTreeMap<String, String>,
    port: &ServicePort,
    pods: &[LocalPod],
) -> Vec<Backend> {
    let namespace = svc.metadata.namespace.as_str();
    let publish_all = svc.spec.publish_not_ready_addresses;
    let matches = |p: &&LocalPod| {
        p.namespace == namespace && selector.iter().all(|(k, v)| p.labels.get(k) == Some(v))
    };
    let mut out = Vec::new();
    for pod in pods.iter().filter(matches) {
        let (Some(ip), true) = (pod.ip, pod.ready || publish_all) else {
            continue;
        };
        let Some(target) = target_port(port, pod) else {
            continue;
        };
        out.push(match pod.terminating {
            false => Backend::ready(ip, target),
            true => Backend::terminating(ip, target),
        });
    }
    out
}

/// The pod's port for a Service port: `targetPort` by number, or by the name of one of the
/// pod's container ports with the same protocol (pods without it are not backends).
fn target_port(port: &ServicePort, pod: &LocalPod) -> Option<u16> {
    match &port.target_port {
        None => u16::try_from(port.port).ok(),
        Some(IntOrString::Int(n)) => u16::try_from(*n).ok().filter(|n| *n != 0),
        Some(IntOrString::String(name)) => pod
            .ports
            .iter()
            .find(|p| p.name.as_deref() == Some(name.as_str()) && p.protocol == port.protocol)
            .map(|p| p.port),
    }
}

/// Slices by (namespace, service name).
type SliceIndex<'a> = BTreeMap<(&'a str, &'a str), Vec<&'a EndpointSlice>>;

/// Valid slices indexed by their Service; the invalid ones are reported.
fn valid_slices<'a>(slices: &'a [EndpointSlice], errors: &mut Vec<ServiceError>) -> SliceIndex<'a> {
    let mut out = SliceIndex::new();
    for s in slices {
        match s.validate() {
            Ok(()) => {
                if let Some(svc) = s.service_name() {
                    let key = (s.metadata.namespace.as_str(), svc);
                    out.entry(key).or_default().push(s);
                }
            }
            Err(e) => errors.push(ServiceError {
                kind: "EndpointSlice",
                object: format!("{}/{}", s.metadata.namespace, s.metadata.name),
                field: e.field,
                message: e.message,
            }),
        }
    }
    out
}

/// Endpoints of the Service's slices for one Service port (matched by port name and protocol).
fn slice_backends(svc: &Service, port: &ServicePort, slices: &SliceIndex) -> Vec<Backend> {
    let mut out = Vec::new();
    let name = port.name.as_deref().unwrap_or_default();
    let key = (svc.metadata.namespace.as_str(), svc.metadata.name.as_str());
    for slice in slices.get(&key).into_iter().flatten() {
        let matching = slice
            .ports
            .iter()
            .find(|p| p.name.as_deref().unwrap_or_default() == name && p.protocol == port.protocol);
        let Some(target) = matching
            .and_then(|p| p.port)
            .and_then(|p| u16::try_from(p).ok())
        else {
            continue;
        };
        for e in &slice.endpoints {
            let c = &e.conditions;
            for ip in e.addresses.iter().filter_map(|a| a.parse().ok()) {
                out.push(Backend {
                    ip,
                    port: target,
                    ready: c.ready(),
                    serving: c.serving(),
                    terminating: c.terminating(),
                });
            }
        }
    }
    out
}

#[cfg(test)]
#[path = "desired_tests.rs"]
mod tests;
