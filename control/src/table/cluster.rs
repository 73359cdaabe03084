//! Printers of cluster kinds: namespaces, nodes (STATUS from the Ready condition, ROLES from
//! `node-role.kubernetes.io/*` labels), events (core/v1 and events.k8s.io/v1 — kube-apiserver
//! prints both with the same columns), leases and CertificateSigningRequests (CONDITION as
//! kube-apiserver's `extractCSRStatus`: Denied/Approved/Pending, then Failed and Issued) and
//! ComponentStatuses.

use serde_json::Value;
use time::OffsetDateTime;

use super::cells::{
    age, arr, at, col, int, name, s, since, timestamp, wide, Column, AGE, NAME, NAME_DESCRIPTION,
};
use super::Printer;

pub static NAMESPACE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(s(o, &["status", "phase"])),
            age(o, now),
        ]
    },
};

/// kube's `printComponentStatus`: STATUS from the Healthy condition, its message and error.
pub static COMPONENT_STATUS: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "Status of the component conditions"),
        col("Message", "string", "Message of the component conditions"),
        col("Error", "string", "Error of the component conditions"),
    ],
    cells: |o, _| {
        let healthy = arr(o, &["conditions"])
            .iter()
            .find(|c| s(c, &["type"]) == "Healthy");
        let status = match healthy.map(|c| s(c, &["status"])) {
            Some("True") => "Healthy",
            Some(_) => "Unhealthy",
            None => "Unknown",
        };
        let field = |f: &str| Value::from(healthy.map_or("", |c| s(c, &[f])));
        vec![
            name(o),
            Value::from(status),
            field("message"),
            field("error"),
        ]
    },
};

pub static NODE: Printer = Printer {
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide("Internal-IP", "string", "List of addresses reachable to the node."),
        wide("External-IP", "string", "List of addresses reachable to the node."),
        wide("OS-Image", "string", "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy))."),
        wide("Kernel-Version", "string", "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64)."),
        wide("Container-Runtime", "string", "ContainerRuntime Version reported by the node through runtime remote API (e.g. containerd://1.4.2)."),
    ],
    cells: node,
};

fn node(o: &Value, now: OffsetDateTime) -> Vec<Value> {
    let mut status: Vec<&str> = match arr(o, &["status", "conditions"])
        .iter()
        .rfind(|c| s(c, &["type"]) == "Ready")
    {
        Some(c) if s(c, &["status"]) == "True" => vec!["Ready"],
        Some(_) => vec!["NotReady"],
        None => vec!["Unknown"],
    };
    if at(o, &["spec", "unschedulable"]).as_bool() == Some(true) {
        status.push("SchedulingDisabled");
    }
    let mut roles: Vec<&str> = Vec::new();
    for (key, value) in at(o, &["metadata", "labels"])
        .as_object()
        .into_iter()
        .flatten()
    {
        let role = match key.strip_prefix("node-role.kubernetes.io/") {
            Some(role) => role,
            None if key == "kubernetes.io/role" => value.as_str().unwrap_or(""),
            None => continue,
        };
        if !role.is_empty() && !roles.contains(&role) {
            roles.push(role);
        }
    }
    roles.sort_unstable();
    let address = |kind: &str| {
        arr(o, &["status", "addresses"])
            .iter()
            .find(|a| s(a, &["type"]) == kind)
            .map_or("<none>", |a| s(a, &["address"]))
    };
    let info = |k: &str| match s(o, &["status", "nodeInfo", k]) {
        "" => "<unknown>",
        v => v,
    };
    vec![
        name(o),
        Value::from(status.join(",")),
        Value::from(if roles.is_empty() {
            "<none>".to_owned()
        } else {
            roles.join(",")
        }),
        age(o, now),
        Value::from(s(o, &["status", "nodeInfo", "kubeletVersion"])),
        Value::from(address("InternalIP")),
        Value::from(address("ExternalIP")),
        Value::from(info("osImage")),
        Value::from(info("kernelVersion")),
        Value::from(info("containerRuntimeVersion")),
    ]
}

