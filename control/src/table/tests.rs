//! The printers against realistic objects, compared with what kube-apiserver prints for them.

use serde_json::{json, Value};
use time::macros::datetime;
use time::OffsetDateTime;

use super::*;
use crate::kinds::{self, RESOURCES};

const NOW: OffsetDateTime = datetime!(2026-12-02 12:00:00 UTC);

fn options() -> TableOptions {
    TableOptions {
        include_object: IncludeObject::Metadata,
        no_headers: false,
        now: NOW,
    }
}

fn resource(group: &str, version: &str, plural: &str) -> &'static Resource {
    kinds::find(group, version, plural).expect("resource")
}

/// The cells of one object, keyed by column name.
fn row(group: &str, plural: &str, object: Value) -> Vec<(String, Value)> {
    let version = if group == "autoscaling" { "v2" } else { "v1" };
    let table = to_table(resource(group, version, plural), &[object], &options());
    let names = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_owned());
    names
        .zip(
            table["rows"][0]["cells"]
                .as_array()
                .unwrap()
                .iter()
                .cloned(),
        )
        .collect()
}

fn cell(row: &[(String, Value)], name: &str) -> Value {
    row.iter()
        .find(|(n, _)| n == name)
        .unwrap_or_else(|| panic!("no column {name}"))
        .1
        .clone()
}

fn meta(name: &str) -> Value {
    json!({"name": name, "namespace": "default", "uid": "u1", "resourceVersion": "7",
           "creationTimestamp": "2026-12-02T11:56:40Z"})
}

#[test]
fn every_kind_prints_one_cell_per_column_even_for_an_empty_object() {
    for r in RESOURCES {
        for object in [
            json!({}),
            json!({"metadata": null, "spec": 3, "status": []}),
        ] {
            let table = to_table(r, &[object], &options());
            let columns = table["columnDefinitions"].as_array().unwrap().len();
            let cells = table["rows"][0]["cells"].as_array().unwrap().len();
            assert_eq!(columns, cells, "{}", r.kind);
            assert!(columns >= 2, "{}", r.kind);
        }
    }
}

#[test]
fn a_crash_looping_pod_shows_the_waiting_reason_and_its_last_restart() {
    let pod = json!({
        "metadata": meta("web-1"),
        "spec": {"nodeName": "n1", "containers": [{"name": "app"}, {"name": "side"}]},
        "status": {
            "phase": "Running",
            "podIP": "10.1.0.5", "podIPs": [{"ip": "10.1.0.5"}],
            "containerStatuses": [
                {"name": "app", "ready": false, "restartCount": 3,
                 "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1, "finishedAt": "2026-12-02T11:55:00Z"}}},
                {"name": "side", "ready": true, "restartCount": 0, "state": {"running": {}}},
            ],
        },
    });
    let r = row("", "pods", pod);
    assert_eq!(cell(&r, "Name"), "web-1");
    assert_eq!(cell(&r, "Ready"), "1/2");
    assert_eq!(cell(&r, "Status"), "CrashLoopBackOff");
    assert_eq!(cell(&r, "Restarts"), "3 (5m ago)");
    assert_eq!(cell(&r, "Age"), "3m20s");
    assert_eq!(cell(&r, "IP"), "10.1.0.5");
    assert_eq!(cell(&r, "Node"), "n1");
    assert_eq!(cell(&r, "Nominated Node"), "<none>");
    assert_eq!(cell(&r, "Readiness Gates"), "<none>");
}

#[test]
fn init_containers_terminating_and_completed_pods() {
    let init = json!({
        "metadata": meta("init"),
        "spec": {"initContainers": [{"name": "a"}, {"name": "b"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0}}},
            {"name": "b", "state": {"running": {}}},
        ], "containerStatuses": [{"name": "c", "state": {"waiting": {"reason": "PodInitializing"}}}]},
    });
    let r = row("", "pods", init);
    assert_eq!(cell(&r, "Status"), "Init:1/2");
    assert_eq!(cell(&r, "Ready"), "0/1");
    assert_eq!(cell(&r, "IP"), "<none>");

    let failed_init = json!({
        "metadata": meta("bad"),
        "spec": {"initContainers": [{"name": "a"}], "containers": [{"name": "c"}]},
        "status": {"phase": "Pending", "initContainerStatuses": [
            {"name": "a", "restartCount": 2, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]},
    });
    let r = row("", "pods", failed_init);
    assert_eq!(cell(&r, "Status"), "Init:CrashLoopBackOff");
    assert_eq!(cell(&r, "Restarts"), "2");

    let mut terminating = json!({
        "metadata": meta("bye"),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Running", "containerStatuses": [
            {"name": "c", "ready": true, "state": {"running": {}}}],
            "conditions": [{"type": "Ready", "status": "True"}]},
    });
    terminating["metadata"]["deletionTimestamp"] = json!("2026-12-02T11:59:00Z");
    let r = row("", "pods", terminating);
    assert_eq!(cell(&r, "Status"), "Terminating");
    assert_eq!(cell(&r, "Ready"), "1/1");

    let completed = json!({
        "metadata": meta("job-x"),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Succeeded", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]},
    });
    assert_eq!(cell(&row("", "pods", completed), "Status"), "Completed");

    let oom = json!({
        "metadata": meta("oom"),
        "spec": {"containers": [{"name": "c"}]},
        "status": {"phase": "Failed", "containerStatuses": [
            {"name": "c", "state": {"terminated": {"exitCode": 137}}}]},
    });
    assert_eq!(cell(&row("", "pods", oom), "Status"), "ExitCode:137");
}

