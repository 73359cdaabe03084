//! `metrics.k8s.io/v1beta1` as metrics-server serves it: NodeMetrics (`/nodes`, `/nodes/{name}`)
//! and PodMetrics (`/pods`, `/namespaces/{ns}/pods`, `/namespaces/{ns}/pods/{name}`), get and
//! list with label selectors on the Nodes' and Pods' labels, computed from the window. CPU is
//! given in nanocores, memory in bytes (Ki when whole). Only administrators may read them.
//! Also the group's discovery entries.

use http::{Method, Response};
use serde_json::{json, Value};

use super::window::Usage;
use crate::api::query::Query;
use crate::api::ApiState;
use crate::authn::Identity;
use crate::http_util::{ok_json, ResponseBody};
use crate::status::ApiError;
use crate::store::ListOptions;

pub const GROUP: &str = "metrics.k8s.io";
pub const VERSION: &str = "v1beta1";

/// The group's resources: (plural, singular, kind, namespaced).
pub const RESOURCES: &[(&str, &str, &str, bool)] = &[
    ("nodes", "", "NodeMetrics", false),
    ("pods", "", "PodMetrics", true),
];

/// Answers `/apis/metrics.k8s.io/v1beta1/...`; None for other paths.
pub async fn handle(
    state: &ApiState,
    identity: &Identity,
    method: &Method,
    path: &str,
    query: &str,
) -> Option<Response<ResponseBody>> {
    let rest = path.strip_prefix("/apis/metrics.k8s.io/v1beta1/")?;
    let segments: Vec<&str> = rest.trim_end_matches('/').split('/').collect();
    let target = match segments[..] {
        ["nodes"] => (None, "nodes", None),
        ["nodes", name] => (None, "nodes", Some(name)),
        ["pods"] => (None, "pods", None),
        ["namespaces", ns, "pods"] => (Some(ns), "pods", None),
        ["namespaces", ns, "pods", name] => (Some(ns), "pods", Some(name)),
        _ => return None,
    };
    let result = if method != Method::GET {
        Err(ApiError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!("the server does not allow this method on the requested resource ({method})"),
        ))
    } else if !identity.is_admin() {
        Err(ApiError::forbidden(format!(
            "{} \"{}\" is forbidden: User \"{}\" cannot get resource \"{}\" in API group \"metrics.k8s.io\"",
            target.1,
            target.2.unwrap_or_default(),
            identity.user,
            target.1
        )))
    } else {
        answer(state, target.0, target.1, target.2, query).await
    };
    Some(result.unwrap_or_else(|e| e.into_response()))
}

async fn answer(
    state: &ApiState,
    namespace: Option<&str>,
    plural: &str,
    name: Option<&str>,
    query: &str,
) -> Result<Response<ResponseBody>, ApiError> {
    let source = crate::kinds::find("", "v1", plural)
        .ok_or_else(|| ApiError::internal(format!("{plural} are not served")))?;
    let q = Query::parse(query, source)?;
    let mut prefix = source.key_prefix();
    if let Some(ns) = namespace {
        prefix.push_str(ns);
        prefix.push('/');
    }
    if let Some(n) = name {
        prefix.push_str(n);
    }
    let page = state
        .store
        .list(&prefix, &ListOptions::default())
        .await
        .map_err(|e| ApiError::internal(e.to_string()))?;
    let objects = page
        .items
        .iter()
        .filter_map(|kv| serde_json::from_slice::<Value>(&kv.value).ok())
        .filter(|o| name.is_none_or(|n| o["metadata"]["name"] == n))
        .filter(|o| q.labels.matches(o) && q.fields.matches(o));
    let window = state.metrics.lock();
    let items: Vec<Value> = objects
        .filter_map(|o| {
            let meta = &o["metadata"];
            let n = meta["name"].as_str()?;
            match plural {
                "nodes" => window.node(n).map(|u| node_metrics(meta, &u)),
                _ => {
                    let ns = meta["namespace"].as_str()?;
                    window.pod(ns, n).map(|u| pod_metrics(meta, &u))
                }
            }
        })
        .collect();
    drop(window);
    let kind = if plural == "nodes" {
        "NodeMetrics"
    } else {
        "PodMetrics"
    };
    if let Some(n) = name {
        return match items.into_iter().next() {
            Some(item) => Ok(ok_json(&item)),
            None => Err(ApiError::not_found(GROUP, plural, n)),
        };
    }
    Ok(ok_json(&json!({
        "kind": format!("{kind}List"),
        "apiVersion": "metrics.k8s.io/v1beta1",
        "metadata": {},
        "items": items,
    })))
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// CPU in nanocores.
pub fn cpu_quantity(cores: f64) -> String {
    format!("{}n", (cores * 1e9).round() as u64)
}

/// Memory in bytes (Ki when whole, as Kubernetes' BinarySI canonical form).
pub fn memory_quantity(bytes: u64) -> String {
    if bytes.is_multiple_of(1024) && bytes > 0 {
        format!("{}Ki", bytes / 1024)
    } else {
        bytes.to_string()
    }
}

fn window(ms: i64) -> String {
    format!("{}s", ms as f64 / 1000.0)
}

fn object_meta(meta: &Value, at_ms: i64) -> Value {
    let mut out = json!({"name": meta["name"], "creationTimestamp": rfc3339(at_ms)});
    if !meta["namespace"].is_null() {
        out["namespace"] = meta["namespace"].clone();
    }
    if !meta["labels"].is_null() {
        out["labels"] = meta["labels"].clone();
    }
    out
}

fn node_metrics(meta: &Value, u: &Usage) -> Value {
    json!({
        "metadata": object_meta(meta, super::now_ms()),
        "timestamp": rfc3339(u.at_ms),
        "window": window(u.window_ms),
        "usage": {"cpu": cpu_quantity(u.cpu_cores), "memory": memory_quantity(u.memory_bytes)},
    })
}

fn pod_metrics(meta: &Value, u: &super::window::PodUsage) -> Value {
    let first = u.values().next().copied();
    let containers: Vec<Value> = u
        .iter()
        .map(|(name, c)| {
            json!({"name": name, "usage": {
                "cpu": cpu_quantity(c.cpu_cores),
                "memory": memory_quantity(c.memory_bytes),
            }})
        })
        .collect();
    json!({
        "metadata": object_meta(meta, super::now_ms()),
        "timestamp": rfc3339(first.map_or(0, |f| f.at_ms)),
        "window": window(first.map_or(0, |f| f.window_ms)),
        "containers": containers,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_kubernetes_canonical() {
        assert_eq!(cpu_quantity(0.25), "250000000n");
        assert_eq!(memory_quantity(4096), "4Ki");
        assert_eq!(memory_quantity(1000), "1000");
        assert_eq!(window(10_500), "10.5s");
    }
}
