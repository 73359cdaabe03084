//! A Deployment's status from its ReplicaSets, as kube-controller-manager writes it: the
//! replica counts, `observedGeneration`, `collisionCount`, and the `Available` and `Progressing`
//! conditions with Kubernetes' reasons and messages (what `kubectl rollout status` reads,
//! including `ProgressDeadlineExceeded` once `progressDeadlineSeconds` pass without progress).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

fn count(rs: &Value, field: &str) -> i64 {
    rs["status"][field].as_i64().unwrap_or(0)
}

/// What a pass over a Deployment saw and did.
pub struct Pass<'a> {
    pub deployment: &'a Value,
    pub new: Option<&'a Value>,
    pub all: &'a [Arc<Value>],
    /// maxUnavailable (for the Available condition).
    pub max_unavailable: i64,
    /// A ReplicaSet was created this pass.
    pub created: Option<String>,
    pub now: OffsetDateTime,
}

/// The new status, and when to look again for the progress deadline.
pub fn compute(pass: &Pass<'_>) -> (Value, Option<Duration>) {
    let d = pass.deployment;
    let desired = d["spec"]["replicas"].as_i64().unwrap_or(1);
    let replicas: i64 = pass.all.iter().map(|rs| count(rs, "replicas")).sum();
    let spec_total: i64 = pass
        .all
        .iter()
        .map(|rs| rs["spec"]["replicas"].as_i64().unwrap_or(0))
        .sum();
    let updated = pass.new.map_or(0, |rs| count(rs, "replicas"));
    let ready: i64 = pass.all.iter().map(|rs| count(rs, "readyReplicas")).sum();
    let available: i64 = pass
        .all
        .iter()
        .map(|rs| count(rs, "availableReplicas"))
        .sum();
    let old = &d["status"];
    let mut status = json!({
        "observedGeneration": d["metadata"]["generation"],
        "replicas": replicas,
        "updatedReplicas": updated,
        "readyReplicas": ready,
        "availableReplicas": available,
        "unavailableReplicas": (spec_total - available).max(0),
    });
    for (field, value) in status.clone().as_object().into_iter().flatten() {
        if value == 0 && field != "observedGeneration" {
            status[field] = Value::Null; // omitempty, as Kubernetes serialises it
        }
    }
    if let Some(collisions) = old["collisionCount"].as_i64() {
        status["collisionCount"] = json!(collisions);
    }
    let now = pass.now.format(&Rfc3339).unwrap_or_default();
    let conditions = old["conditions"].as_array().cloned().unwrap_or_default();
    let availability = if available >= desired - pass.max_unavailable {
        (
            "True",
            "MinimumReplicasAvailable",
            "Deployment has minimum availability.",
        )
    } else {
        (
            "False",
            "MinimumReplicasUnavailable",
            "Deployment does not have minimum availability.",
        )
    };
    let mut conditions = set(conditions, "Available", availability, &now, false);

    let new_name = pass
        .new
        .and_then(|rs| rs["metadata"]["name"].as_str())
        .unwrap_or("");
    let counts_moved = [
        "replicas",
        "updatedReplicas",
        "readyReplicas",
        "availableReplicas",
    ]
    .iter()
    .any(|f| old[*f].as_i64().unwrap_or(0) != status[*f].as_i64().unwrap_or(0));
    let complete =
        pass.new.is_some() && updated == desired && replicas == desired && available == desired;
    let deadline = d["spec"]["progressDeadlineSeconds"].as_i64();
    let mut recheck = None;
    let progressing = find(&conditions, "Progressing");
    if d["spec"]["paused"] == true {
        conditions = set(
            conditions,
            "Progressing",
            ("Unknown", "DeploymentPaused", "Deployment is paused"),
            &now,
            false,
        );
    } else if let Some(name) = &pass.created {
        let message = format!("Created new replica set \"{name}\"");
        conditions = set(
            conditions,
            "Progressing",
            ("True", "NewReplicaSetCreated", &message),
            &now,
            true,
        );
    } else if complete {
        let message = format!("ReplicaSet \"{new_name}\" has successfully progressed.");
        conditions = set(
            conditions,
            "Progressing",
            ("True", "NewReplicaSetAvailable", &message),
            &now,
            true,
        );
    } else if counts_moved
        || progressing.is_none()
        || progressing.is_some_and(|c| c["reason"] == "DeploymentPaused")
        || progressing.is_some_and(|c| c["reason"] == "DeploymentResumed")
    {
        let message = format!("ReplicaSet \"{new_name}\" is progressing.");
        conditions = set(
            conditions,
            "Progressing",
            ("True", "ReplicaSetUpdated", &message),
            &now,
            true,
        );
    } else if let (Some(seconds), Some(c)) = (deadline, progressing) {
        let since = c["lastUpdateTime"]
            .as_str()
            .and_then(|t| OffsetDateTime::parse(t, &Rfc3339).ok())
            .unwrap_or(pass.now);
        let left = seconds - (pass.now - since).whole_seconds();
        if c["status"] == "True" && left <= 0 {
            let message = format!("ReplicaSet \"{new_name}\" has timed out progressing.");
            conditions = set(
                conditions,
                "Progressing",
                ("False", "ProgressDeadlineExceeded", &message),
                &now,
                true,
            );
        } else if left > 0 {
            recheck = Some(Duration::from_secs(left as u64 + 1));
        }
    }
    if !complete && recheck.is_none() && d["spec"]["paused"] != true {
        if let Some(seconds) = deadline {
            recheck = Some(Duration::from_secs(seconds.max(0) as u64 + 1));
        }
    }
    // A ReplicaSet's failure to make or remove pods (the new one's first), as kube copies it.
    let failure = pass
        .new
        .into_iter()
        .chain(pass.all.iter().map(|rs| rs.as_ref()))
        .find_map(|rs| find(rs["status"]["conditions"].as_array()?, "ReplicaFailure").cloned());
    match failure {
        Some(c) => {
            let text = |field: &str| c[field].as_str().unwrap_or("").to_owned();
            let (status, reason, message) = (text("status"), text("reason"), text("message"));
            conditions = set(
                conditions,
                "ReplicaFailure",
                (&status, &reason, &message),
                &now,
                false,
            );
        }
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }
    status["conditions"] = json!(conditions);
    (status, recheck)
}

