//! The defaults Kubernetes fills in when it decodes an object (`pkg/apis/*/v1/defaults.go`):
//! replicas, rollout strategies, a ReplicationController's selector and labels, history limits, the pod template's restart and DNS policies,
//! container pull policies and termination-message settings, probes' timeouts, periods and
//! thresholds, httpGet paths and schemes, volume file modes and token lifetimes (`pod.rs`), Service types and port
//! protocols, the Secret type, CronJobs' policies and history limits, volume modes, a
//! PersistentVolume's reclaim policy (Retain), a StorageClass's (Delete) and binding mode, a HorizontalPodAutoscaler's minimum, CPU target and scaling rules. Applied on every write, as Kubernetes does; a field already set
//! is never changed. Pure functions on JSON.

use serde_json::{json, Value};

use crate::kinds::Resource;

mod json;
mod pod;

use json::{child, default};
use pod::{host_network_ports, pod_spec, requests_from_limits, template};

/// Fills in the defaults of a Pod. Also for a pod stored before a default was added, so an
/// update is compared with it as kube decodes it (defaulted).
pub fn pod(object: &mut Value) {
    if let Some(spec) = child(object, "spec") {
        pod_spec(spec);
        requests_from_limits(spec);
        // kube's SetDefaults_Pod, not SetDefaults_PodSpec: templates do not show them.
        default(spec, "enableServiceLinks", json!(true));
        host_network_ports(spec);
    }
}

/// Fills in the defaults of a workload's pod template (its `spec`).
pub fn pod_template(template: &mut Value) {
    if let Some(spec) = child(template, "spec") {
        pod_spec(spec);
    }
}

/// Fills in the defaults of `object`, a `resource`.
pub fn apply(object: &mut Value, resource: &Resource) {
    match (resource.group, resource.kind) {
        ("apps", "Deployment") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "progressDeadlineSeconds", json!(600));
                if let Some(strategy) = child(spec, "strategy") {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate" {
                        let rolling = json!({"maxUnavailable": "25%", "maxSurge": "25%"});
                        default(strategy, "rollingUpdate", rolling);
                    }
                }
                template(spec);
            }
        }
        ("apps", "ReplicaSet") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        ("", "ReplicationController") => replication_controller(object),
        ("apps", "StatefulSet") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "replicas", json!(1));
                default(spec, "revisionHistoryLimit", json!(10));
                default(spec, "podManagementPolicy", json!("OrderedReady"));
                let retention = json!({"whenDeleted": "Retain", "whenScaled": "Retain"});
                default(spec, "persistentVolumeClaimRetentionPolicy", retention);
                if let Some(strategy) = child(spec, "updateStrategy") {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate" {
                        default(strategy, "rollingUpdate", json!({"partition": 0}));
                    }
                }
                template(spec);
            }
        }
        ("apps", "DaemonSet") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "revisionHistoryLimit", json!(10));
                if let Some(strategy) = child(spec, "updateStrategy") {
                    default(strategy, "type", json!("RollingUpdate"));
                    if strategy["type"] == "RollingUpdate" {
                        let rolling = json!({"maxUnavailable": 1, "maxSurge": 0});
                        default(strategy, "rollingUpdate", rolling);
                    }
                }
                template(spec);
            }
        }
        ("batch", "Job") => {
            if let Some(spec) = child(object, "spec") {
                if spec["completions"].is_null() && spec["parallelism"].is_null() {
                    default(spec, "completions", json!(1));
                }
                default(spec, "parallelism", json!(1));
                default(spec, "backoffLimit", json!(6));
                default(spec, "completionMode", json!("NonIndexed"));
                default(spec, "suspend", json!(false));
                let replacement = match spec["podFailurePolicy"].is_null() {
                    true => "TerminatingOrFailed",
                    false => "Failed",
                };
                default(spec, "podReplacementPolicy", json!(replacement));
                template(spec);
            }
        }
        ("batch", "CronJob") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "concurrencyPolicy", json!("Allow"));
                default(spec, "suspend", json!(false));
                default(spec, "successfulJobsHistoryLimit", json!(3));
                default(spec, "failedJobsHistoryLimit", json!(1));
                if let Some(job) = child(spec, "jobTemplate").and_then(|t| child(t, "spec")) {
                    template(job);
                }
            }
        }
        ("", "Pod") => pod(object),
        ("autoscaling", "HorizontalPodAutoscaler") => {
            if let Some(spec) = child(object, "spec") {
                autoscaler(spec, resource.version);
            }
        }
        ("", "LimitRange") => super::limit_range::defaults(object),
        ("", "Service") => {
            if let Some(spec) = child(object, "spec") {
                service(spec);
            }
        }
        ("", "Secret") => default(object, "type", json!("Opaque")),
        ("", "PersistentVolume") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "persistentVolumeReclaimPolicy", json!("Retain"));
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("", "PersistentVolumeClaim") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "volumeMode", json!("Filesystem"));
            }
        }
        ("storage.k8s.io", "StorageClass") => {
            default(object, "reclaimPolicy", json!("Delete"));
            default(object, "volumeBindingMode", json!("Immediate"));
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => {
            if let Some(spec) = child(object, "spec") {
                default(spec, "failurePolicy", json!("Fail"));
                let constraints = spec.get_mut("matchConstraints").filter(|c| c.is_object());
                if let Some(constraints) = constraints {
                    match_resources(constraints);
                }
            }
        }
        (
            "admissionregistration.k8s.io",
            kind @ ("MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration"),
        ) => {
            let mutating = kind == "MutatingWebhookConfiguration";
            let webhooks = object.get_mut("webhooks").and_then(Value::as_array_mut);
            for webhook in webhooks.into_iter().flatten() {
                webhook_defaults(webhook, mutating);
            }
        }
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            let resources = object
                .get_mut("spec")
                .and_then(|spec| spec.get_mut("matchResources"))
                .filter(|r| r.is_object());
            if let Some(resources) = resources {
                match_resources(resources);
            }
        }
        _ => {}
    }
}