const EVENT_COLUMNS: &[Column] = &[
    col("Last Seen", "string", "The time at which the most recent occurrence of this event was recorded."),
    col("Type", "string", "Type of this event (Normal, Warning), new types could be added in the future"),
    col("Reason", "string", "This should be a short, machine understandable string that gives the reason for the transition into the object's current status."),
    col("Object", "string", "The object that this event is about."),
    wide("Subobject", "string", "If referring to a piece of an object instead of an entire object, this string should contain a valid JSON/Go field access statement, such as desiredState.manifest.containers[2]."),
    wide("Source", "string", "The component reporting this event. Should be a short machine understandable string."),
    col("Message", "string", "A human-readable description of the status of this operation."),
    wide("First Seen", "string", "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)"),
    wide("Count", "string", "The number of times this event has occurred."),
    Column {
        name: "Name",
        kind: "string",
        format: "name",
        priority: 1,
        description: NAME_DESCRIPTION,
    },
];

/// The fields of an Event the printer reads (the stored core v1 names; events.k8s.io/v1
/// Events are printed from the same stored objects).
struct EventFields {
    first: &'static str,
    last: &'static str,
    count: &'static str,
    regarding: &'static str,
    message: &'static str,
    source: &'static str,
}

pub static EVENT: Printer = Printer {
    columns: EVENT_COLUMNS,
    cells: |o, now| {
        event(
            o,
            now,
            &EventFields {
                first: "firstTimestamp",
                last: "lastTimestamp",
                count: "count",
                regarding: "involvedObject",
                message: "message",
                source: "source",
            },
        )
    },
};

fn event(o: &Value, now: OffsetDateTime, f: &EventFields) -> Vec<Value> {
    let first_ts = timestamp(o, &[f.first]).or_else(|| timestamp(o, &["eventTime"]));
    let first = since(first_ts, now);
    let mut last = match timestamp(o, &[f.last]) {
        Some(ts) => since(Some(ts), now),
        None => first.clone(),
    };
    let mut count = int(o, &[f.count]);
    let series = at(o, &["series"]);
    if series.is_object() {
        last = since(timestamp(series, &["lastObservedTime"]), now);
        count = int(series, &["count"]);
    } else if count == 0 {
        count = 1;
    }
    let kind = s(o, &[f.regarding, "kind"]).to_lowercase();
    let object = match s(o, &[f.regarding, "name"]) {
        "" => kind,
        n => format!("{kind}/{n}"),
    };
    let component = match s(o, &[f.source, "component"]) {
        "" => s(o, &["reportingController"]),
        c => c,
    };
    let host = match s(o, &[f.source, "host"]) {
        "" => s(o, &["reportingInstance"]),
        h => h,
    };
    let source = if host.is_empty() {
        component.to_owned()
    } else {
        format!("{component}, {host}")
    };
    vec![
        Value::from(last),
        Value::from(s(o, &["type"])),
        Value::from(s(o, &["reason"])),
        Value::from(object),
        Value::from(s(o, &[f.regarding, "fieldPath"])),
        Value::from(source),
        Value::from(s(o, &[f.message]).trim()),
        Value::from(first),
        Value::from(count),
        name(o),
    ]
}

pub static LEASE: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    cells: |o, now| {
        vec![
            name(o),
            Value::from(s(o, &["spec", "holderIdentity"])),
            age(o, now),
        ]
    },
};

pub static CSR: Printer = Printer {
    columns: &[
        NAME,
        AGE,
        col(
            "SignerName",
            "string",
            "Name of the signer requested for the certificate",
        ),
        col(
            "Requestor",
            "string",
            "Name of the user who requested the certificate",
        ),
        col(
            "RequestedDuration",
            "string",
            "The requested duration of the issued certificate",
        ),
        col(
            "Condition",
            "string",
            "Conditions of the certificate signing request",
        ),
    ],
    cells: |o, now| {
        let duration = match at(o, &["spec", "expirationSeconds"]).as_i64() {
            Some(seconds) => super::cells::human_duration(time::Duration::seconds(seconds)),
            None => "<none>".to_owned(),
        };
        vec![
            name(o),
            age(o, now),
            Value::from(s(o, &["spec", "signerName"])),
            Value::from(s(o, &["spec", "username"])),
            Value::from(duration),
            Value::from(csr_condition(o)),
        ]
    },
};

fn csr_condition(o: &Value) -> String {
    let has = |kind: &str| {
        arr(o, &["status", "conditions"])
            .iter()
            .any(|c| c["type"] == kind && c["status"] != "False")
    };
    let mut out = if has("Denied") {
        "Denied".to_owned()
    } else if has("Approved") {
        "Approved".to_owned()
    } else {
        "Pending".to_owned()
    };
    if has("Failed") {
        out.push_str(",Failed");
    }
    if !s(o, &["status", "certificate"]).is_empty() {
        out.push_str(",Issued");
    }
    out
}
