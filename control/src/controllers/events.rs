//! Events the controllers record (core/v1 Event, as client-go's event recorder writes them),
//! so `kubectl describe` and `kubectl get events` show what a controller did. Recording is best
//! effort: a failed write is logged, never fails the controller's work.

use serde_json::{json, Value};

use super::client::{resource_path, Loopback};
use crate::api::meta;
use crate::kinds;

/// Normal or Warning.
#[derive(Clone, Copy, Debug)]
pub enum EventType {
    Normal,
    Warning,
}

/// Records that `component` did `reason` to `object` (a full object with apiVersion, kind and
/// metadata).
pub async fn record(
    client: &Loopback,
    component: &str,
    object: &Value,
    kind: EventType,
    reason: &str,
    message: &str,
) {
    let Some(events) = kinds::find("", "v1", "events") else {
        return;
    };
    let metadata = &object["metadata"];
    let namespace = metadata["namespace"].as_str().unwrap_or("default");
    let name = metadata["name"].as_str().unwrap_or("");
    let now = meta::now();
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{name}.{nanos:x}"), "namespace": namespace},
        "involvedObject": {
            "apiVersion": object["apiVersion"],
            "kind": object["kind"],
            "name": name,
            "namespace": metadata["namespace"],
            "uid": metadata["uid"],
            "resourceVersion": metadata["resourceVersion"],
        },
        "reason": reason,
        "message": message,
        "type": match kind { EventType::Normal => "Normal", EventType::Warning => "Warning" },
        "source": {"component": component},
        "reportingComponent": component,
        "reportingInstance": "",
        "firstTimestamp": now,
        "lastTimestamp": now,
        "count": 1,
    });
    let path = resource_path(events, Some(namespace), None);
    if let Err(error) = client
        .request(http::Method::POST, &path, "application/json", Some(&event))
        .await
    {
        tracing::debug!(%error, reason, "recording an event");
    }
}
