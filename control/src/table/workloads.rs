//! Printers of the workload kinds: pods (READY, the STATUS kubectl users know — init progress,
//! waiting and terminated reasons, Terminating, Completed — and RESTARTS with the time of the
//! last one), deployments, replicasets, statefulsets, daemonsets, jobs, cronjobs, HPAs.

use serde_json::Value;
use time::OffsetDateTime;

use super::cells::{
    arr, at, col, container_cells, format_labels, format_selector, human_duration, int, s,
    selector_string, since, timestamp, wide, AGE, CONTAINERS, IMAGES, NAME,
};
use super::Printer;

pub static POD: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        col("Status", "string", "The aggregate status of the containers in this pod."),
        col("Restarts", "string", "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted."),
        AGE,
        wide("IP", "string", "podIP address allocated to the pod. Routable at least within the cluster. Empty if not yet allocated."),
        wide("Node", "string", "NodeName indicates in which node this pod is scheduled."),
        wide("Nominated Node", "string", "nominatedNodeName is set only when this pod preempts other pods on the node."),
        wide("Readiness Gates", "string", "If specified, all readiness gates will be evaluated for pod readiness."),
    ],
    cells: pod,
};

/// Latest of two optional timestamps.
fn later(a: Option<OffsetDateTime>, b: Option<OffsetDateTime>) -> Option<OffsetDateTime> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    }
}

fn condition_true(pod: &Value, kind: &str) -> bool {
    arr(pod, &["status", "conditions"])
        .iter()
        .any(|c| s(c, &["type"]) == kind && s(c, &["status"]) == "True")
}

fn last_terminated(container: &Value) -> Option<OffsetDateTime> {
    timestamp(container, &["lastState", "terminated", "finishedAt"])
}

