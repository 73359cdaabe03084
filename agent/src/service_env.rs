//! The Service environment variables kubelet gives every container: those of the `kubernetes`
//! Service of `default` always (`KUBERNETES_SERVICE_HOST`, `KUBERNETES_SERVICE_PORT`,
//! `KUBERNETES_SERVICE_PORT_HTTPS`, `KUBERNETES_PORT`, `KUBERNETES_PORT_443_TCP*`), and with
//! `enableServiceLinks` (the default) the same for every Service of the pod's namespace
//! (kubelet's `getServiceEnvVarMap` and `envvars.FromServices`). Services without a ClusterIP
//! (headless, ExternalName) give none. A [`ServiceSource`] answers from the cluster's Services
//! (the cluster module watches them); standalone agents have none, and their containers get no
//! such variables, as a kubelet without an API server. Pure but for the trait.

use std::sync::Arc;

/// One Service as the variables need it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvService {
    pub namespace: String,
    pub name: String,
    /// Empty or `None` (headless): no variables.
    pub cluster_ip: String,
    pub ports: Vec<EnvPort>,
}

/// One port of a Service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvPort {
    /// Empty when unnamed.
    pub name: String,
    pub port: i32,
    /// `TCP`, `UDP` or `SCTP`.
    pub protocol: String,
}

/// The cluster's Services, for containers' environments.
pub trait ServiceSource: Send + Sync {
    /// Every Service, or `None` until they have been listed once.
    fn services(&self) -> Option<Arc<Vec<EnvService>>>;
}

/// kubelet's text when the Services were never listed (the container waits in
/// `CreateContainerConfigError`).
pub const NOT_LISTED: &str =
    "services have not yet been read at least once, cannot construct envvars";

/// The Service variables of a pod in `namespace`, sorted by name.
pub fn service_env(
    services: &[EnvService],
    namespace: &str,
    enable_service_links: bool,
) -> Vec<(String, String)> {
    let mut chosen: std::collections::BTreeMap<&str, &EnvService> = Default::default();
    for s in services
        .iter()
        .filter(|s| !s.cluster_ip.is_empty() && s.cluster_ip != "None" && !s.ports.is_empty())
    {
        // The master service of `default` always, and first; the namespace's with links.
        if s.namespace == "default" && s.name == "kubernetes" {
            chosen.insert(&s.name, s);
        } else if s.namespace == namespace && enable_service_links {
            chosen.entry(&s.name).or_insert(s);
        }
    }
    let mut out = Vec::new();
    for s in chosen.values() {
        out.extend(variables(s));
    }
    out.sort();
    out
}

/// `FOO-BAR` → `FOO_BAR`, upper case.
fn env_name(name: &str) -> String {
    name.replace('-', "_").to_uppercase()
}

fn variables(s: &EnvService) -> Vec<(String, String)> {
    let prefix = env_name(&s.name);
    let ip = &s.cluster_ip;
    let mut out = vec![(format!("{prefix}_SERVICE_HOST"), ip.clone())];
    let first = &s.ports[0];
    out.push((format!("{prefix}_SERVICE_PORT"), first.port.to_string()));
    for p in s.ports.iter().filter(|p| !p.name.is_empty()) {
        let name = format!("{prefix}_SERVICE_PORT_{}", env_name(&p.name));
        out.push((name, p.port.to_string()));
    }
    let host_port = |port: i32| {
        if ip.contains(':') {
            format!("[{ip}]:{port}")
        } else {
            format!("{ip}:{port}")
        }
    };
    for (i, p) in s.ports.iter().enumerate() {
        let protocol = if p.protocol.is_empty() {
            "TCP"
        } else {
            p.protocol.as_str()
        };
        let lower = protocol.to_lowercase();
        let url = format!("{lower}://{}", host_port(p.port));
        if i == 0 {
            out.push((format!("{prefix}_PORT"), url.clone()));
        }
        let port_prefix = format!("{prefix}_PORT_{}_{}", p.port, protocol.to_uppercase());
        out.push((format!("{port_prefix}_PROTO"), lower));
        out.push((format!("{port_prefix}_PORT"), p.port.to_string()));
        out.push((format!("{port_prefix}_ADDR"), ip.clone()));
        out.push((port_prefix, url));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn service(ns: &str, name: &str, ip: &str, ports: &[(&str, i32, &str)]) -> EnvService {
        EnvService {
            namespace: ns.into(),
            name: name.into(),
            cluster_ip: ip.into(),
            ports: ports
                .iter()
                .map(|(n, p, proto)| EnvPort {
                    name: (*n).into(),
                    port: *p,
                    protocol: (*proto).into(),
                })
                .collect(),
        }
    }

    fn get<'a>(vars: &'a [(String, String)], name: &str) -> Option<&'a str> {
        vars.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    #[test]
    fn the_kubernetes_service_is_always_there_and_links_follow_the_flag() {
        let services = [
            service(
                "default",
                "kubernetes",
                "10.96.0.1",
                &[("https", 443, "TCP")],
            ),
            service(
                "team",
                "my-db",
                "10.96.0.9",
                &[("", 5432, "TCP"), ("metrics", 9187, "UDP")],
            ),
            service("team", "headless", "None", &[("", 80, "TCP")]),
            service("other", "web", "10.96.0.7", &[("", 80, "TCP")]),
        ];
        let vars = service_env(&services, "team", false);
        let want = [
            ("KUBERNETES_PORT", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP", "tcp://10.96.0.1:443"),
            ("KUBERNETES_PORT_443_TCP_ADDR", "10.96.0.1"),
            ("KUBERNETES_PORT_443_TCP_PORT", "443"),
            ("KUBERNETES_PORT_443_TCP_PROTO", "tcp"),
            ("KUBERNETES_SERVICE_HOST", "10.96.0.1"),
            ("KUBERNETES_SERVICE_PORT", "443"),
            ("KUBERNETES_SERVICE_PORT_HTTPS", "443"),
        ];
        let want: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        assert_eq!(vars, want);
        let vars = service_env(&services, "team", true);
        assert_eq!(get(&vars, "MY_DB_SERVICE_HOST"), Some("10.96.0.9"));
        assert_eq!(get(&vars, "MY_DB_SERVICE_PORT"), Some("5432"));
        assert_eq!(get(&vars, "MY_DB_SERVICE_PORT_METRICS"), Some("9187"));
        assert_eq!(get(&vars, "MY_DB_PORT"), Some("tcp://10.96.0.9:5432"));
        assert_eq!(
            get(&vars, "MY_DB_PORT_9187_UDP"),
            Some("udp://10.96.0.9:9187")
        );
        assert_eq!(get(&vars, "MY_DB_PORT_9187_UDP_PROTO"), Some("udp"));
        assert_eq!(get(&vars, "HEADLESS_SERVICE_HOST"), None);
        assert_eq!(get(&vars, "WEB_SERVICE_HOST"), None);
        // In `default`, its own `kubernetes` Service is the master one, once.
        let vars = service_env(&services, "default", true);
        assert_eq!(
            vars.iter()
                .filter(|(k, _)| k == "KUBERNETES_SERVICE_HOST")
                .count(),
            1
        );
    }
}
