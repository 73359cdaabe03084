//! The defaults of a pod spec, in a Pod or a workload's template (kube's SetDefaults_PodSpec,
//! _Container, _Probe, _HTTPGetAction, _Volume and the volume sources').

use serde_json::{json, Value};

use super::json::{child, default};

pub fn template(workload_spec: &mut Value) {
    if let Some(template) = child(workload_spec, "template") {
        if let Some(spec) = child(template, "spec") {
            pod_spec(spec);
        }
    }
}

pub fn pod_spec(spec: &mut Value) {
    default(spec, "restartPolicy", json!("Always"));
    default(spec, "dnsPolicy", json!("ClusterFirst"));
    default(spec, "terminationGracePeriodSeconds", json!(30));
    default(spec, "schedulerName", json!("default-scheduler"));
    default(spec, "securityContext", json!({}));
    // v1's deprecated `serviceAccount` and `serviceAccountName` are one field (kube's
    // conversion): either names the account, and both show it.
    let account = ["serviceAccountName", "serviceAccount"]
        .iter()
        .filter_map(|k| spec[*k].as_str())
        .find(|n| !n.is_empty())
        .map(str::to_owned);
    if let Some(account) = account {
        spec["serviceAccountName"] = json!(account);
        spec["serviceAccount"] = json!(account);
    }
    // An ephemeral container takes a container's defaults (kube's
    // SetDefaults_EphemeralContainer).
    for list in ["initContainers", "containers", "ephemeralContainers"] {
        if let Some(containers) = spec.get_mut(list).and_then(Value::as_array_mut) {
            containers.iter_mut().for_each(container);
        }
    }
    if let Some(volumes) = spec.get_mut("volumes").and_then(Value::as_array_mut) {
        volumes.iter_mut().for_each(volume);
    }
}

/// Sets `object[key]` to `value` when it is missing, null, or Go's zero value (0 or ""), as
/// kube's defaulting of a non-pointer field does.
fn default_unset(object: &mut Value, key: &str, value: Value) {
    let unset = match object.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        Some(Value::String(s)) => s.is_empty(),
        Some(_) => false,
    };
    if unset && object.is_object() {
        object[key] = value;
    }
}

/// kube's SetDefaults_Probe: a 1 s timeout, every 10 s, 1 success, 3 failures.
fn probe(probe: &mut Value) {
    default_unset(probe, "timeoutSeconds", json!(1));
    default_unset(probe, "periodSeconds", json!(10));
    default_unset(probe, "successThreshold", json!(1));
    default_unset(probe, "failureThreshold", json!(3));
    handler(probe);
    if let Some(grpc) = probe.get_mut("grpc").filter(|g| g.is_object()) {
        default(grpc, "service", json!(""));
    }
}

/// The defaults of a probe's or lifecycle hook's action: an httpGet's path `/` and scheme
/// HTTP (SetDefaults_HTTPGetAction).
fn handler(action: &mut Value) {
    if let Some(get) = action.get_mut("httpGet").filter(|g| g.is_object()) {
        default_unset(get, "path", json!("/"));
        default_unset(get, "scheme", json!("HTTP"));
    }
}

/// An object field selector's apiVersion `v1` (SetDefaults_ObjectFieldSelector).
fn field_ref(holder: &mut Value) {
    if let Some(selector) = holder.get_mut("fieldRef").filter(|f| f.is_object()) {
        default_unset(selector, "apiVersion", json!("v1"));
    }
}

/// The mode of files a Secret, ConfigMap, downward API or projected volume writes: 0644.
const VOLUME_FILE_MODE: i64 = 0o644;

/// kube's volume source defaults: file modes, the downward API's field selectors, a
/// projected token's one-hour lifetime, a hostPath's unset type, an ephemeral claim's
/// Filesystem mode.
fn volume(volume: &mut Value) {
    for source in ["secret", "configMap", "downwardAPI", "projected"] {
        if let Some(source) = volume.get_mut(source).filter(|s| s.is_object()) {
            default(source, "defaultMode", json!(VOLUME_FILE_MODE));
        }
    }
    if let Some(items) = volume
        .get_mut("downwardAPI")
        .and_then(|d| d.get_mut("items"))
        .and_then(Value::as_array_mut)
    {
        items.iter_mut().for_each(field_ref);
    }
    if let Some(sources) = volume
        .get_mut("projected")
        .and_then(|p| p.get_mut("sources"))
        .and_then(Value::as_array_mut)
    {
        for source in sources {
            if let Some(token) = source
                .get_mut("serviceAccountToken")
                .filter(|t| t.is_object())
            {
                default(token, "expirationSeconds", json!(3600));
            }
            if let Some(items) = source
                .get_mut("downwardAPI")
                .and_then(|d| d.get_mut("items"))
                .and_then(Value::as_array_mut)
            {
                items.iter_mut().for_each(field_ref);
            }
        }
    }
    if let Some(host_path) = volume.get_mut("hostPath").filter(|h| h.is_object()) {
        default(host_path, "type", json!(""));
    }
    if let Some(claim) = volume
        .pointer_mut("/ephemeral/volumeClaimTemplate/spec")
        .filter(|c| c.is_object())
    {
        default(claim, "volumeMode", json!("Filesystem"));
    }
}

/// A host-network pod's container ports listen on the host: a port without `hostPort` gets its
/// `containerPort` (kube's defaultHostNetworkPorts).
pub fn host_network_ports(spec: &mut Value) {
    if spec["hostNetwork"] != true {
        return;
    }
    for list in ["initContainers", "containers"] {
        let containers = spec.get_mut(list).and_then(Value::as_array_mut);
        for container in containers.into_iter().flatten() {
            let ports = container.get_mut("ports").and_then(Value::as_array_mut);
            for port in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
                let container_port = port.get("containerPort").cloned();
                let unset = port.get("hostPort").and_then(Value::as_i64).unwrap_or(0) == 0;
                if let Some(container_port) = container_port.filter(|_| unset) {
                    port.insert("hostPort".to_owned(), container_port);
                }
            }
        }
    }
}