fn pod(pod: &Value, now: OffsetDateTime) -> Vec<Value> {
    let phase = s(pod, &["status", "phase"]);
    let mut reason = match s(pod, &["status", "reason"]) {
        "" => phase.to_owned(),
        r => r.to_owned(),
    };
    let conditions = arr(pod, &["status", "conditions"]);
    if conditions
        .iter()
        .any(|c| s(c, &["type"]) == "PodScheduled" && s(c, &["reason"]) == "SchedulingGated")
    {
        reason = "SchedulingGated".to_owned();
    }
    let init_specs = arr(pod, &["spec", "initContainers"]);
    let sidecar = |name: &str| {
        init_specs
            .iter()
            .any(|c| s(c, &["name"]) == name && s(c, &["restartPolicy"]) == "Always")
    };
    let total = arr(pod, &["spec", "containers"]).len()
        + init_specs
            .iter()
            .filter(|c| s(c, &["restartPolicy"]) == "Always")
            .count();
    let mut ready = 0;
    let mut restarts = 0;
    let mut sidecar_restarts = 0;
    let mut last_restart = None;
    let mut last_sidecar_restart = None;
    let mut initializing = false;
    for (i, c) in arr(pod, &["status", "initContainerStatuses"])
        .iter()
        .enumerate()
    {
        restarts += int(c, &["restartCount"]);
        last_restart = later(last_restart, last_terminated(c));
        let is_sidecar = sidecar(s(c, &["name"]));
        if is_sidecar {
            sidecar_restarts += int(c, &["restartCount"]);
            last_sidecar_restart = later(last_sidecar_restart, last_terminated(c));
        }
        let terminated = at(c, &["state", "terminated"]);
        let waiting_reason = s(c, &["state", "waiting", "reason"]);
        if terminated.is_object() && int(terminated, &["exitCode"]) == 0 {
            continue;
        }
        if is_sidecar && at(c, &["started"]).as_bool() == Some(true) {
            if at(c, &["ready"]).as_bool() == Some(true) {
                ready += 1;
            }
            continue;
        }
        reason = if terminated.is_object() {
            match (s(terminated, &["reason"]), int(terminated, &["signal"])) {
                ("", 0) => format!("Init:ExitCode:{}", int(terminated, &["exitCode"])),
                ("", signal) => format!("Init:Signal:{signal}"),
                (r, _) => format!("Init:{r}"),
            }
        } else if !waiting_reason.is_empty() && waiting_reason != "PodInitializing" {
            format!("Init:{waiting_reason}")
        } else {
            format!("Init:{i}/{}", init_specs.len())
        };
        initializing = true;
        break;
    }
    if !initializing || condition_true(pod, "Initialized") {
        restarts = sidecar_restarts;
        last_restart = last_sidecar_restart;
        let mut has_running = false;
        for c in arr(pod, &["status", "containerStatuses"]).iter().rev() {
            restarts += int(c, &["restartCount"]);
            last_restart = later(last_restart, last_terminated(c));
            let terminated = at(c, &["state", "terminated"]);
            let waiting_reason = s(c, &["state", "waiting", "reason"]);
            if !waiting_reason.is_empty() {
                reason = waiting_reason.to_owned();
            } else if terminated.is_object() {
                reason = match (s(terminated, &["reason"]), int(terminated, &["signal"])) {
                    ("", 0) => format!("ExitCode:{}", int(terminated, &["exitCode"])),
                    ("", signal) => format!("Signal:{signal}"),
                    (r, _) => r.to_owned(),
                };
            } else if at(c, &["ready"]).as_bool() == Some(true)
                && at(c, &["state", "running"]).is_object()
            {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(pod, "Ready") {
                "Running".to_owned()
            } else {
                "NotReady".to_owned()
            };
        }
    }
    let deleting = at(pod, &["metadata", "deletionTimestamp"]).is_string();
    if deleting && s(pod, &["status", "reason"]) == "NodeLost" {
        reason = "Unknown".to_owned();
    } else if deleting && phase != "Succeeded" && phase != "Failed" {
        reason = "Terminating".to_owned();
    }
    let restarts_cell = match last_restart {
        Some(at) if restarts != 0 => format!("{restarts} ({} ago)", since(Some(at), now)),
        _ => restarts.to_string(),
    };
    let or_none = |v: &str| {
        if v.is_empty() {
            "<none>".to_owned()
        } else {
            v.to_owned()
        }
    };
    let ip = arr(pod, &["status", "podIPs"])
        .first()
        .map(|p| s(p, &["ip"]))
        .unwrap_or_else(|| s(pod, &["status", "podIP"]));
    let gates = arr(pod, &["spec", "readinessGates"]);
    let gates_cell = if gates.is_empty() {
        "<none>".to_owned()
    } else {
        let met = gates
            .iter()
            .filter(|g| {
                conditions
                    .iter()
                    .find(|c| s(c, &["type"]) == s(g, &["conditionType"]))
                    .is_some_and(|c| s(c, &["status"]) == "True")
            })
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        super::cells::name(pod),
        Value::from(format!("{ready}/{total}")),
        Value::from(reason),
        Value::from(restarts_cell),
        super::cells::age(pod, now),
        Value::from(or_none(ip)),
        Value::from(or_none(s(pod, &["spec", "nodeName"]))),
        Value::from(or_none(s(pod, &["status", "nominatedNodeName"]))),
        Value::from(gates_cell),
    ]
}

const SELECTOR: &str = "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.";

pub static DEPLOYMENT: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        col("Up-to-date", "string", "Total number of non-terminating pods targeted by this deployment that have the desired template spec."),
        col("Available", "string", "Total number of available non-terminating pods (ready for at least minReadySeconds) targeted by this deployment."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", SELECTOR),
    ],
    cells: |o, now| {
        let [names, images] = container_cells(at(o, &["spec", "template"]));
        vec![
            super::cells::name(o),
            Value::from(format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                int(o, &["spec", "replicas"])
            )),
            Value::from(int(o, &["status", "updatedReplicas"])),
            Value::from(int(o, &["status", "availableReplicas"])),
            super::cells::age(o, now),
            names,
            images,
            Value::from(selector_string(at(o, &["spec", "selector"]))),
        ]
    },
};

pub static REPLICA_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", "Replicas is the number of desired pods."),
        col("Current", "integer", "Replicas is the most recently observed number of non-terminating pods."),
        col("Ready", "integer", "The number of non-terminating pods targeted by this ReplicaSet with a Ready Condition."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", SELECTOR),
    ],
    cells: |o, now| {
        let [names, images] = container_cells(at(o, &["spec", "template"]));
        vec![
            super::cells::name(o),
            Value::from(int(o, &["spec", "replicas"])),
            Value::from(int(o, &["status", "replicas"])),
            Value::from(int(o, &["status", "readyReplicas"])),
            super::cells::age(o, now),
            names,
            images,
            Value::from(replicas_selector(o)),
        ]
    },
};

