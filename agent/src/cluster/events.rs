//! Posts the pod events of `pod_events`, and the node's own events (`crate::node_events`), as
//! core/v1 Events, the way kubelet's event recorder writes them (`<object>.<hex time>` names,
//! source `kubelet` on this node, the container's field path). Best effort: a failed post is
//! logged and dropped, never retried into a storm.

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
        let involved = json!({
            "apiVersion": "v1",
            "kind": "Pod",
            "name": pod.name,
            "namespace": pod.namespace,
            "uid": pod.uid,
            "fieldPath": (!e.field_path.is_empty()).then_some(&e.field_path),
        });
        let what = Recorded {
            reason: e.reason,
            message: &e.message,
            kind: e.kind.as_str(),
        };
        create(&api, &node, &pod.name, &pod.namespace, involved, &what).await;
    }
}

/// Events about the node, as kubelet records them on its `nodeRef`: kind Node, the node's
/// name as its uid too, in namespace `default`.
pub struct ApiNodeEvents {
    pub client: kube::Client,
    pub node: String,
    pub runtime: tokio::runtime::Handle,
}

impl crate::node_events::NodeEvents for ApiNodeEvents {
    fn warning(&self, reason: &'static str, message: String) {
        let (api, node) = (node_events_api(&self.client), self.node.clone());
        self.runtime.spawn(async move {
            post_node(&api, &node, "Warning", reason, &message).await;
        });
    }
}

/// Where kubelet's events about its node go: namespace `default`.
pub fn node_events_api(client: &kube::Client) -> Api<Event> {
    Api::namespaced(client.clone(), "default")
}

/// Posts an event of `kind` (Normal or Warning) about node `node` on its `nodeRef`.
pub async fn post_node(api: &Api<Event>, node: &str, kind: &str, reason: &str, message: &str) {
    let involved = json!({"kind": "Node", "name": node, "uid": node});
    let what = Recorded {
        reason,
        message,
        kind,
    };
    create(api, node, node, "default", involved, &what).await;
}

/// What an event says.
struct Recorded<'a> {
    reason: &'a str,
    message: &'a str,
    kind: &'a str,
}

/// Creates the Event kubelet's recorder writes about `involved` (named
/// `<object>.<hex nanoseconds>`), reported by node `node`; a failure is logged and dropped.
async fn create(
    api: &Api<Event>,
    node: &str,
    object: &str,
    namespace: &str,
    involved: serde_json::Value,
    what: &Recorded<'_>,
) {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let now = now_rfc3339();
    let value = json!({
        "metadata": {"name": format!("{object}.{nanos:x}"), "namespace": namespace},
        "involvedObject": involved,
        "reason": what.reason,
        "message": what.message,
        "type": what.kind,
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
            return;
        }
    };
    if let Err(err) = api.create(&PostParams::default(), &event).await {
        tracing::debug!(object, reason = what.reason, error = %err, "posting an event");
    }
}