#[test]
fn deployments_replicasets_statefulsets_daemonsets() {
    let template = json!({"spec": {"containers": [
        {"name": "web", "image": "nginx:1.27"}, {"name": "log", "image": "busybox"}]}});
    let r = row(
        "apps",
        "deployments",
        json!({
            "metadata": meta("web"),
            "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"}}, "template": template},
            "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2},
        }),
    );
    let got: Vec<Value> = r.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        got,
        [
            json!("web"),
            json!("2/3"),
            json!(3),
            json!(2),
            json!("3m20s"),
            json!("web,log"),
            json!("nginx:1.27,busybox"),
            json!("app=web")
        ]
    );
    let r = row(
        "apps",
        "replicasets",
        json!({
            "metadata": meta("web-5d4f"), "spec": {"replicas": 3, "template": template},
            "status": {"replicas": 3, "readyReplicas": 1},
        }),
    );
    assert_eq!(
        (cell(&r, "Desired"), cell(&r, "Current"), cell(&r, "Ready")),
        (json!(3), json!(3), json!(1))
    );
    assert_eq!(cell(&r, "Selector"), "<none>");
    let r = row(
        "apps",
        "statefulsets",
        json!({"metadata": meta("db"), "spec": {"replicas": 2}}),
    );
    assert_eq!(cell(&r, "Ready"), "0/2");
    let r = row(
        "apps",
        "daemonsets",
        json!({
            "metadata": meta("agent"),
            "spec": {"template": {"spec": {"nodeSelector": {"kubernetes.io/os": "linux"}}}},
            "status": {"desiredNumberScheduled": 2, "numberReady": 1},
        }),
    );
    assert_eq!(cell(&r, "Desired"), 2);
    assert_eq!(cell(&r, "Node Selector"), "kubernetes.io/os=linux");
}

#[test]
fn jobs_show_status_completions_and_duration() {
    let r = row(
        "batch",
        "jobs",
        json!({
            "metadata": meta("pi"), "spec": {"completions": 1},
            "status": {"succeeded": 1, "startTime": "2026-12-02T11:57:00Z",
                       "completionTime": "2026-12-02T11:57:42Z",
                       "conditions": [{"type": "Complete", "status": "True"}]},
        }),
    );
    assert_eq!(cell(&r, "Status"), "Complete");
    assert_eq!(cell(&r, "Completions"), "1/1");
    assert_eq!(cell(&r, "Duration"), "42s");
    let r = row(
        "batch",
        "jobs",
        json!({
            "metadata": meta("par"), "spec": {"parallelism": 3},
            "status": {"startTime": "2026-12-02T11:50:00Z"},
        }),
    );
    assert_eq!(cell(&r, "Status"), "Running");
    assert_eq!(cell(&r, "Completions"), "0/1 of 3");
    assert_eq!(cell(&r, "Duration"), "10m");
}

