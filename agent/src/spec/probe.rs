//! Container probes (liveness, readiness, startup): the manifest shape and Kubernetes'
//! defaults, exposed through accessors so an unset field and its default stay distinguishable.
//! It never runs a probe; the pod worker does. What an httpGet probe puts on the wire (path,
//! host, headers) is checked here with the `http` crate's types, so a manifest can never splice
//! a header or a second request into a probe.

use std::str::FromStr;

use http::uri::{Authority, PathAndQuery};
use http::{HeaderName, HeaderValue};
use serde::{Deserialize, Serialize};

use super::error::SpecError;

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

    /// The request target as it goes on the wire (a leading `/` added, as kubelet's URL
    /// building does), or an error at `path` when it holds bytes a request line cannot carry
    /// (spaces, CR/LF, other control characters).
    pub fn request_target(&self) -> Result<PathAndQuery, SpecError> {
        let path = self.path();
        let path = if path.starts_with('/') {
            path.to_string()
        } else {
            format!("/{path}")
        };
        PathAndQuery::from_str(&path).map_err(|e| {
            SpecError::new(
                "path",
                format!("{path:?} is not a valid request target: {e}"),
            )
        })
    }

    /// The `httpHeaders` as typed header fields, or an error at `httpHeaders[i].name` or
    /// `httpHeaders[i].value` for a name that is not an HTTP token or a value with control
    /// characters (CR/LF would start a new header or request).
    pub fn request_headers(&self) -> Result<Vec<(HeaderName, HeaderValue)>, SpecError> {
        let mut out = Vec::with_capacity(self.http_headers.len());
        for (i, h) in self.http_headers.iter().enumerate() {
            let name = HeaderName::from_bytes(h.name.as_bytes()).map_err(|e| {
                let message = format!("{:?} is not a valid HTTP header name: {e}", h.name);
                SpecError::new(format!("httpHeaders[{i}].name"), message)
            })?;
            let value = HeaderValue::from_str(&h.value).map_err(|e| {
                let message = format!("{:?} is not a valid HTTP header value: {e}", h.value);
                SpecError::new(format!("httpHeaders[{i}].value"), message)
            })?;
            out.push((name, value));
        }
        Ok(out)
    }

    /// Checks `host`: an IP address or a host name, without port, user or path (it is
    /// dialed, and written in the `Host` header unless `httpHeaders` sets one).
    pub fn check_host(&self) -> Result<(), SpecError> {
        let Some(host) = self.host.as_deref().filter(|h| !h.is_empty()) else {
            return Ok(());
        };
        if host.parse::<std::net::IpAddr>().is_ok() {
            return Ok(());
        }
        let valid = Authority::from_str(host)
            .is_ok_and(|a| a.as_str() == host && !host.contains([':', '@']));
        if valid {
            Ok(())
        } else {
            let message = format!("{host:?} is not an IP address or a host name");
            Err(SpecError::new("host", message))
        }
    }

    /// Every check of what an httpGet probe puts on the wire; errors are relative to the
    /// `httpGet` field (`path`, `host`, `httpHeaders[1].value`).
    pub fn validate_request(&self) -> Result<(), SpecError> {
        self.request_target()?;
        self.check_host()?;
        self.request_headers().map(drop)
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

    fn http_get(yaml: &str) -> HttpGetAction {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn http_get_request_target_gets_a_leading_slash_and_keeps_the_query() {
        let get = http_get("{port: 80, path: healthz?full=1}");
        assert_eq!(get.request_target().unwrap().as_str(), "/healthz?full=1");
        assert_eq!(http_get("{port: 80}").request_target().unwrap(), "/");
    }

    #[test]
    fn http_get_refuses_crlf_in_path_host_and_headers_naming_the_field() {
        let cases = [
            ("{port: 80, path: \"/a\\r\\nX-Evil: 1\"}", "path"),
            ("{port: 80, path: \"/ok HTTP/1.1\"}", "path"),
            ("{port: 80, host: \"a\\r\\nb\"}", "host"),
            ("{port: 80, host: \"user@evil\"}", "host"),
            (
                "{port: 80, httpHeaders: [{name: X-A, value: b}, {name: X-B, value: \"c\\r\\n\\r\\nGET / HTTP/1.1\"}]}",
                "httpHeaders[1].value",
            ),
            (
                "{port: 80, httpHeaders: [{name: \"X A\", value: b}]}",
                "httpHeaders[0].name",
            ),
            (
                "{port: 80, httpHeaders: [{name: \"X-A\\nY\", value: b}]}",
                "httpHeaders[0].name",
            ),
        ];
        for (yaml, field) in cases {
            let err = http_get(yaml).validate_request().expect_err(yaml);
            assert_eq!(err.field, field, "{yaml}: {err}");
        }
        let fine = http_get(
            "{port: 80, host: example.test, path: /x, httpHeaders: [{name: Host, value: a.test}]}",
        );
        assert_eq!(fine.validate_request(), Ok(()));
        assert_eq!(
            http_get("{port: 80, host: \"::1\"}").validate_request(),
            Ok(())
        );
    }

    #[test]
    fn a_pod_with_a_header_injection_is_refused_with_the_full_field_path() {
        let yaml = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  containers:\n  - name: c\n    image: x\n    readinessProbe:\n      httpGet:\n        port: 80\n        httpHeaders: [{name: X-A, value: b}, {name: X-B, value: \"v\\r\\nX-Injected: 1\"}]\n";
        let err = crate::spec::parse_pod(yaml).expect_err("injection refused");
        assert_eq!(
            err.field, "spec.containers[0].readinessProbe.httpGet.httpHeaders[1].value",
            "{err}"
        );
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