/// A pod's (not a template's) container with limits but no request of the same resource
/// requests its limit (kube's SetDefaults_Pod).
pub fn requests_from_limits(spec: &mut Value) {
    for list in ["initContainers", "containers"] {
        for c in spec
            .get_mut(list)
            .and_then(Value::as_array_mut)
            .into_iter()
            .flatten()
        {
            let Some(limits) = c["resources"]["limits"].as_object().cloned() else {
                continue;
            };
            let resources = &mut c["resources"];
            if !resources["requests"].is_object() {
                resources["requests"] = json!({});
            }
            for (name, value) in limits {
                default(&mut resources["requests"], &name, value);
            }
        }
    }
}

fn container(c: &mut Value) {
    let image = c["image"].as_str().unwrap_or("");
    // `:latest` or no tag (and no digest) pulls always, as Kubernetes defaults it.
    let last = image.rsplit('/').next().unwrap_or("");
    let latest = !image.contains('@') && last.split_once(':').is_none_or(|(_, t)| t == "latest");
    let policy = if latest { "Always" } else { "IfNotPresent" };
    default(c, "imagePullPolicy", json!(policy));
    default(c, "terminationMessagePath", json!("/dev/termination-log"));
    default(c, "terminationMessagePolicy", json!("File"));
    default(c, "resources", json!({}));
    if let Some(ports) = c.get_mut("ports").and_then(Value::as_array_mut) {
        for port in ports {
            default(port, "protocol", json!("TCP"));
        }
    }
    for kind in ["livenessProbe", "readinessProbe", "startupProbe"] {
        if let Some(p) = c.get_mut(kind).filter(|p| p.is_object()) {
            probe(p);
        }
    }
    for hook in ["postStart", "preStop"] {
        if let Some(action) = c.get_mut("lifecycle").and_then(|l| l.get_mut(hook)) {
            handler(action);
        }
    }
    if let Some(env) = c.get_mut("env").and_then(Value::as_array_mut) {
        for var in env {
            if let Some(from) = var.get_mut("valueFrom").filter(|f| f.is_object()) {
                field_ref(from);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probes_hooks_env_and_volumes_get_kubes_defaults() {
        let mut spec = json!({
            "containers": [{
                "name": "c", "image": "i:1",
                "readinessProbe": {"httpGet": {"port": 8080}, "periodSeconds": 2},
                "livenessProbe": {"grpc": {"port": 9000}, "timeoutSeconds": 0},
                "startupProbe": {"tcpSocket": {"port": 80}, "failureThreshold": 30},
                "lifecycle": {"preStop": {"httpGet": {"port": 80, "path": "/quit"}}},
                "env": [{"name": "N", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                        {"name": "V", "value": "x"}],
            }],
            "volumes": [
                {"name": "s", "secret": {"secretName": "s"}},
                {"name": "cm", "configMap": {"name": "cm", "defaultMode": 256}},
                {"name": "d", "downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                {"name": "p", "projected": {"sources": [
                    {"serviceAccountToken": {"path": "token"}},
                    {"downwardAPI": {"items": [{"path": "n", "fieldRef": {"fieldPath": "metadata.name"}}]}},
                ]}},
                {"name": "h", "hostPath": {"path": "/tmp"}},
                {"name": "e", "emptyDir": {}},
                {"name": "x", "ephemeral": {"volumeClaimTemplate": {"spec": {"accessModes": ["ReadWriteOnce"]}}}},
            ],
        });
        pod_spec(&mut spec);
        let c = &spec["containers"][0];
        assert_eq!(
            c["readinessProbe"],
            json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "periodSeconds": 2,
                "timeoutSeconds": 1, "successThreshold": 1, "failureThreshold": 3})
        );
        assert_eq!(c["livenessProbe"]["timeoutSeconds"], 1, "0 is Go's unset");
        assert_eq!(
            c["livenessProbe"]["grpc"],
            json!({"port": 9000, "service": ""})
        );
        assert_eq!(c["startupProbe"]["failureThreshold"], 30, "kept");
        assert_eq!(
            c["lifecycle"]["preStop"]["httpGet"],
            json!({"port": 80, "path": "/quit", "scheme": "HTTP"})
        );
        assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
        assert_eq!(c["env"][1], json!({"name": "V", "value": "x"}));
        let v = &spec["volumes"];
        assert_eq!(v[0]["secret"]["defaultMode"], 420);
        assert_eq!(v[1]["configMap"]["defaultMode"], 256, "kept");
        assert_eq!(v[2]["downwardAPI"]["defaultMode"], 420);
        assert_eq!(
            v[2]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(v[3]["projected"]["defaultMode"], 420);
        let sources = &v[3]["projected"]["sources"];
        assert_eq!(sources[0]["serviceAccountToken"]["expirationSeconds"], 3600);
        assert_eq!(
            sources[1]["downwardAPI"]["items"][0]["fieldRef"]["apiVersion"],
            "v1"
        );
        assert_eq!(v[4]["hostPath"], json!({"path": "/tmp", "type": ""}));
        assert_eq!(v[5], json!({"name": "e", "emptyDir": {}}), "nothing added");
        assert_eq!(
            v[6]["ephemeral"]["volumeClaimTemplate"]["spec"]["volumeMode"],
            "Filesystem"
        );
    }
}
