//! A Node's kubelet location: the first of its `status.addresses` by the preferred address
//! types, and `status.daemonEndpoints.kubeletEndpoint.Port`. Pure.
//!
//! kube-apiserver's default order starts with `Hostname`, which needs a resolver; ours starts
//! with `InternalIP` (kubeadm's choice), so dialling a node never sends a DNS query out.

use serde_json::Value;

/// The address types known to Kubernetes.
pub const KNOWN: &[&str] = &[
    "Hostname",
    "InternalDNS",
    "InternalIP",
    "ExternalDNS",
    "ExternalIP",
];

/// Our default `--kubelet-preferred-address-types`.
pub const DEFAULT: &str = "InternalIP,ExternalIP,Hostname,InternalDNS,ExternalDNS";

/// An ordered list of address types.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AddressTypes(pub Vec<String>);

impl Default for AddressTypes {
    fn default() -> Self {
        AddressTypes::parse(DEFAULT).unwrap_or(AddressTypes(Vec::new()))
    }
}

impl AddressTypes {
    /// Parses a comma-separated list; an unknown type is refused by name.
    pub fn parse(text: &str) -> Result<AddressTypes, String> {
        let mut out = Vec::new();
        for t in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            if !KNOWN.contains(&t) {
                return Err(format!(
                    "unknown address type {t:?} (known: {})",
                    KNOWN.join(", ")
                ));
            }
            out.push(t.to_owned());
        }
        if out.is_empty() {
            return Err("no address type given".to_owned());
        }
        Ok(AddressTypes(out))
    }
}

/// `host:port` of the kubelet of `node`, or why there is none (kube-apiserver's words).
pub fn kubelet_location(node: &Value, types: &AddressTypes) -> Result<String, String> {
    let name = node["metadata"]["name"].as_str().unwrap_or_default();
    let addresses = node["status"]["addresses"].as_array();
    let host = types.0.iter().find_map(|t| {
        addresses?
            .iter()
            .find(|a| a["type"] == t.as_str())
            .and_then(|a| a["address"].as_str())
            .filter(|a| !a.is_empty())
    });
    let Some(host) = host else {
        return Err(format!(
            "no preferred addresses found; known addresses: {}",
            serde_json::to_string(&node["status"]["addresses"]).unwrap_or_default()
        ));
    };
    let port = node["status"]["daemonEndpoints"]["kubeletEndpoint"]["Port"]
        .as_u64()
        .filter(|p| (1..=65535).contains(p));
    let Some(port) = port else {
        return Err(format!(
            "node {name} reports no kubelet port (status.daemonEndpoints)"
        ));
    };
    Ok(match host.contains(':') {
        true => format!("[{host}]:{port}"),
        false => format!("{host}:{port}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn node(port: u64) -> Value {
        json!({"metadata": {"name": "n1"}, "status": {
            "addresses": [
                {"type": "Hostname", "address": "n1"},
                {"type": "InternalIP", "address": "192.168.254.1"},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": port}},
        }})
    }

    #[test]
    fn the_first_preferred_type_and_the_reported_port_are_used() {
        let types = AddressTypes::default();
        assert_eq!(
            kubelet_location(&node(10250), &types).expect("found"),
            "192.168.254.1:10250"
        );
        let hostname = AddressTypes::parse("Hostname,InternalIP").expect("valid");
        assert_eq!(
            kubelet_location(&node(10250), &hostname).expect("found"),
            "n1:10250"
        );
        let err = kubelet_location(&node(0), &types).expect_err("no port");
        assert!(err.contains("no kubelet port"), "{err}");
        let external = AddressTypes::parse("ExternalIP").expect("valid");
        assert!(kubelet_location(&node(10250), &external).is_err());
    }

    #[test]
    fn unknown_address_types_are_refused() {
        assert!(AddressTypes::parse("InternalIP,Bogus")
            .expect_err("bogus")
            .contains("Bogus"));
    }
}
