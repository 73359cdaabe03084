//! What the workload controllers share about pods: the controller reference, whether a pod
//! still counts, since when it is ready, the order scale-down deletes in, and adopting or
//! releasing a pod (a merge patch of its ownerReferences, conditional on its resourceVersion
//! so a concurrent change is never overwritten).

use std::cmp::Reverse;

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::client::{revision_of, ClientError, Loopback};
use crate::kinds;

/// The owner reference with `controller: true`, if any.
pub fn controller_of(object: &Value) -> Option<&Value> {
    object["metadata"]["ownerReferences"]
        .as_array()?
        .iter()
        .find(|o| o["controller"] == true)
}

/// Not finished (Succeeded/Failed) and not being deleted.
pub fn is_active(pod: &Value) -> bool {
    !matches!(
        pod["status"]["phase"].as_str(),
        Some("Succeeded" | "Failed")
    ) && pod["metadata"]["deletionTimestamp"].is_null()
}

/// When the pod's Ready condition last turned True; `None` while it is not ready.
pub fn ready_since(pod: &Value) -> Option<OffsetDateTime> {
    let ready = pod["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == "Ready" && c["status"] == "True")?;
    let at = ready["lastTransitionTime"].as_str().unwrap_or("");
    Some(
        OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
            .unwrap_or(OffsetDateTime::UNIX_EPOCH),
    )
}

/// Sort key: pods that sort first are deleted first (kube-controller-manager's ActivePods
/// order: unscheduled, then pending/unknown/running, not ready, most restarts, newest).
pub fn deletion_rank(pod: &Value) -> (bool, u8, bool, Reverse<i64>, Reverse<String>) {
    let scheduled = pod["spec"]["nodeName"]
        .as_str()
        .is_some_and(|n| !n.is_empty());
    let phase = match pod["status"]["phase"].as_str() {
        Some("Pending") | None => 0,
        Some("Unknown") => 1,
        Some("Running") => 2,
        Some(_) => 3,
    };
    let restarts = pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| c["restartCount"].as_i64().unwrap_or(0))
        .max()
        .unwrap_or(0);
    let created = pod["metadata"]["creationTimestamp"]
        .as_str()
        .unwrap_or("")
        .to_owned();
    (
        scheduled,
        phase,
        ready_since(pod).is_some(),
        Reverse(restarts),
        Reverse(created),
    )
}

fn pods() -> &'static kinds::Resource {
    match kinds::find("", "v1", "pods") {
        Some(r) => r,
        None => unreachable!("the kinds table serves pods"),
    }
}

/// Makes `owner` the pod's controller; the pod as stored after.
pub async fn adopt(client: &Loopback, pod: &Value, owner: &Value) -> Result<Value, ClientError> {
    let mut refs: Vec<Value> = pod["metadata"]["ownerReferences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    refs.push(owner.clone());
    patch_owners(client, pod, refs).await
}

/// Drops the owner reference to `uid`; the revision of the write (0 if the pod is gone).
pub async fn release(client: &Loopback, pod: &Value, uid: &str) -> Result<i64, ClientError> {
    let refs: Vec<Value> = pod["metadata"]["ownerReferences"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|o| o["uid"] != uid)
        .cloned()
        .collect();
    match patch_owners(client, pod, refs).await {
        Ok(stored) => Ok(revision_of(&stored)),
        Err(e) if e.is_not_found() => Ok(0),
        Err(e) => Err(e),
    }
}

async fn patch_owners(
    client: &Loopback,
    pod: &Value,
    refs: Vec<Value>,
) -> Result<Value, ClientError> {
    let patch = json!({"metadata": {
        "ownerReferences": if refs.is_empty() { Value::Null } else { json!(refs) },
        "resourceVersion": pod["metadata"]["resourceVersion"],
    }});
    client
        .merge_patch(
            pods(),
            pod["metadata"]["namespace"].as_str(),
            pod["metadata"]["name"].as_str().unwrap_or(""),
            &patch,
        )
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(node: &str, phase: &str, ready: bool, restarts: i64, created: &str) -> Value {
        let conditions = if ready {
            json!([{"type": "Ready", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"}])
        } else {
            json!([])
        };
        json!({"metadata": {"name": format!("{node}-{phase}-{ready}-{restarts}-{created}"),
                            "creationTimestamp": created},
               "spec": {"nodeName": node},
               "status": {"phase": phase, "conditions": conditions,
                          "containerStatuses": [{"restartCount": restarts}]}})
    }

    #[test]
    fn scale_down_takes_the_least_valuable_pods_first() {
        let mut pods = [
            pod("n1", "Running", true, 0, "2026-01-01T00:00:00Z"),
            pod("n1", "Running", true, 0, "2026-01-02T00:00:00Z"),
            pod("n1", "Running", true, 3, "2026-01-01T00:00:00Z"),
            pod("n1", "Running", false, 0, "2026-01-01T00:00:00Z"),
            pod("n1", "Pending", false, 0, "2026-01-01T00:00:00Z"),
            pod("", "Pending", false, 0, "2026-01-01T00:00:00Z"),
        ];
        pods.sort_by_key(deletion_rank);
        let order: Vec<&str> = pods
            .iter()
            .map(|p| p["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            order,
            [
                "-Pending-false-0-2026-01-01T00:00:00Z",
                "n1-Pending-false-0-2026-01-01T00:00:00Z",
                "n1-Running-false-0-2026-01-01T00:00:00Z",
                "n1-Running-true-3-2026-01-01T00:00:00Z",
                "n1-Running-true-0-2026-01-02T00:00:00Z",
                "n1-Running-true-0-2026-01-01T00:00:00Z",
            ]
        );
    }

    #[test]
    fn finished_and_deleting_pods_do_not_count() {
        assert!(is_active(&pod("n", "Running", true, 0, "")));
        assert!(!is_active(&pod("n", "Succeeded", false, 0, "")));
        assert!(!is_active(&pod("n", "Failed", false, 0, "")));
        let mut deleting = pod("n", "Running", true, 0, "");
        deleting["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        assert!(!is_active(&deleting));
    }

    #[test]
    fn the_controller_reference_is_the_one_marked_controller() {
        let pod = json!({"metadata": {"ownerReferences": [
            {"kind": "A", "uid": "1"}, {"kind": "B", "uid": "2", "controller": true}]}});
        assert_eq!(controller_of(&pod).unwrap()["kind"], "B");
        assert!(controller_of(&json!({"metadata": {}})).is_none());
    }
}