/// kube's HorizontalPodAutoscaler defaults: at least one replica; at autoscaling/v2, a CPU
/// target of 80% when no metric is named, and a `behavior` that is there completed with the
/// default scaling rules (up: 4 pods or 100% per 15 s, no stabilization; down: 100% per 15 s).
fn autoscaler(spec: &mut Value, version: &str) {
    default(spec, "minReplicas", json!(1));
    if version != "v2" {
        return;
    }
    if spec["metrics"].as_array().is_none_or(Vec::is_empty) {
        spec["metrics"] = json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}]);
    }
    let Some(behavior) = spec.get_mut("behavior").filter(|b| b.is_object()) else {
        return;
    };
    let up = json!({"stabilizationWindowSeconds": 0, "selectPolicy": "Max", "policies": [
        {"type": "Pods", "value": 4, "periodSeconds": 15},
        {"type": "Percent", "value": 100, "periodSeconds": 15}]});
    let down = json!({"selectPolicy": "Max", "policies": [
        {"type": "Percent", "value": 100, "periodSeconds": 15}]});
    for (direction, rules) in [("scaleUp", up), ("scaleDown", down)] {
        let Some(slot) = child(behavior, direction) else {
            continue;
        };
        if let Value::Object(defaults) = rules {
            for (key, value) in defaults {
                default(slot, &key, value);
            }
        }
    }
}

/// kube's defaults of a policy's `matchConstraints` or a binding's `matchResources`.
fn match_resources(resources: &mut Value) {
    default(resources, "matchPolicy", json!("Equivalent"));
    default(resources, "namespaceSelector", json!({}));
    default(resources, "objectSelector", json!({}));
    for key in ["resourceRules", "excludeResourceRules"] {
        let rules = resources.get_mut(key).and_then(Value::as_array_mut);
        for rule in rules.into_iter().flatten() {
            default(rule, "scope", json!("*"));
        }
    }
}

/// kube's defaults of one webhook of a configuration.
fn webhook_defaults(webhook: &mut Value, mutating: bool) {
    if !webhook.is_object() {
        return;
    }
    default(webhook, "failurePolicy", json!("Fail"));
    default(webhook, "matchPolicy", json!("Equivalent"));
    default(webhook, "namespaceSelector", json!({}));
    default(webhook, "objectSelector", json!({}));
    default(webhook, "timeoutSeconds", json!(10));
    if mutating {
        default(webhook, "reinvocationPolicy", json!("Never"));
    }
    let rules = webhook.get_mut("rules").and_then(Value::as_array_mut);
    for rule in rules.into_iter().flatten() {
        default(rule, "scope", json!("*"));
    }
    let service = webhook
        .get_mut("clientConfig")
        .and_then(|c| c.get_mut("service"))
        .filter(|s| s.is_object());
    if let Some(service) = service {
        default(service, "port", json!(443));
    }
}

/// Defaults that need the uid the server just gave the object: a Job's selector and pod
/// labels (`batch.kubernetes.io/controller-uid`, `job-name`), as kube-apiserver sets them
/// unless `manualSelector` is true.
pub fn with_identity(object: &mut Value, resource: &Resource) {
    if (resource.group, resource.kind) != ("batch", "Job")
        || object["spec"]["manualSelector"] == true
    {
        return;
    }
    let uid = object["metadata"]["uid"].clone();
    let name = object["metadata"]["name"].clone();
    if object["spec"]["selector"].is_null() {
        object["spec"]["selector"] =
            json!({"matchLabels": {"batch.kubernetes.io/controller-uid": uid}});
    }
    let labels = &mut object["spec"]["template"]["metadata"]["labels"];
    for (key, value) in [
        ("batch.kubernetes.io/controller-uid", &uid),
        ("controller-uid", &uid),
        ("batch.kubernetes.io/job-name", &name),
        ("job-name", &name),
    ] {
        if labels.get(key).is_none() {
            labels[key] = value.clone();
        }
    }
}