#[test]
fn services_print_ports_and_external_ips() {
    let r = row(
        "",
        "services",
        json!({
            "metadata": meta("web"),
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"],
                     "selector": {"app": "web"},
                     "ports": [{"port": 80, "nodePort": 30080, "protocol": "TCP"},
                               {"port": 53, "protocol": "UDP"}]},
        }),
    );
    let got: Vec<Value> = r.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        got,
        [
            json!("web"),
            json!("NodePort"),
            json!("10.96.0.10"),
            json!("<none>"),
            json!("80:30080/TCP,53/UDP"),
            json!("3m20s"),
            json!("app=web")
        ]
    );
    let r = row(
        "",
        "services",
        json!({
        "metadata": meta("lb"), "spec": {"type": "LoadBalancer", "clusterIP": "None"}}),
    );
    assert_eq!(cell(&r, "External-IP"), "<pending>");
    assert_eq!(cell(&r, "Cluster-IP"), "None");
    assert_eq!(cell(&r, "Port(s)"), "<none>");
    assert_eq!(cell(&r, "Selector"), "<none>");
    let r = row(
        "",
        "services",
        json!({
        "metadata": meta("lb"), "spec": {"type": "LoadBalancer", "externalIPs": ["1.2.3.4"]},
        "status": {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}, {"hostname": "lb.example"}]}}}),
    );
    assert_eq!(cell(&r, "External-IP"), "5.6.7.8,lb.example,1.2.3.4");
    let r = row(
        "",
        "services",
        json!({
        "metadata": meta("ext"), "spec": {"type": "ExternalName", "externalName": "db.example"}}),
    );
    assert_eq!(cell(&r, "External-IP"), "db.example");
}

