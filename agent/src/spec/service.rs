//! Kubernetes `v1.Service` and `discovery.k8s.io/v1.EndpointSlice` as the API server writes
//! them, with the validation the dataplane needs (unknown fields and node ports refused, see
//! `unknown`): each error names the field
//! (`spec.ports[1].port`). Validation is separate from parsing so one bad Service never stops
//! the others in its file: the dataplane validates each Service and reports it alone. Pure
//! data; it never decides which backends a service gets.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use serde::{Deserialize, Serialize};

use super::error::SpecError;
use super::pod::{ObjectMeta, Protocol};
use super::probe::IntOrString;
use super::unknown::{refuse_unknown, Kind, UnknownField};

/// `clusterIP: None`: a headless service, never programmed.
pub const HEADLESS: &str = "None";
/// The label tying an EndpointSlice to its Service.
pub const SERVICE_NAME_LABEL: &str = "kubernetes.io/service-name";
/// Kubernetes' default ClientIP affinity timeout (3 hours).
pub const DEFAULT_AFFINITY_TIMEOUT_SECONDS: u32 = 10800;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Service {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    #[serde(default)]
    pub spec: ServiceSpec,
    /// Fields of the manifest these types do not know (set by the parser), refused by
    /// [`Service::validate`] unless ignorable.
    #[serde(skip)]
    pub unknown_fields: Vec<UnknownField>,
    /// From the cluster's API: the endpoints are its EndpointSlices (which cover every node),
    /// selector or not. A manifest's Service with a selector is served by this node's pods.
    #[serde(skip)]
    pub api_endpoints: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServiceSpec {
    /// `ClusterIP` (default), `NodePort`, `LoadBalancer` or `ExternalName`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<String>,
    #[serde(rename = "clusterIP", skip_serializing_if = "Option::is_none")]
    pub cluster_ip: Option<String>,
    #[serde(rename = "clusterIPs", skip_serializing_if = "Vec::is_empty")]
    pub cluster_ips: Vec<String>,
    /// `ExternalName` Services: the name cluster DNS answers with a CNAME to.
    #[serde(rename = "externalName", skip_serializing_if = "Option::is_none")]
    pub external_name: Option<String>,
    /// None or empty: endpoints come from EndpointSlices.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub selector: Option<BTreeMap<String, String>>,
    pub ports: Vec<ServicePort>,
    /// `None` (default) or `ClientIP`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// Every endpoint is published, ready or not: in cluster DNS, and (a manifest's Service
    /// with a selector) as a backend — the API's endpoints controller marks them ready.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub publish_not_ready_addresses: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ServicePort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    pub protocol: Protocol,
    pub port: i32,
    /// Unset: the same as `port`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub target_port: Option<IntOrString>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct SessionAffinityConfig {
    #[serde(rename = "clientIP", skip_serializing_if = "Option::is_none")]
    pub client_ip: Option<ClientIpConfig>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ClientIpConfig {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i64>,
}

/// What a valid Service asks the dataplane for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ServiceVips {
    /// Headless or ExternalName: nothing to program.
    None,
    /// IPv4 ClusterIPs, first the primary.
    Ipv4(Vec<Ipv4Addr>),
}

impl Service {
    /// `namespace/name`, for messages.
    pub fn id(&self) -> String {
        format!("{}/{}", self.metadata.namespace, self.metadata.name)
    }

    /// The selector, if the Service has a non-empty one.
    pub fn selector(&self) -> Option<&BTreeMap<String, String>> {
        self.spec.selector.as_ref().filter(|s| !s.is_empty())
    }

    /// The ClientIP affinity timeout in seconds, when `sessionAffinity: ClientIP`.
    pub fn affinity_timeout_seconds(&self) -> Option<u32> {
        if self.spec.session_affinity.as_deref() != Some("ClientIP") {
            return None;
        }
        let t = self.spec.session_affinity_config.as_ref();
        let t = t.and_then(|c| c.client_ip.as_ref()?.timeout_seconds);
        Some(t.map_or(DEFAULT_AFFINITY_TIMEOUT_SECONDS, |t| {
            t.clamp(1, 86400) as u32
        }))
    }

    /// Checks the fields the dataplane uses and returns the addresses to program.
    pub fn validate(&self) -> Result<ServiceVips, SpecError> {
        let spec = &self.spec;
        if self.metadata.name.is_empty() {
            return Err(SpecError::new("metadata.name", "must be set"));
        }
        refuse_unknown(Kind::Service, &self.unknown_fields)?;
        let type_ = spec.type_.as_deref().unwrap_or("ClusterIP");
        match type_ {
            "ClusterIP" | "ExternalName" => {}
            "NodePort" | "LoadBalancer" => {
                let message = format!(
                    "{type_} is not supported yet (only ClusterIPs are programmed; node ports \
                     come with the tc dataplane)"
                );
                return Err(SpecError::new("spec.type", message));
            }
            _ => {
                let message = format!("unknown type {type_:?}");
                return Err(SpecError::new("spec.type", message));
            }
        }
        match spec.session_affinity.as_deref() {
            None | Some("None") | Some("ClientIP") => {}
            Some(other) => {
                let msg = format!("must be None or ClientIP, got {other:?}");
                return Err(SpecError::new("spec.sessionAffinity", msg));
            }
        }
        let timeout = spec.session_affinity_config.as_ref();
        if let Some(t) = timeout.and_then(|c| c.client_ip.as_ref()?.timeout_seconds) {
            if !(1..=86400).contains(&t) {
                let field = "spec.sessionAffinityConfig.clientIP.timeoutSeconds";
                return Err(SpecError::new(field, format!("{t}: must be 1..86400")));
            }
        }
        for (i, p) in spec.ports.iter().enumerate() {
            validate_port(p).map_err(|e| e.at(&format!("spec.ports[{i}]")))?;
        }
        if type_ == "ExternalName" || spec.cluster_ip.as_deref() == Some(HEADLESS) {
            return Ok(ServiceVips::None);
        }
        let mut vips = Vec::new();
        let given = spec
            .cluster_ip
            .iter()
            .map(|ip| ("spec.clusterIP".to_string(), ip));
        let listed = spec.cluster_ips.iter().enumerate();
        let listed = listed.map(|(i, ip)| (format!("spec.clusterIPs[{i}]"), ip));
        for (field, ip) in given.chain(listed) {
            let vip: Ipv4Addr = ip
                .parse()
                .map_err(|_| SpecError::new(&field, format!("{ip:?} is not an IPv4 address")))?;
            if !vips.contains(&vip) {
                vips.push(vip);
            }
        }
        if vips.is_empty() {
            let msg = "must be set: a standalone agent does not allocate ClusterIPs";
            return Err(SpecError::new("spec.clusterIP", msg));
        }
        Ok(ServiceVips::Ipv4(vips))
    }
}

fn validate_port(p: &ServicePort) -> Result<(), SpecError> {
    if !(1..=65535).contains(&p.port) {
        return Err(SpecError::new(
            "port",
            format!("{}: must be 1..65535", p.port),
        ));
    }
    if p.protocol == Protocol::Sctp {
        return Err(SpecError::new("protocol", "SCTP is not supported"));
    }
    match &p.target_port {
        Some(IntOrString::Int(n)) if !(1..=65535).contains(n) => Err(SpecError::new(
            "targetPort",
            format!("{n}: must be 1..65535"),
        )),
        Some(IntOrString::String(s)) if super::iana_svc_name_error(s).is_some() => {
            let msg = super::iana_svc_name_error(s).unwrap_or_default();
            Err(SpecError::new("targetPort", format!("{s:?}: {msg}")))
        }
        _ => Ok(()),
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EndpointSlice {
    pub api_version: String,
    pub kind: String,
    #[serde(default)]
    pub metadata: ObjectMeta,
    /// `IPv4` is programmed; `IPv6` and `FQDN` slices are ignored.
    pub address_type: String,
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    #[serde(default)]
    pub ports: Vec<EndpointPort>,
    /// Fields of the manifest these types do not know (set by the parser), refused by
    /// [`EndpointSlice::validate`] unless ignorable.
    #[serde(skip)]
    pub unknown_fields: Vec<UnknownField>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Endpoint {
    pub addresses: Vec<String>,
    pub conditions: EndpointConditions,
    /// The pod's `hostname` when its `subdomain` names the Service: cluster DNS answers
    /// `<hostname>.<service>.<namespace>.svc`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// Unset `ready` means ready, unset `serving` follows `ready`, unset `terminating` is false.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointConditions {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ready: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serving: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub terminating: Option<bool>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct EndpointPort {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<i32>,
    pub protocol: Protocol,
}

impl EndpointSlice {
    /// The Service this slice belongs to (`kubernetes.io/service-name`).
    pub fn service_name(&self) -> Option<&str> {
        self.metadata
            .labels
            .get(SERVICE_NAME_LABEL)
            .map(String::as_str)
    }

    /// Checks the fields the dataplane uses: the address type, endpoint addresses and ports.
    pub fn validate(&self) -> Result<(), SpecError> {
        refuse_unknown(Kind::EndpointSlice, &self.unknown_fields)?;
        if self.address_type != "IPv4" {
            let msg = format!("{:?}: only IPv4 slices are programmed", self.address_type);
            return Err(SpecError::new("addressType", msg));
        }
        for (i, e) in self.endpoints.iter().enumerate() {
            for (j, a) in e.addresses.iter().enumerate() {
                if a.parse::<Ipv4Addr>().is_err() {
                    let field = format!("endpoints[{i}].addresses[{j}]");
                    return Err(SpecError::new(
                        field,
                        format!("{a:?} is not an IPv4 address"),
                    ));
                }
            }
        }
        for (i, p) in self.ports.iter().enumerate() {
            if let Some(n) = p.port.filter(|n| !(1..=65535).contains(n)) {
                let field = format!("ports[{i}].port");
                return Err(SpecError::new(field, format!("{n}: must be 1..65535")));
            }
        }
        Ok(())
    }
}

impl EndpointConditions {
    pub fn ready(&self) -> bool {
        self.ready.unwrap_or(true)
    }
    pub fn serving(&self) -> bool {
        self.serving.unwrap_or_else(|| self.ready())
    }
    pub fn terminating(&self) -> bool {
        self.terminating.unwrap_or(false)
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
