//! Posts the pod events of `pod_events` as core/v1 Events, the way kubelet's event recorder
//! writes them (`<pod>.<hex time>` names, source `kubelet` on this node, the container's field
//! path). Best effort: a failed post is logged and dropped, never retried into a storm.

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, PostParams};
use serde_json::json;

use super::now_rfc3339;
use super::pod_events::PodEvent;

/// The pod an event is about.
#[derive(Debug, Clone)]
pub struct PodRef {
    pub namespace: String,
    pub name: String,
    pub uid: String,
}

/// Posts `events` about `pod`, reported by node `node`, in order.
pub async fn post(client: kube::Client, node: String, pod: PodRef, events: Vec<PodEvent>) {
    let api: Api<Event> = Api::namespaced(client, &pod.namespace);
    for e in events {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0);
        let now = now_rfc3339();
        let value = json!({
            "metadata": {"name": format!("{}.{nanos:x}", pod.name), "namespace": pod.namespace},
            "involvedObject": {
                "apiVersion": "v1",
                "kind": "Pod",
                "name": pod.name,
                "namespace": pod.namespace,
                "uid": pod.uid,
                "fieldPath": (!e.field_path.is_empty()).then_some(&e.field_path),
            },
            "reason": e.reason,
            "message": e.message,
            "type": e.kind.as_str(),
            "source": {"component": "kubelet", "host": node},
            "reportingComponent": "kubelet",
            "reportingInstance": node,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "eventTime": null,
            "count": 1,
        });
        let event: Event = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(err) => {
                tracing::warn!(error = %err, "building an event");
                continue;
            }
        };
        if let Err(err) = api.create(&PostParams::default(), &event).await {
            tracing::debug!(pod = %pod.name, reason = e.reason, error = %err, "posting an event");
        }
    }
}