/// A ReplicaSet's selector, or a ReplicationController's label map, as kubectl prints them.
fn replicas_selector(o: &Value) -> String {
    let selector = at(o, &["spec", "selector"]);
    if s(o, &["kind"]) == "ReplicationController" {
        format_selector(&serde_json::json!({ "matchLabels": selector }))
    } else {
        format_selector(selector)
    }
}

pub static STATEFUL_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Ready", "string", "Number of the pod with ready state"),
        AGE,
        CONTAINERS,
        IMAGES,
    ],
    cells: |o, now| {
        let [names, images] = container_cells(at(o, &["spec", "template"]));
        vec![
            super::cells::name(o),
            Value::from(format!(
                "{}/{}",
                int(o, &["status", "readyReplicas"]),
                int(o, &["spec", "replicas"])
            )),
            super::cells::age(o, now),
            names,
            images,
        ]
    },
};

pub static DAEMON_SET: Printer = Printer {
    columns: &[
        NAME,
        col("Desired", "integer", "The total number of nodes that should be running the daemon pod."),
        col("Current", "integer", "The number of nodes that are running at least 1 daemon pod and are supposed to run the daemon pod."),
        col("Ready", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running with a Ready Condition."),
        col("Up-to-date", "integer", "The total number of nodes that are running updated daemon pod"),
        col("Available", "integer", "The number of nodes that should be running the daemon pod and have one or more of the daemon pod running and available."),
        col("Node Selector", "string", "NodeSelector is a selector which must be true for the pod to fit on a node."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "A label query over pods that are managed by the daemon set."),
    ],
    cells: |o, now| {
        let [names, images] = container_cells(at(o, &["spec", "template"]));
        let status = |k: &str| Value::from(int(o, &["status", k]));
        vec![
            super::cells::name(o),
            status("desiredNumberScheduled"),
            status("currentNumberScheduled"),
            status("numberReady"),
            status("updatedNumberScheduled"),
            status("numberAvailable"),
            Value::from(format_labels(at(o, &["spec", "template", "spec", "nodeSelector"]))),
            super::cells::age(o, now),
            names,
            images,
            Value::from(format_selector(at(o, &["spec", "selector"]))),
        ]
    },
};

pub static JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the job."),
        col(
            "Completions",
            "string",
            "The number of pods which reached phase Succeeded.",
        ),
        col("Duration", "string", "Time required to complete the job."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide(
            "Selector",
            "string",
            "A label query over pods that should match the pod count.",
        ),
    ],
    cells: job,
};

fn job(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let succeeded = int(o, &["status", "succeeded"]);
    let completions = match at(o, &["spec", "completions"]).as_i64() {
        Some(c) => format!("{succeeded}/{c}"),
        None => match int(o, &["spec", "parallelism"]) {
            p if p > 1 => format!("{succeeded}/1 of {p}"),
            _ => format!("{succeeded}/1"),
        },
    };
    let start = timestamp(o, &["status", "startTime"]);
    let duration = match (start, timestamp(o, &["status", "completionTime"])) {
        (None, _) => String::new(),
        (Some(start), None) => human_duration(now - start),
        (Some(start), Some(end)) => human_duration(end - start),
    };
    let has = |kind: &str| {
        arr(o, &["status", "conditions"])
            .iter()
            .find(|c| s(c, &["type"]) == kind)
            .is_some_and(|c| s(c, &["status"]) == "True")
    };
    let status = if has("Complete") {
        "Complete"
    } else if has("Failed") {
        "Failed"
    } else if at(o, &["metadata", "deletionTimestamp"]).is_string() {
        "Terminating"
    } else if has("Suspended") {
        "Suspended"
    } else if has("FailureTarget") {
        "FailureTarget"
    } else {
        "Running"
    };
    let [names, images] = container_cells(at(o, &["spec", "template"]));
    vec![
        super::cells::name(o),
        Value::from(status),
        Value::from(completions),
        Value::from(duration),
        super::cells::age(o, now),
        names,
        images,
        Value::from(format_selector(at(o, &["spec", "selector"]))),
    ]
}

