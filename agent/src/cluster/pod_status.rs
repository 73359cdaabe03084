//! The agent's [`PodStatus`] as a Kubernetes `v1.PodStatus`, like kubelet reports it: phase,
//! the PodReadyToStartContainers/Initialized/Ready/ContainersReady/PodScheduled conditions
//! (`PodCompleted` once all completed; their lastTransitionTime kept
//! in [`ConditionTimes`] across reports), container statuses with `bosun://` container ids,
//! pod and host IPs, start time and QoS class. Pure: the caller supplies the time and image ids.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use crate::pod::{ContainerState, ContainerStatus, PodPhase, PodStatus};

/// The pod conditions the agent reports, in kubelet's order.
const CONDITIONS: [&str; 5] = [
    "PodReadyToStartContainers",
    "Initialized",
    "Ready",
    "ContainersReady",
    "PodScheduled",
];

/// When each condition of one pod last changed: type → (status, time).
#[derive(Debug, Default, Clone)]
pub struct ConditionTimes(BTreeMap<&'static str, (bool, String)>);

impl ConditionTimes {
    /// The transition times the API already holds (`status.conditions`), so a restarted agent
    /// keeps them for conditions that did not change.
    pub fn from_api(status: &Value) -> ConditionTimes {
        let mut times = ConditionTimes::default();
        for c in status["conditions"].as_array().into_iter().flatten() {
            let kind = CONDITIONS.iter().find(|k| c["type"] == **k);
            let time = c["lastTransitionTime"].as_str();
            if let (Some(kind), Some(time)) = (kind, time) {
                let value = c["status"] == "True";
                times.0.insert(kind, (value, time.to_string()));
            }
        }
        times
    }

    /// The condition `kind` with value `now_true`, keeping its transition time when unchanged.
    fn condition(&mut self, kind: &'static str, now_true: bool, now: &str) -> Value {
        let entry = self
            .0
            .entry(kind)
            .or_insert_with(|| (now_true, now.to_string()));
        if entry.0 != now_true {
            *entry = (now_true, now.to_string());
        }
        let mut c = json!({
            "type": kind,
            "status": if now_true { "True" } else { "False" },
            "lastProbeTime": null,
            "lastTransitionTime": entry.1,
        });
        let reason = match (kind, now_true) {
            ("Initialized", false) => Some("ContainersNotInitialized"),
            ("Ready" | "ContainersReady", false) => Some("ContainersNotReady"),
            _ => None,
        };
        if let Some(reason) = reason {
            c["reason"] = json!(reason);
        }
        c
    }
}

/// The API status of a pod the agent runs. `image_id` maps an image reference to its id
/// (`repo@sha256:…`), when known.
pub fn api_status(
    st: &PodStatus,
    host_ip: &str,
    times: &mut ConditionTimes,
    now: &str,
    image_id: &dyn Fn(&str) -> String,
) -> Value {
    let phase = match st.phase {
        PodPhase::Pending => "Pending",
        PodPhase::Running => "Running",
        PodPhase::Succeeded => "Succeeded",
        PodPhase::Failed => "Failed",
    };
    let initialized = st
        .init_container_statuses
        .iter()
        .all(|c| c.state.exit_code() == Some(0));
    let containers_ready =
        !st.container_statuses.is_empty() && st.container_statuses.iter().all(|c| c.ready);
    // The sandbox (network namespace, pod IP) is ready while the pod runs on it.
    let sandbox =
        st.pod_ip.is_some() && !matches!(st.phase, PodPhase::Succeeded | PodPhase::Failed);
    let mut conditions = vec![
        times.condition("PodReadyToStartContainers", sandbox, now),
        times.condition("Initialized", initialized, now),
        times.condition("Ready", containers_ready, now),
        times.condition("ContainersReady", containers_ready, now),
        times.condition("PodScheduled", true, now),
    ];
    if st.phase == PodPhase::Succeeded {
        // kubelet's reason for the conditions of a pod whose containers all completed.
        for c in conditions
            .iter_mut()
            .filter(|c| c["type"] != "PodScheduled" && c["type"] != "PodReadyToStartContainers")
        {
            c["reason"] = json!("PodCompleted");
        }
    }
    let containers = |list: &[ContainerStatus]| -> Value {
        list.iter()
            .map(|c| container_status(&st.uid, c, image_id))
            .collect()
    };
    let mut status = json!({
        "phase": phase,
        "conditions": conditions,
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "qosClass": st.qos_class,
        "containerStatuses": containers(&st.container_statuses),
    });
    if !st.init_container_statuses.is_empty() {
        status["initContainerStatuses"] = containers(&st.init_container_statuses);
    }
    if !st.ephemeral_container_statuses.is_empty() {
        status["ephemeralContainerStatuses"] = containers(&st.ephemeral_container_statuses);
    }
    if let Some(ip) = &st.pod_ip {
        status["podIP"] = json!(ip);
        let ips: Vec<Value> = st.pod_ips.iter().map(|ip| json!({ "ip": ip })).collect();
        status["podIPs"] = if ips.is_empty() {
            json!([{ "ip": ip }])
        } else {
            json!(ips)
        };
    }
    if let Some(t) = &st.start_time {
        status["startTime"] = json!(api_time(t));
    }
    if !st.reason.is_empty() {
        status["reason"] = json!(st.reason);
    }
    if !st.message.is_empty() {
        status["message"] = json!(st.message);
    }
    status
}

fn container_status(uid: &str, c: &ContainerStatus, image_id: &dyn Fn(&str) -> String) -> Value {
    let started = c.state.is_running();
    let mut v = json!({
        "name": c.name,
        "image": c.image,
        "imageID": image_id(&c.image),
        "state": state(&c.state),
        "lastState": c.last_state.as_ref().map(state).unwrap_or_else(|| json!({})),
        "ready": c.ready,
        "restartCount": c.restart_count,
        "started": started,
    });
    if !matches!(c.state, ContainerState::Waiting { .. }) || c.last_state.is_some() {
        v["containerID"] = json!(container_id(uid, &c.name, c.restart_count));
    }
    v
}

/// `bosun://<pod uid>/<container>/<restart count>`: one id per container instance.
pub fn container_id(uid: &str, name: &str, restart_count: u32) -> String {
    format!("bosun://{uid}/{name}/{restart_count}")
}

/// A time as the API's `metav1.Time` carries it: RFC 3339 in whole seconds
/// (`2026-01-01T00:00:01.637Z` → `2026-01-01T00:00:01Z`); the agent keeps nanoseconds.
fn api_time(t: &str) -> String {
    match (t.find('.'), t.strip_suffix('Z')) {
        (Some(dot), Some(_)) => format!("{}Z", &t[..dot]),
        _ => t.to_owned(),
    }
}

fn state(s: &ContainerState) -> Value {
    match s {
        ContainerState::Waiting { reason, message } => {
            let mut w = json!({ "reason": reason });
            if !message.is_empty() {
                w["message"] = json!(message);
            }
            json!({ "waiting": w })
        }
        ContainerState::Running { started_at } => {
            json!({"running": {"startedAt": api_time(started_at)}})
        }
        ContainerState::Terminated {
            exit_code,
            reason,
            message,
            started_at,
            finished_at,
        } => {
            let mut t = json!({
                "exitCode": exit_code, "reason": reason,
                "startedAt": api_time(started_at), "finishedAt": api_time(finished_at),
            });
            if !message.is_empty() {
                t["message"] = json!(message);
            }
            json!({ "terminated": t })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn container(state: ContainerState, ready: bool) -> ContainerStatus {
        ContainerStatus {
            name: "web".into(),
            image: "bosun.test/busybox:1".into(),
            init: false,
            state,
            last_state: None,
            restart_count: 0,
            ready,
            pid: None,
        }
    }

    #[test]
    fn conditions_follow_readiness_and_keep_their_transition_times() {
        let mut st = PodStatus {
            uid: "u1".into(),
            phase: PodPhase::Running,
            pod_ip: Some("10.244.0.5".into()),
            qos_class: "BestEffort".into(),
            start_time: Some("2026-01-01T00:00:00.492Z".into()),
            container_statuses: vec![container(
                ContainerState::Running {
                    started_at: "2026-01-01T00:00:01.637000000Z".into(),
                },
                false,
            )],
            ..PodStatus::default()
        };
        let mut times = ConditionTimes::default();
        let id = |_: &str| "bosun.test/busybox@sha256:ab".to_string();
        let first = api_status(&st, "192.168.1.1", &mut times, "T1", &id);
        assert_eq!(first["phase"], "Running");
        assert_eq!(first["podIPs"], json!([{"ip": "10.244.0.5"}]));
        assert_eq!(first["hostIP"], "192.168.1.1");
        // metav1.Time is whole seconds in the API.
        assert_eq!(first["startTime"], "2026-01-01T00:00:00Z");
        let condition = |status: &Value, kind: &str| {
            let list = status["conditions"].as_array().cloned().unwrap_or_default();
            list.into_iter()
                .find(|c| c["type"] == kind)
                .unwrap_or_default()
        };
        let types: Vec<&str> = first["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|c| c["type"].as_str())
            .collect();
        assert_eq!(types, CONDITIONS, "kubelet's conditions in its order");
        assert_eq!(
            condition(&first, "PodReadyToStartContainers")["status"],
            "True"
        );
        let ready = &condition(&first, "Ready");
        assert_eq!(
            (ready["type"].as_str(), ready["status"].as_str()),
            (Some("Ready"), Some("False"))
        );
        let c = &first["containerStatuses"][0];
        assert_eq!(c["containerID"], "bosun://u1/web/0");
        assert_eq!(c["state"]["running"]["startedAt"], "2026-01-01T00:00:01Z");
        assert_eq!(c["started"], true);

        st.container_statuses[0].ready = true;
        let second = api_status(&st, "192.168.1.1", &mut times, "T2", &id);
        assert_eq!(condition(&second, "Ready")["status"], "True");
        assert_eq!(condition(&second, "Ready")["lastTransitionTime"], "T2");
        // PodScheduled did not change: its time stays.
        assert_eq!(
            condition(&second, "PodScheduled")["lastTransitionTime"],
            "T1"
        );
        let third = api_status(&st, "192.168.1.1", &mut times, "T3", &id);
        assert_eq!(
            third, second,
            "an unchanged pod reports an unchanged status"
        );

        st.phase = PodPhase::Succeeded;
        st.container_statuses[0].ready = false;
        let done = api_status(&st, "192.168.1.1", &mut times, "T4", &id);
        let sandbox = condition(&done, "PodReadyToStartContainers");
        assert_eq!(
            (&sandbox["status"], &sandbox["reason"]),
            (&json!("False"), &Value::Null)
        );
        for kind in ["Initialized", "Ready", "ContainersReady"] {
            assert_eq!(condition(&done, kind)["reason"], "PodCompleted", "{kind}");
        }
    }
}