#[test]
fn endpoints_slices_and_ingresses() {
    let r = row(
        "",
        "endpoints",
        json!({"metadata": meta("web"), "subsets": [
        {"addresses": [{"ip": "10.1.0.5"}, {"ip": "10.1.0.6"}, {"ip": "10.1.0.7"}],
         "ports": [{"port": 8080}, {"port": 9090}]}]}),
    );
    assert_eq!(
        cell(&r, "Endpoints"),
        "10.1.0.5:8080,10.1.0.6:8080,10.1.0.7:8080 + 3 more..."
    );
    assert_eq!(
        cell(
            &row("", "endpoints", json!({"metadata": meta("none")})),
            "Endpoints"
        ),
        "<none>"
    );
    let r = row(
        "discovery.k8s.io",
        "endpointslices",
        json!({
        "metadata": meta("web-abc"), "addressType": "IPv4",
        "ports": [{"port": 8080, "name": "http"}],
        "endpoints": [{"addresses": ["10.1.0.5"]}, {"addresses": ["10.1.0.6"]}]}),
    );
    assert_eq!(cell(&r, "AddressType"), "IPv4");
    assert_eq!(cell(&r, "Ports"), "8080");
    assert_eq!(cell(&r, "Endpoints"), "10.1.0.5,10.1.0.6");
    let r = row(
        "discovery.k8s.io",
        "endpointslices",
        json!({"metadata": meta("empty"), "addressType": "IPv4"}),
    );
    assert_eq!(
        (cell(&r, "Ports"), cell(&r, "Endpoints")),
        (json!("<unset>"), json!("<unset>"))
    );
    let r = row(
        "networking.k8s.io",
        "ingresses",
        json!({
        "metadata": meta("web"),
        "spec": {"ingressClassName": "bosun", "rules": [{"host": "a.example"}, {"host": "b.example"}],
                 "tls": [{"hosts": ["a.example"]}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.1"}]}}}),
    );
    let got: Vec<Value> = r.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        got,
        [
            json!("web"),
            json!("bosun"),
            json!("a.example,b.example"),
            json!("192.0.2.1"),
            json!("80, 443"),
            json!("3m20s")
        ]
    );
    let r = row(
        "networking.k8s.io",
        "ingresses",
        json!({"metadata": meta("any"), "spec": {"rules": [{}]}}),
    );
    assert_eq!(
        (cell(&r, "Class"), cell(&r, "Hosts")),
        (json!("<none>"), json!("*"))
    );
}

#[test]
fn config_and_storage_kinds() {
    let r = row(
        "",
        "configmaps",
        json!({"metadata": meta("cfg"), "data": {"a": "1", "b": "2"}, "binaryData": {"c": ""}}),
    );
    assert_eq!(cell(&r, "Data"), 3);
    let r = row(
        "",
        "secrets",
        json!({"metadata": meta("s"), "type": "kubernetes.io/tls", "data": {"tls.crt": "", "tls.key": ""}}),
    );
    assert_eq!(
        (cell(&r, "Type"), cell(&r, "Data")),
        (json!("kubernetes.io/tls"), json!(2))
    );
    let r = row(
        "storage.k8s.io",
        "storageclasses",
        json!({
        "metadata": {"name": "local", "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "bosun.io/local"}),
    );
    let got: Vec<Value> = r.iter().map(|(_, v)| v.clone()).collect();
    assert_eq!(
        got,
        [
            json!("local (default)"),
            json!("bosun.io/local"),
            json!("Delete"),
            json!("Immediate"),
            json!(false),
            json!("<unknown>")
        ]
    );
    let r = row(
        "",
        "persistentvolumeclaims",
        json!({
        "metadata": meta("data"),
        "spec": {"volumeName": "pv1", "storageClassName": "local"},
        "status": {"phase": "Bound", "capacity": {"storage": "1Gi"},
                   "accessModes": ["ReadWriteMany", "ReadWriteOnce"]}}),
    );
    assert_eq!(cell(&r, "Access Modes"), "RWO,RWX");
    assert_eq!(cell(&r, "Capacity"), "1Gi");
    assert_eq!(cell(&r, "VolumeAttributesClass"), "<unset>");
}

#[test]
fn nodes_events_namespaces_leases_hpas() {
    let r = row(
        "",
        "nodes",
        json!({
        "metadata": {"name": "n1", "creationTimestamp": "2026-11-30T09:00:00Z",
                     "labels": {"node-role.kubernetes.io/control-plane": "", "kubernetes.io/role": "worker"}},
        "spec": {"unschedulable": true},
        "status": {"conditions": [{"type": "Ready", "status": "True"}],
                   "addresses": [{"type": "InternalIP", "address": "192.0.2.10"}],
                   "nodeInfo": {"kubeletVersion": "v1.32.0-bosun"}}}),
    );
    assert_eq!(cell(&r, "Status"), "Ready,SchedulingDisabled");
    assert_eq!(cell(&r, "Roles"), "control-plane,worker");
    assert_eq!(cell(&r, "Age"), "2d3h");
    assert_eq!(cell(&r, "Internal-IP"), "192.0.2.10");
    assert_eq!(cell(&r, "External-IP"), "<none>");
    assert_eq!(cell(&r, "OS-Image"), "<unknown>");

    let event = json!({
        "metadata": meta("web-1.17c"), "type": "Warning", "reason": "BackOff",
        "involvedObject": {"kind": "Pod", "name": "web-1", "fieldPath": "spec.containers{app}"},
        "message": "Back-off restarting failed container\n", "source": {"component": "kubelet", "host": "n1"},
        "firstTimestamp": "2026-12-02T11:00:00Z", "lastTimestamp": "2026-12-02T11:59:30Z", "count": 7});
    let r = row("", "events", event);
    let shown: Vec<&str> = ["Last Seen", "Type", "Reason", "Object", "Message"]
        .into_iter()
        .collect();
    let table = to_table(resource("", "v1", "events"), &[json!({})], &options());
    let default_columns: Vec<&str> = table["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["priority"] == 0)
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(default_columns, shown);
    assert_eq!(cell(&r, "Last Seen"), "30s");
    assert_eq!(cell(&r, "Object"), "pod/web-1");
    assert_eq!(cell(&r, "Message"), "Back-off restarting failed container");
    assert_eq!(cell(&r, "Source"), "kubelet, n1");
    assert_eq!(cell(&r, "First Seen"), "60m");
    assert_eq!(cell(&r, "Count"), 7);
    let v1 = to_table(
        resource("events.k8s.io", "v1", "events"),
        &[json!({
        "metadata": meta("e"), "type": "Normal", "reason": "Scheduled", "message": "assigned",
        "involvedObject": {"kind": "Pod", "name": "p"}, "eventTime": "2026-12-02T11:59:00.000000Z"})],
        &options(),
    );
    assert_eq!(v1["rows"][0]["cells"][0], "60s");
    assert_eq!(v1["rows"][0]["cells"][3], "pod/p");
    assert_eq!(v1["rows"][0]["cells"][6], "assigned");

    let r = row(
        "",
        "namespaces",
        json!({"metadata": meta("prod"), "status": {"phase": "Active"}}),
    );
    assert_eq!(cell(&r, "Status"), "Active");
    let r = row(
        "coordination.k8s.io",
        "leases",
        json!({"metadata": meta("n1"), "spec": {"holderIdentity": "n1"}}),
    );
    assert_eq!(cell(&r, "Holder"), "n1");

    let r = row(
        "autoscaling",
        "horizontalpodautoscalers",
        json!({
        "metadata": meta("web"),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "minReplicas": 1, "maxReplicas": 5,
                 "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]},
        "status": {"currentReplicas": 2, "currentMetrics": [{"type": "Resource", "resource": {"name": "cpu", "current": {"averageUtilization": 35}}}]}}),
    );
    assert_eq!(cell(&r, "Reference"), "Deployment/web");
    assert_eq!(cell(&r, "Targets"), "cpu: 35%/80%");
    assert_eq!(
        (
            cell(&r, "MinPods"),
            cell(&r, "MaxPods"),
            cell(&r, "Replicas")
        ),
        (json!("1"), json!(5), json!(2))
    );
    let v1 = to_table(
        resource("autoscaling", "v1", "horizontalpodautoscalers"),
        &[json!({
        "metadata": meta("web"),
        "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 3,
                 "targetCPUUtilizationPercentage": 50}})],
        &options(),
    );
    assert_eq!(v1["rows"][0]["cells"][2], "cpu: <unknown>/50%");
    assert_eq!(v1["rows"][0]["cells"][3], "<unset>");
}

#[test]
fn include_object_and_headers() {
    let pods = resource("", "v1", "pods");
    let object = json!({"apiVersion": "v1", "kind": "Pod", "metadata": meta("p"), "spec": {}});
    let table = to_table(pods, std::slice::from_ref(&object), &options());
    assert_eq!(table["kind"], "Table");
    assert_eq!(table["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(table["metadata"], json!({}));
    assert_eq!(table["columnDefinitions"][0]["format"], "name");
    assert_eq!(table["columnDefinitions"][5]["priority"], 1);
    assert_eq!(
        table["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta("p")})
    );
    let mut opts = options();
    opts.include_object = IncludeObject::Object;
    opts.no_headers = true;
    let table = to_table(pods, std::slice::from_ref(&object), &opts);
    assert_eq!(table["rows"][0]["object"], object);
    assert!(table.get("columnDefinitions").is_none());
    opts.include_object = IncludeObject::None;
    assert!(to_table(pods, &[object], &opts)["rows"][0]
        .get("object")
        .is_none());
    assert_eq!(IncludeObject::parse(""), Some(IncludeObject::Metadata));
    assert_eq!(IncludeObject::parse("Object"), Some(IncludeObject::Object));
    assert_eq!(IncludeObject::parse("All"), None);
    assert_eq!(to_table(pods, &[], &options())["rows"], json!([]));
}