pub static CRON_JOB: Printer = Printer {
    columns: &[
        NAME,
        col("Schedule", "string", "The schedule in Cron format, see https://en.wikipedia.org/wiki/Cron."),
        col("Timezone", "string", "The time zone name for the given schedule, see https://en.wikipedia.org/wiki/List_of_tz_database_time_zones."),
        col("Suspend", "boolean", "This flag tells the controller to suspend subsequent executions, it does not apply to already started executions. Defaults to false."),
        col("Active", "integer", "A list of pointers to currently running jobs."),
        col("Last Schedule", "string", "Information when was the last time the job was successfully scheduled."),
        AGE,
        CONTAINERS,
        IMAGES,
        wide("Selector", "string", "A label query over pods that should match the pod count. Normally, the system sets this field for you."),
    ],
    cells: |o, now| {
        let job = at(o, &["spec", "jobTemplate", "spec"]);
        let [names, images] = container_cells(at(job, &["template"]));
        let or_none = |text: &str| match text {
            "" => "<none>".to_owned(),
            t => t.to_owned(),
        };
        let suspend = match at(o, &["spec", "suspend"]).as_bool() {
            Some(true) => "True",
            Some(false) => "False",
            None => "<unset>",
        };
        let last = match timestamp(o, &["status", "lastScheduleTime"]) {
            None => "<none>".to_owned(),
            t => since(t, now),
        };
        vec![
            super::cells::name(o),
            Value::from(s(o, &["spec", "schedule"])),
            Value::from(or_none(s(o, &["spec", "timeZone"]))),
            Value::from(suspend),
            Value::from(arr(o, &["status", "active"]).len()),
            Value::from(last),
            super::cells::age(o, now),
            names,
            images,
            Value::from(format_selector(at(job, &["selector"]))),
        ]
    },
};

