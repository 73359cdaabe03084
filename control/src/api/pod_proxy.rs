//! `pods/{name}/proxy/{path}` and `services/{name}/proxy/{path}` (kube-apiserver's `ProxyREST`
//! of pods and services): an HTTP request to a pod's port — what `kubectl proxy` users and
//! `kubectl cluster-info`'s links reach. kube-apiserver dials the pod IP itself; this server
//! has no route into the nodes' pod networks, so the request goes to the pod's node's agent
//! (`/podProxy/{ns}/{pod}/{port}/{path}` on its kubelet API), which makes the last hop inside
//! the pod's network namespace, and the answer streams back.
//!
//! Names are kube's `[scheme:]name[:port]`. A pod's port is a number, by default its first
//! container port (else 80). A Service's port is a port name or number of the Service (none:
//! its one unnamed port), and an endpoint of that port is picked at random from the Service's
//! Endpoints (a ready address backed by a pod): 503 `no endpoints available for service "web"`
//! when there is none. Only `http` is proxied: an `https:` name is refused, saying so.

use http::{Response, StatusCode};
use serde_json::Value;

use super::node_proxy::{proxied_path, relay, ProxyRequest};
use super::pod_log::read_node;
use super::Call;
use crate::http_util::ResponseBody;
use crate::status::ApiError;

/// A pod and the port of it a request goes to.
#[derive(Debug, PartialEq, Eq)]
struct PodPort {
    pod: String,
    port: u16,
}

/// `name`, `name:port`, `http:name:port` as (name, port); `https` refused.
fn split(name: &str) -> Result<(&str, Option<&str>), ApiError> {
    let (scheme, rest) = match name.split_once(':') {
        Some((scheme @ ("http" | "https"), rest)) => (Some(scheme), rest),
        _ => (None, name),
    };
    if scheme == Some("https") {
        return Err(ApiError::bad_request(format!(
            "bosun proxies to pods over http only, not https ({name:?})"
        )));
    }
    let (object, port) = match rest.split_once(':') {
        Some((object, port)) => (object, Some(port).filter(|p| !p.is_empty())),
        None => (rest, None),
    };
    if object.is_empty() {
        return Err(ApiError::bad_request(format!("no name in {name:?}")));
    }
    Ok((object, port))
}

fn service_unavailable(message: String) -> ApiError {
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ServiceUnavailable",
        message,
    )
}

/// The stored `plural` (core v1) named `name` in the request's namespace, or 404.
async fn read(call: &Call, plural: &str, name: &str) -> Result<Value, ApiError> {
    super::get::read_core(call, plural, call.path.namespace.as_deref(), name).await
}

/// The port of a pod proxy request: the name's, else the first container port, else 80.
fn pod_port(pod: &Value, port: Option<&str>) -> Result<u16, ApiError> {
    match port {
        Some(port) => port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| ApiError::bad_request(format!("invalid port {port:?}"))),
        None => Ok(pod["spec"]["containers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["ports"][0]["containerPort"].as_u64())
            .find_map(|p| u16::try_from(p).ok())
            .unwrap_or(80)),
    }
}

/// The Service port name a request's port means: a name as is, a number the name of the
/// Service port with that number.
fn service_port_name(service: &Value, name: &str, port: Option<&str>) -> Result<String, ApiError> {
    let Some(port) = port else {
        return Ok(String::new());
    };
    let Ok(number) = port.parse::<i64>() else {
        return Ok(port.to_owned());
    };
    service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["port"].as_i64() == Some(number))
        .map(|p| p["name"].as_str().unwrap_or("").to_owned())
        .ok_or_else(|| {
            service_unavailable(format!(
                "no service port {number} found for service {name:?}"
            ))
        })
}

/// A ready, pod-backed address of `endpoints` serving the port named `port_name`, picked at
/// random as kube does.
fn pick_endpoint(endpoints: &Value, port_name: &str) -> Option<PodPort> {
    let mut candidates = Vec::new();
    for subset in endpoints["subsets"].as_array().into_iter().flatten() {
        let ports = subset["ports"].as_array().into_iter().flatten();
        let Some(port) = ports
            .filter(|p| p["name"].as_str().unwrap_or("") == port_name)
            .find_map(|p| p["port"].as_u64().and_then(|n| u16::try_from(n).ok()))
        else {
            continue;
        };
        for address in subset["addresses"].as_array().into_iter().flatten() {
            let target = &address["targetRef"];
            if target["kind"] == "Pod" {
                if let Some(pod) = target["name"].as_str() {
                    candidates.push(PodPort {
                        pod: pod.to_owned(),
                        port,
                    });
                }
            }
        }
    }
    if candidates.is_empty() {
        return None;
    }
    let at = fastrand::usize(..candidates.len());
    Some(candidates.swap_remove(at))
}

