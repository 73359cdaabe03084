//! Container probes (liveness, readiness, startup): the manifest shape and Kubernetes'
//! defaults, exposed through accessors so an unset field and its default stay distinguishable.
//! It never runs a probe; the pod worker does.

use serde::{Deserialize, Serialize};

/// A port given by number or by the name of a container port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum IntOrString {
    Int(i32),
    String(String),
}

/// Periods, thresholds and timeouts are read through the accessor methods, which apply the
/// Kubernetes defaults (period 10s, timeout 1s, success 1, failure 3; 0 means unset).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct Probe {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub exec: Option<ExecAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_get: Option<HttpGetAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tcp_socket: Option<TcpSocketAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grpc: Option<GrpcAction>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub initial_delay_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub period_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_seconds: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub success_threshold: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_threshold: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub termination_grace_period_seconds: Option<i64>,
}

/// The one action a valid probe performs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeHandler<'a> {
    Exec(&'a ExecAction),
    HttpGet(&'a HttpGetAction),
    TcpSocket(&'a TcpSocketAction),
    Grpc(&'a GrpcAction),
}

impl Probe {
    /// Every handler that is set; a valid probe has exactly one.
    pub fn handlers(&self) -> Vec<ProbeHandler<'_>> {
        let mut found = Vec::new();
        found.extend(self.exec.as_ref().map(ProbeHandler::Exec));
        found.extend(self.http_get.as_ref().map(ProbeHandler::HttpGet));
        found.extend(self.tcp_socket.as_ref().map(ProbeHandler::TcpSocket));
        found.extend(self.grpc.as_ref().map(ProbeHandler::Grpc));
        found
    }

    /// The probe's action, if exactly one is set.
    pub fn handler(&self) -> Option<ProbeHandler<'_>> {
        match self.handlers().as_slice() {
            [one] => Some(*one),
            _ => None,
        }
    }

    pub fn initial_delay_seconds(&self) -> i32 {
        self.initial_delay_seconds.unwrap_or(0)
    }

    pub fn period_seconds(&self) -> i32 {
        positive_or(self.period_seconds, 10)
    }

    pub fn timeout_seconds(&self) -> i32 {
        positive_or(self.timeout_seconds, 1)
    }

    pub fn success_threshold(&self) -> i32 {
        positive_or(self.success_threshold, 1)
    }

    pub fn failure_threshold(&self) -> i32 {
        positive_or(self.failure_threshold, 3)
    }
}

/// Kubernetes treats 0 as unset for these fields and defaults them.
fn positive_or(value: Option<i32>, default: i32) -> i32 {
    value.filter(|&v| v > 0).unwrap_or(default)
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct ExecAction {
    pub command: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpGetAction {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<UriScheme>,
    #[serde(default)]
    pub http_headers: Vec<HttpHeader>,
}

impl HttpGetAction {
    /// The request path, `/` when unset.
    pub fn path(&self) -> &str {
        match self.path.as_deref() {
            None | Some("") => "/",
            Some(path) => path,
        }
    }

    pub fn scheme(&self) -> UriScheme {
        self.scheme.unwrap_or_default()
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum UriScheme {
    #[default]
    #[serde(rename = "HTTP")]
    Http,
    #[serde(rename = "HTTPS")]
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HttpHeader {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TcpSocketAction {
    pub port: IntOrString,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GrpcAction {
    pub port: i32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_probe_fields_take_kubernetes_defaults() {
        let probe: Probe = serde_yaml::from_str("tcpSocket: {port: 80}").unwrap();
        assert_eq!(probe.initial_delay_seconds(), 0);
        assert_eq!(probe.period_seconds(), 10);
        assert_eq!(probe.timeout_seconds(), 1);
        assert_eq!(probe.success_threshold(), 1);
        assert_eq!(probe.failure_threshold(), 3);
        assert_eq!(probe.termination_grace_period_seconds, None);
        let zeros: Probe = serde_yaml::from_str("periodSeconds: 0\ntimeoutSeconds: 0").unwrap();
        assert_eq!((zeros.period_seconds(), zeros.timeout_seconds()), (10, 1));
    }

    #[test]
    fn http_get_parses_named_ports_headers_and_defaults() {
        let yaml = "httpGet: {port: http, httpHeaders: [{name: X-A, value: b}]}\nperiodSeconds: 5";
        let probe: Probe = serde_yaml::from_str(yaml).unwrap();
        let Some(ProbeHandler::HttpGet(get)) = probe.handler() else {
            panic!("expected httpGet, got {probe:?}");
        };
        assert_eq!(get.port, IntOrString::String("http".into()));
        assert_eq!(get.path(), "/");
        assert_eq!(get.scheme(), UriScheme::Http);
        assert_eq!(get.http_headers[0].name, "X-A");
        assert_eq!(probe.period_seconds(), 5);
    }

    #[test]
    fn handler_is_none_unless_exactly_one_action_is_set() {
        let none = Probe::default();
        assert_eq!(none.handler(), None);
        let two: Probe =
            serde_yaml::from_str("exec: {command: [true]}\ngrpc: {port: 9000}").unwrap();
        assert_eq!(two.handlers().len(), 2);
        assert_eq!(two.handler(), None);
    }

    #[test]
    fn int_or_string_keeps_quoted_numbers_as_strings() {
        let ports: Vec<IntOrString> = serde_yaml::from_str("[8080, \"8080\", web]").unwrap();
        assert_eq!(
            ports,
            [
                IntOrString::Int(8080),
                IntOrString::String("8080".into()),
                IntOrString::String("web".into())
            ]
        );
    }
}