fn find<'a>(conditions: &'a [Value], kind: &str) -> Option<&'a Value> {
    conditions.iter().find(|c| c["type"] == kind)
}

/// `conditions` with the one of `kind` set to (status, reason, message). The transition time
/// moves when the status changes; the update time when anything changes or `touch`.
fn set(
    mut conditions: Vec<Value>,
    kind: &str,
    (status, reason, message): (&str, &str, &str),
    now: &str,
    touch: bool,
) -> Vec<Value> {
    let old = find(&conditions, kind).cloned();
    let same = old
        .as_ref()
        .is_some_and(|c| c["status"] == status && c["reason"] == reason && c["message"] == message);
    if same && !touch {
        return conditions;
    }
    let transition = match &old {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now),
    };
    let condition = json!({
        "type": kind, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": now, "lastTransitionTime": transition,
    });
    match conditions.iter_mut().find(|c| c["type"] == kind) {
        Some(c) => *c = condition,
        None => conditions.push(condition),
    }
    conditions
}

/// Whether two statuses differ in anything but the condition timestamps of an unchanged
/// condition (so a pass that changed nothing writes nothing).
pub fn differs(old: &Value, new: &Value) -> bool {
    let strip = |v: &Value| {
        let mut v = v.clone();
        if let Some(conditions) = v["conditions"].as_array_mut() {
            for c in conditions {
                if let Some(map) = c.as_object_mut() {
                    map.remove("lastUpdateTime");
                }
            }
        }
        v
    };
    let (old, new) = (strip(old), strip(new));
    new.as_object()
        .into_iter()
        .flatten()
        .any(|(k, v)| old.get(k).unwrap_or(&Value::Null) != v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rs(name: &str, replicas: i64, available: i64) -> Arc<Value> {
        Arc::new(
            json!({"metadata": {"name": name}, "spec": {"replicas": replicas},
            "status": {"replicas": replicas, "readyReplicas": available, "availableReplicas": available}}),
        )
    }

    fn deployment(status: Value) -> Value {
        json!({"metadata": {"generation": 2}, "spec": {"replicas": 2, "progressDeadlineSeconds": 600}, "status": status})
    }

    #[test]
    fn a_finished_rollout_is_available_and_progressed() {
        let all = [rs("web-new", 2, 2), rs("web-old", 0, 0)];
        let d = deployment(json!({}));
        let (status, recheck) = compute(&Pass {
            deployment: &d,
            new: Some(&all[0]),
            all: &all,
            max_unavailable: 0,
            created: None,
            now: OffsetDateTime::now_utc(),
        });
        assert_eq!(status["updatedReplicas"], 2);
        assert_eq!(status["observedGeneration"], 2);
        assert!(status["unavailableReplicas"].is_null());
        let conditions = status["conditions"].as_array().unwrap();
        assert_eq!(
            find(conditions, "Available").unwrap()["reason"],
            "MinimumReplicasAvailable"
        );
        let p = find(conditions, "Progressing").unwrap();
        assert_eq!(p["reason"], "NewReplicaSetAvailable");
        assert_eq!(
            p["message"],
            "ReplicaSet \"web-new\" has successfully progressed."
        );
        assert!(recheck.is_none());
    }

    #[test]
    fn no_progress_past_the_deadline_is_progress_deadline_exceeded() {
        let all = [rs("web-new", 1, 0), rs("web-old", 2, 2)];
        let long_ago = "2026-01-01T00:00:00Z";
        let d = deployment(
            json!({"replicas": 3, "updatedReplicas": 1, "readyReplicas": 2, "availableReplicas": 2,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "message": "m", "lastUpdateTime": long_ago, "lastTransitionTime": long_ago}]}),
        );
        let (status, _) = compute(&Pass {
            deployment: &d,
            new: Some(&all[0]),
            all: &all,
            max_unavailable: 0,
            created: None,
            now: OffsetDateTime::now_utc(),
        });
        let p = find(status["conditions"].as_array().unwrap(), "Progressing")
            .unwrap()
            .clone();
        assert_eq!(p["status"], "False");
        assert_eq!(p["reason"], "ProgressDeadlineExceeded");
        assert_eq!(
            p["message"],
            "ReplicaSet \"web-new\" has timed out progressing."
        );
        assert!(differs(&d["status"], &status));
    }
}