pub static HPA: Printer = Printer {
    columns: &[
        NAME,
        col("Reference", "string", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
        col("Targets", "string", "metrics contains the specifications for which to use to calculate the desired replica count."),
        col("MinPods", "string", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
        col("MaxPods", "string", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
        col("Replicas", "string", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
        AGE,
    ],
    cells: |o, now| {
        let min = match at(o, &["spec", "minReplicas"]).as_i64() {
            Some(m) => m.to_string(),
            None => "<unset>".to_owned(),
        };
        vec![
            super::cells::name(o),
            Value::from(format!(
                "{}/{}",
                s(o, &["spec", "scaleTargetRef", "kind"]),
                s(o, &["spec", "scaleTargetRef", "name"])
            )),
            Value::from(hpa_targets(o)),
            Value::from(min),
            Value::from(int(o, &["spec", "maxReplicas"])),
            Value::from(int(o, &["status", "currentReplicas"])),
            super::cells::age(o, now),
        ]
    },
};

/// `formatHPAMetrics` for autoscaling/v2 (`spec.metrics`) and v1
/// (`targetCPUUtilizationPercentage`, which Kubernetes converts to a cpu Resource metric).
fn hpa_targets(o: &Value) -> String {
    let specs = arr(o, &["spec", "metrics"]);
    if specs.is_empty() {
        return match at(o, &["spec", "targetCPUUtilizationPercentage"]).as_i64() {
            Some(target) => {
                let current = match at(o, &["status", "currentCPUUtilizationPercentage"]).as_i64() {
                    Some(c) => format!("{c}%"),
                    None => "<unknown>".to_owned(),
                };
                format!("cpu: {current}/{target}%")
            }
            None if at(o, &["apiVersion"]).as_str() == Some("autoscaling/v1") => {
                "cpu: <unknown>/<auto>".to_owned()
            }
            None => "<none>".to_owned(),
        };
    }
    let statuses = arr(o, &["status", "currentMetrics"]);
    let quantity = |v: &Value| match v {
        Value::String(q) => q.clone(),
        Value::Number(n) => n.to_string(),
        _ => "<unknown>".to_owned(),
    };
    let list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            let kind = s(spec, &["type"]);
            let field = match kind {
                "External" => "external",
                "Pods" => "pods",
                "Object" => "object",
                "Resource" => "resource",
                "ContainerResource" => "containerResource",
                _ => return "<unknown type>".to_owned(),
            };
            let target = at(spec, &[field, "target"]);
            let current = statuses
                .get(i)
                .map(|st| at(st, &[field, "current"]))
                .unwrap_or(&Value::Null);
            let prefix = match kind {
                "Resource" | "ContainerResource" => format!("{}: ", s(spec, &[field, "name"])),
                _ => String::new(),
            };
            let avg_value = at(target, &["averageValue"]);
            if kind == "Pods" || !avg_value.is_null() {
                let cur = match at(current, &["averageValue"]) {
                    Value::Null => "<unknown>".to_owned(),
                    v => quantity(v),
                };
                let avg = if matches!(kind, "External" | "Object") {
                    " (avg)"
                } else {
                    ""
                };
                format!("{prefix}{cur}/{}{avg}", quantity(avg_value))
            } else if matches!(kind, "Resource" | "ContainerResource") {
                let cur = match at(current, &["averageUtilization"]).as_i64() {
                    Some(c) => format!("{c}%"),
                    None => "<unknown>".to_owned(),
                };
                let tgt = match at(target, &["averageUtilization"]).as_i64() {
                    Some(t) => format!("{t}%"),
                    None => "<auto>".to_owned(),
                };
                format!("{prefix}{cur}/{tgt}")
            } else {
                let cur = match at(current, &["value"]) {
                    Value::Null => "<unknown>".to_owned(),
                    v => quantity(v),
                };
                format!("{cur}/{}", quantity(at(target, &["value"])))
            }
        })
        .collect();
    let max = 2;
    if list.len() > max {
        format!("{} + {} more...", list[..max].join(", "), list.len() - max)
    } else {
        list.join(", ")
    }
}

/// kubectl's columns of a PodDisruptionBudget.
pub static POD_DISRUPTION_BUDGET: Printer = Printer {
    columns: &[
        NAME,
        col("Min Available", "string", "The minimum number of pods that must be available simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
        col("Max Unavailable", "string", "The maximum number of pods that may be unavailable simultaneously.  This can be either an integer or a string specifying a percentage, e.g. \"28%\"."),
        col("Allowed Disruptions", "integer", "Number of pod disruptions that are currently allowed."),
        AGE,
    ],
    cells: |o, now| {
        let bound = |field: &str| match at(o, &["spec", field]) {
            Value::Number(n) => n.to_string(),
            Value::String(s) => s.clone(),
            _ => "N/A".to_owned(),
        };
        vec![
            super::cells::name(o),
            Value::from(bound("minAvailable")),
            Value::from(bound("maxUnavailable")),
            Value::from(int(o, &["status", "disruptionsAllowed"])),
            super::cells::age(o, now),
        ]
    },
};

/// kubectl's columns of a PriorityClass.
pub static PRIORITY_CLASS: Printer = Printer {
    columns: &[
        NAME,
        col("Value", "integer", "value represents the integer value of this priority class. This is the actual priority that pods receive when they have the name of this class in their pod spec."),
        col("Global-Default", "boolean", "globalDefault specifies whether this PriorityClass should be considered as the default priority for pods that do not have any priority class. Only one PriorityClass can be marked as `globalDefault`. However, if more than one PriorityClasses exists with their `globalDefault` field set to true, the smallest value of such global default PriorityClasses will be used as the default priority."),
        AGE,
        col("PreemptionPolicy", "string", "preemptionPolicy is the Policy for preempting pods with lower priority. One of Never, PreemptLowerPriority. Defaults to PreemptLowerPriority if unset."),
    ],
    cells: |o, now| {
        vec![
            super::cells::name(o),
            Value::from(int(o, &["value"])),
            Value::from(at(o, &["globalDefault"]) == &Value::Bool(true)),
            super::cells::age(o, now),
            Value::from(match s(o, &["preemptionPolicy"]) {
                "" => "PreemptLowerPriority".to_owned(),
                p => p.to_owned(),
            }),
        ]
    },
};
