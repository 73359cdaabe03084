//! Posts the pod events of `pod_events`, and the node's own events (`crate::node_events`), as
//! core/v1 Events, the way kubelet's event recorder writes them (`<object>.<hex time>` names,
//! source `kubelet` on this node, the container's field path). Best effort: a failed post is
//! logged and dropped, never retried into a storm.
//!
//! Like kubelet's event correlator, an event told again about the same object (same
//! container, type, reason and message) within [`REPEAT_WINDOW`] of its last telling is
//! counted on the Event already posted — its `count` and `lastTimestamp` patched — so
//! `kubectl describe` prints `Unhealthy 5s (x3 over 25s)` rather than three lines. And like
//! its spam filter, each object's writes (posts and counts) draw on a bucket of
//! [`SPAM_BURST`] refilled one per [`SPAM_REFILL`]: a probe failing every second on many pods
//! cannot flood the API with events.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Event;
use kube::api::{Api, Patch, PatchParams, PostParams};
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
            times: e.times,
        };
        let about = About {
            api: &api,
            node: &node,
            object: &pod.name,
            namespace: &pod.namespace,
            involved,
        };
        create(&about, &what).await;
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
        times: 1,
    };
    let about = About {
        api,
        node,
        object: node,
        namespace: "default",
        involved,
    };
    create(&about, &what).await;
}

/// What an event says, and how many times it happened.
struct Recorded<'a> {
    reason: &'a str,
    message: &'a str,
    kind: &'a str,
    times: u32,
}

/// How long after its last telling an Event is counted on rather than posted anew: kube's
/// default `--event-ttl`, after which the Event is gone.
const REPEAT_WINDOW: Duration = Duration::from_secs(3600);
/// The most Events remembered for counting (client-go's correlator keeps 4096).
const TOLD_KEPT: usize = 4096;

/// client-go's EventSourceObjectSpamFilter: a burst of 25 writes per object, then one per
/// 5 minutes.
const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);

/// An object's bucket of event writes.
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    /// Takes one write from the bucket, refilled for the time since the last: whether there
    /// was one.
    fn take(&mut self, now: Instant) -> bool {
        let refill = now.duration_since(self.at).as_secs_f64() / SPAM_REFILL.as_secs_f64();
        self.tokens = (self.tokens + refill).min(SPAM_BURST);
        self.at = now;
        if self.tokens < 1.0 {
            return false;
        }
        self.tokens -= 1.0;
        true
    }
}

/// An Event posted, for counting its repeats.
struct Told {
    name: String,
    count: u32,
    last: Instant,
}

/// What this agent remembers of the Events it wrote.
#[derive(Default)]
struct Memory {
    /// The Events posted, by what they say about which object.
    told: HashMap<String, Told>,
    /// Each object's bucket of writes.
    buckets: HashMap<String, Bucket>,
}

static MEMORY: Mutex<Option<Memory>> = Mutex::new(None);

fn with_memory<T>(f: impl FnOnce(&mut Memory) -> T) -> T {
    let mut memory = MEMORY.lock().unwrap_or_else(PoisonError::into_inner);
    f(memory.get_or_insert_with(Memory::default))
}

/// Whether object `object_key` may have one more event write now (see [`Bucket`]).
fn allowed(object_key: &str) -> bool {
    let now = Instant::now();
    with_memory(|memory| {
        if memory.buckets.len() >= TOLD_KEPT && !memory.buckets.contains_key(object_key) {
            // Full buckets hold nothing back: forget those.
            memory.buckets.retain(|_, b| {
                b.tokens + now.duration_since(b.at).as_secs_f64() / SPAM_REFILL.as_secs_f64()
                    < SPAM_BURST
            });
            if memory.buckets.len() >= TOLD_KEPT {
                memory.buckets.clear();
            }
        }
        let bucket = memory
            .buckets
            .entry(object_key.to_owned())
            .or_insert(Bucket {
                tokens: SPAM_BURST,
                at: now,
            });
        bucket.take(now)
    })
}