/// Passes a `pods/` or `services/{name}/proxy` request to the pod's agent, and its answer back.
pub async fn forward(
    call: &Call,
    request: ProxyRequest<'_>,
) -> Result<Response<ResponseBody>, ApiError> {
    let name = call.path.name.clone().unwrap_or_default();
    let (object, port) = split(&name)?;
    let target = match call.resource().kind {
        "Service" => {
            let service = read(call, "services", object).await?;
            let port_name = service_port_name(&service, object, port)?;
            let endpoints = read(call, "endpoints", object).await.ok();
            endpoints
                .as_ref()
                .and_then(|e| pick_endpoint(e, &port_name))
                .ok_or_else(|| {
                    service_unavailable(format!("no endpoints available for service {object:?}"))
                })?
        }
        _ => {
            let pod = read(call, "pods", object).await?;
            PodPort {
                pod: object.to_owned(),
                port: pod_port(&pod, port)?,
            }
        }
    };
    let pod = read(call, "pods", &target.pod).await?;
    let Some(node_name) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) else {
        return Err(ApiError::bad_request(format!(
            "pod {} does not have a host assigned",
            target.pod
        )));
    };
    let node = read_node(call, node_name).await?;
    let types = &call.state.kubelet_address_types;
    let location = crate::kubelet::kubelet_location(&node, types).map_err(ApiError::internal)?;
    let ns = call.path.namespace.as_deref().unwrap_or("default");
    let mut path_and_query = format!(
        "/podProxy/{}/{}/{}{}",
        super::pod_log::escape(ns),
        super::pod_log::escape(&target.pod),
        target.port,
        proxied_path(request.uri_path, &name)
    );
    if !request.raw_query.is_empty() {
        path_and_query = format!("{path_and_query}?{}", request.raw_query);
    }
    relay(call, &location, request, &path_and_query).await
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn names_are_scheme_name_and_port() {
        assert_eq!(split("web").unwrap(), ("web", None));
        assert_eq!(split("web:8080").unwrap(), ("web", Some("8080")));
        assert_eq!(split("http:web:http").unwrap(), ("web", Some("http")));
        assert_eq!(split("web:").unwrap(), ("web", None));
        assert!(split("https:web:443")
            .unwrap_err()
            .message
            .contains("http only"));
        assert!(split(":80").unwrap_err().message.contains("no name"));
    }

    #[test]
    fn a_pods_port_is_the_names_or_its_first_container_port() {
        let pod = json!({"spec": {"containers": [{"name": "a"},
            {"name": "b", "ports": [{"containerPort": 8080}, {"containerPort": 9090}]}]}});
        assert_eq!(pod_port(&pod, Some("81")).unwrap(), 81);
        assert_eq!(pod_port(&pod, None).unwrap(), 8080);
        assert_eq!(pod_port(&json!({"spec": {}}), None).unwrap(), 80);
        assert!(pod_port(&pod, Some("http")).is_err());
    }

    #[test]
    fn a_service_port_number_means_its_name_and_endpoints_are_pods() {
        let service = json!({"spec": {"ports": [{"name": "http", "port": 80},
            {"name": "metrics", "port": 9100}]}});
        assert_eq!(
            service_port_name(&service, "web", Some("80")).unwrap(),
            "http"
        );
        assert_eq!(
            service_port_name(&service, "web", Some("dns")).unwrap(),
            "dns"
        );
        assert_eq!(service_port_name(&service, "web", None).unwrap(), "");
        let missing = service_port_name(&service, "web", Some("81")).unwrap_err();
        assert_eq!(
            missing.message,
            "no service port 81 found for service \"web\""
        );
        let endpoints = json!({"subsets": [{
            "addresses": [{"ip": "10.0.0.9"},
                          {"ip": "10.0.0.5", "targetRef": {"kind": "Pod", "name": "web-1"}}],
            "ports": [{"name": "http", "port": 8080}, {"name": "metrics", "port": 9100}],
        }]});
        let picked = pick_endpoint(&endpoints, "http").unwrap();
        assert_eq!(
            picked,
            PodPort {
                pod: "web-1".into(),
                port: 8080
            }
        );
        assert!(pick_endpoint(&endpoints, "dns").is_none());
        assert!(pick_endpoint(&json!({}), "").is_none());
    }
}