/// A ReplicationController's selector and labels default to its template's labels.
fn replication_controller(object: &mut Value) {
    let labels = object["spec"]["template"]["metadata"]["labels"].clone();
    let empty = |v: &Value| v.as_object().is_none_or(|m| m.is_empty());
    if !empty(&labels) && object["spec"].is_object() {
        if empty(&object["spec"]["selector"]) {
            object["spec"]["selector"] = labels.clone();
        }
        if object["metadata"].is_object() && empty(&object["metadata"]["labels"]) {
            object["metadata"]["labels"] = labels;
        }
    }
    if let Some(spec) = child(object, "spec") {
        default(spec, "replicas", json!(1));
        template(spec);
    }
}

fn service(spec: &mut Value) {
    default(spec, "type", json!("ClusterIP"));
    default(spec, "sessionAffinity", json!("None"));
    if spec["type"] != "ExternalName" {
        default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    let outside = spec["type"] == "NodePort" || spec["type"] == "LoadBalancer";
    if outside {
        default(spec, "externalTrafficPolicy", json!("Cluster"));
    }
    if spec["type"] == "LoadBalancer" {
        default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if spec["sessionAffinity"] == "ClientIP" {
        let config = json!({"clientIP": {"timeoutSeconds": 10800}});
        default(spec, "sessionAffinityConfig", config);
    }
    if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
            let number = port["port"].clone();
            default(port, "targetPort", number);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn find(group: &str, plural: &str) -> &'static Resource {
        crate::kinds::RESOURCES
            .iter()
            .find(|r| r.group == group && r.plural == plural)
            .unwrap()
    }

    #[test]
    fn a_replication_controller_takes_its_selector_and_labels_from_its_template() {
        let template = json!({"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "c", "image": "i"}]}});
        let mut rc = json!({"metadata": {"name": "web"}, "spec": {"template": template}});
        apply(&mut rc, find("", "replicationcontrollers"));
        assert_eq!(rc["spec"]["selector"], json!({"app": "web"}));
        assert_eq!(rc["metadata"]["labels"], json!({"app": "web"}));
        assert_eq!(rc["spec"]["replicas"], 1);
        assert_eq!(rc["spec"]["template"]["spec"]["restartPolicy"], "Always");
        // What is set stays.
        let mut rc = json!({"metadata": {"name": "web", "labels": {"tier": "x"}},
            "spec": {"replicas": 0, "selector": {"app": "web", "v": "1"}, "template": template}});
        apply(&mut rc, find("", "replicationcontrollers"));
        assert_eq!(rc["spec"]["selector"], json!({"app": "web", "v": "1"}));
        assert_eq!(rc["metadata"]["labels"], json!({"tier": "x"}));
        assert_eq!(rc["spec"]["replicas"], 0);
        // A spec that is no object is left to validation.
        let mut rc = json!({"metadata": {"name": "web"}, "spec": "x"});
        apply(&mut rc, find("", "replicationcontrollers"));
    }

    #[test]
    fn deployments_get_kubernetes_defaults_and_keep_what_is_set() {
        let mut d = json!({"spec": {"replicas": 3, "template": {"spec": {"containers": [
            {"name": "a", "image": "nginx"},
            {"name": "b", "image": "nginx:1.27", "ports": [{"containerPort": 80}]},
            {"name": "c", "image": "reg:5000/x", "imagePullPolicy": "Never"},
        ]}}}});
        apply(&mut d, find("apps", "deployments"));
        let spec = &d["spec"];
        assert_eq!(spec["replicas"], 3);
        assert_eq!(spec["strategy"]["type"], "RollingUpdate");
        assert_eq!(spec["strategy"]["rollingUpdate"]["maxSurge"], "25%");
        assert_eq!(spec["revisionHistoryLimit"], 10);
        let pod = &spec["template"]["spec"];
        assert_eq!(pod["restartPolicy"], "Always");
        assert_eq!(pod["containers"][0]["imagePullPolicy"], "Always");
        assert_eq!(pod["containers"][1]["imagePullPolicy"], "IfNotPresent");
        assert_eq!(pod["containers"][1]["ports"][0]["protocol"], "TCP");
        assert_eq!(pod["containers"][2]["imagePullPolicy"], "Never");
        let mut recreate = json!({"spec": {"strategy": {"type": "Recreate"}}});
        apply(&mut recreate, find("apps", "deployments"));
        assert!(recreate["spec"]["strategy"].get("rollingUpdate").is_none());
    }

    #[test]
    fn services_and_secrets_get_their_defaults() {
        let mut s =
            json!({"spec": {"ports": [{"port": 80}, {"port": 443, "targetPort": "https"}]}});
        apply(&mut s, find("", "services"));
        assert_eq!(s["spec"]["type"], "ClusterIP");
        assert_eq!(s["spec"]["ports"][0]["targetPort"], 80);
        assert_eq!(s["spec"]["ports"][1]["targetPort"], "https");
        assert!(s["spec"].get("externalTrafficPolicy").is_none(), "{s}");
        let mut lb = json!({"spec": {"type": "LoadBalancer", "sessionAffinity": "ClientIP"}});
        apply(&mut lb, find("", "services"));
        assert_eq!(lb["spec"]["externalTrafficPolicy"], "Cluster");
        assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
        assert_eq!(
            lb["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
            10800
        );
        let mut secret = json!({});
        apply(&mut secret, find("", "secrets"));
        assert_eq!(secret["type"], "Opaque");
    }

    #[test]
    fn autoscalers_get_a_minimum_a_cpu_target_and_complete_behavior() {
        let v2 = crate::kinds::find("autoscaling", "v2", "horizontalpodautoscalers");
        let v2 = v2.expect("autoscaling/v2");
        let mut hpa = json!({"spec": {"maxReplicas": 5}});
        apply(&mut hpa, v2);
        assert_eq!(hpa["spec"]["minReplicas"], 1);
        let cpu = &hpa["spec"]["metrics"][0]["resource"];
        assert_eq!(cpu["name"], "cpu");
        assert_eq!(cpu["target"]["averageUtilization"], 80);
        assert!(
            hpa["spec"].get("behavior").is_none(),
            "no behavior, none made up"
        );

        let mut hpa = json!({"spec": {"minReplicas": 2, "maxReplicas": 5,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}},
            "metrics": [{"type": "Resource", "resource": {"name": "memory",
                "target": {"type": "Utilization", "averageUtilization": 70}}}]}});
        apply(&mut hpa, v2);
        let spec = &hpa["spec"];
        assert_eq!(spec["minReplicas"], 2);
        assert_eq!(spec["metrics"].as_array().map(Vec::len), Some(1));
        let behavior = &spec["behavior"];
        assert_eq!(behavior["scaleDown"]["stabilizationWindowSeconds"], 60);
        assert_eq!(behavior["scaleDown"]["policies"][0]["type"], "Percent");
        assert_eq!(behavior["scaleUp"]["stabilizationWindowSeconds"], 0);
        assert_eq!(behavior["scaleUp"]["policies"][0]["value"], 4);
        assert_eq!(behavior["scaleUp"]["selectPolicy"], "Max");

        let v1 = crate::kinds::find("autoscaling", "v1", "horizontalpodautoscalers");
        let mut hpa = json!({"spec": {"maxReplicas": 5}});
        apply(&mut hpa, v1.expect("autoscaling/v1"));
        assert_eq!(hpa["spec"], json!({"maxReplicas": 5, "minReplicas": 1}));
    }

    #[test]
    fn pods_not_templates_get_service_links_and_host_network_ports() {
        let spec = json!({"hostNetwork": true, "containers": [{"name": "c", "image": "i",
            "ports": [{"containerPort": 80}, {"containerPort": 81, "hostPort": 9081}]}]});
        let mut pod = json!({"spec": spec.clone()});
        apply(&mut pod, find("", "pods"));
        assert_eq!(pod["spec"]["enableServiceLinks"], true);
        let ports = &pod["spec"]["containers"][0]["ports"];
        assert_eq!(ports[0]["hostPort"], 80);
        assert_eq!(ports[1]["hostPort"], 9081);
        let mut d = json!({"spec": {"template": {"spec": spec}}});
        apply(&mut d, find("apps", "deployments"));
        let template = &d["spec"]["template"]["spec"];
        assert!(template.get("enableServiceLinks").is_none(), "{template}");
        assert!(template["containers"][0]["ports"][0]
            .get("hostPort")
            .is_none());
    }

    #[test]
    fn jobs_replace_terminating_pods_by_default() {
        let mut job = json!({"spec": {"template": {"spec": {"containers": []}}}});
        apply(&mut job, find("batch", "jobs"));
        assert_eq!(job["spec"]["podReplacementPolicy"], "TerminatingOrFailed");
        assert_eq!(job["spec"]["suspend"], false);
    }
}