/// What an event is about and where it goes: `involved`, object `object` in `namespace`,
/// reported by node `node`.
struct About<'a> {
    api: &'a Api<Event>,
    node: &'a str,
    object: &'a str,
    namespace: &'a str,
    involved: serde_json::Value,
}

/// Posts an event as kubelet's recorder does: counted on the Event posted for its last
/// telling when that is recent ([`REPEAT_WINDOW`]), else created.
async fn create(about: &About<'_>, what: &Recorded<'_>) {
    let About {
        api,
        object,
        namespace,
        involved,
        ..
    } = about;
    let object_key = format!("{namespace}\0{involved}");
    if !allowed(&object_key) {
        tracing::debug!(
            object,
            reason = what.reason,
            "event dropped: too many about the object"
        );
        return;
    }
    let key = format!(
        "{object_key}\0{}\0{}\0{}",
        what.kind, what.reason, what.message
    );
    let earlier = with_memory(|memory| {
        memory
            .told
            .get(&key)
            .filter(|t| t.last.elapsed() < REPEAT_WINDOW)
            .map(|t| (t.name.clone(), t.count))
    });
    let name = match earlier {
        Some((name, count)) => {
            let count = count.saturating_add(what.times);
            let patch = json!({"count": count, "lastTimestamp": now_rfc3339()});
            match api
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => Some((name, count)),
                // Gone (its TTL ran out, or deleted): post it anew.
                Err(kube::Error::Api(status)) if status.code == 404 => post_new(about, what).await,
                Err(err) => {
                    tracing::debug!(object, reason = what.reason, error = %err, "counting an event");
                    None
                }
            }
        }
        None => post_new(about, what).await,
    };
    if let Some((name, count)) = name {
        with_memory(|Memory { told, .. }| {
            if told.len() >= TOLD_KEPT {
                told.retain(|_, t| t.last.elapsed() < REPEAT_WINDOW);
                if told.len() >= TOLD_KEPT {
                    told.clear();
                }
            }
            let last = Instant::now();
            told.insert(key, Told { name, count, last });
        });
    }
}

/// Creates the Event kubelet's recorder writes (named `<object>.<hex nanoseconds>`): its name
/// and count, or `None` when the post failed (logged and dropped).
async fn post_new(about: &About<'_>, what: &Recorded<'_>) -> Option<(String, u32)> {
    let About {
        api,
        node,
        object,
        namespace,
        involved,
    } = about;
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let now = now_rfc3339();
    let name = format!("{object}.{nanos:x}");
    let count = what.times.max(1);
    let value = json!({
        "metadata": {"name": name, "namespace": namespace},
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
        "count": count,
    });
    let event: Event = match serde_json::from_value(value) {
        Ok(e) => e,
        Err(err) => {
            tracing::warn!(error = %err, "building an event");
            return None;
        }
    };
    match api.create(&PostParams::default(), &event).await {
        Ok(_) => Some((name, count)),
        Err(err) => {
            tracing::debug!(object, reason = what.reason, error = %err, "posting an event");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_object_gets_a_burst_of_writes_then_one_per_refill() {
        let start = Instant::now();
        let mut bucket = Bucket {
            tokens: SPAM_BURST,
            at: start,
        };
        let burst = (0..40).filter(|_| bucket.take(start)).count();
        assert_eq!(burst, 25);
        assert!(
            !bucket.take(start + SPAM_REFILL / 2),
            "half a refill is none"
        );
        assert!(
            bucket.take(start + SPAM_REFILL),
            "a whole refill is one write"
        );
        assert!(!bucket.take(start + SPAM_REFILL));
        let later = start + SPAM_REFILL * 100;
        assert_eq!(
            (0..40).filter(|_| bucket.take(later)).count(),
            25,
            "refilled, capped"
        );
    }
}
