//! Tests for `parse_pod` and `parse_manifests`: accepted shapes, field-named type errors and
//! document indexes.

use super::*;
use crate::spec::pod::RestartPolicy;
use crate::spec::probe::IntOrString;

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\n\
                   spec: {containers: [{name: c, image: nginx}]}\n";

#[test]
fn a_minimal_pod_parses_with_defaults() {
    let pod = parse_pod(POD).unwrap();
    assert_eq!(pod.metadata.name, "web");
    assert_eq!(pod.metadata.namespace, "default");
    assert_eq!(pod.spec.restart_policy, RestartPolicy::Always);
    assert_eq!(pod.spec.containers[0].image, "nginx");
}

#[test]
fn unknown_fields_are_refused_by_name() {
    let yaml = POD.replace("image: nginx", "image: nginx, futureField: {a: 1}");
    let err = parse_pod(&yaml).unwrap_err();
    assert_eq!(err.field, "spec.containers[0].futureField", "{err}");
    let err = parse_pod(&format!("{POD}extra: 1\n")).unwrap_err();
    assert_eq!(err.field, "extra", "{err}");
    let affinity = POD.replace("spec: {", "spec: {affinity: {nodeAffinity: {}}, ");
    assert_eq!(parse_pod(&affinity).unwrap_err().field, "spec.affinity");
}

#[test]
fn a_pod_as_kubectl_prints_it_is_accepted() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: web
  namespace: default
  creationTimestamp: "2026-01-01T00:00:00Z"
  resourceVersion: "42"
  managedFields: [{manager: kubectl}]
spec:
  containers:
  - name: c
    image: nginx
    imagePullPolicy: IfNotPresent
    resources: {}
    terminationMessagePath: /dev/termination-log
    terminationMessagePolicy: File
  dnsPolicy: ClusterFirst
  enableServiceLinks: true
  preemptionPolicy: PreemptLowerPriority
  priority: 0
  restartPolicy: Always
  schedulerName: default-scheduler
  securityContext: {}
  terminationGracePeriodSeconds: 30
  tolerations:
  - {effect: NoExecute, key: node.kubernetes.io/not-ready, operator: Exists, tolerationSeconds: 300}
status: {phase: Running, podIP: 10.244.0.5}
"#;
    let pod = parse_pod(yaml).unwrap();
    assert_eq!(pod.spec.containers[0].name, "c");
    let custom = yaml.replace(
        "MessagePolicy: File",
        "MessagePolicy: FallbackToLogsOnError",
    );
    let err = parse_pod(&custom).unwrap_err();
    assert_eq!(err.field, "spec.containers[0].terminationMessagePolicy");
}

#[test]
fn a_full_kubectl_style_pod_parses() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata:
  name: app
  namespace: team-a
  uid: 0b9e5c1e-1111-2222-3333-444455556666
  labels: {app: app}
spec:
  securityContext: {runAsUser: 1000, runAsGroup: 1000, fsGroup: 2000, supplementalGroups: [3000]}
  containers:
  - name: app
    image: registry.local:5000/app@sha256:0123
    imagePullPolicy: IfNotPresent
    workingDir: /srv
    securityContext:
      privileged: false
      readOnlyRootFilesystem: true
      capabilities: {add: [NET_ADMIN], drop: [ALL]}
    livenessProbe:
      httpGet: {port: 8080, scheme: HTTPS, httpHeaders: [{name: A, value: b}]}
      terminationGracePeriodSeconds: 3
"#;
    let pod = parse_pod(yaml).unwrap();
    let c = &pod.spec.containers[0];
    assert_eq!(
        pod.spec.security_context.as_ref().unwrap().fs_group,
        Some(2000)
    );
    assert_eq!(
        c.security_context
            .as_ref()
            .unwrap()
            .capabilities
            .as_ref()
            .unwrap()
            .drop,
        ["ALL"]
    );
    assert_eq!(c.working_dir.as_deref(), Some("/srv"));
    let get = c
        .liveness_probe
        .as_ref()
        .unwrap()
        .http_get
        .as_ref()
        .unwrap();
    assert_eq!(get.port, IntOrString::Int(8080));
    assert_eq!(
        pod.metadata.uid.as_deref(),
        Some("0b9e5c1e-1111-2222-3333-444455556666")
    );
}

#[test]
fn fields_the_agent_does_not_honour_are_refused_by_name() {
    let table = [
        (
            "image: nginx",
            "image: nginx, lifecycle: {preStop: {tcpSocket: {port: 80}}}",
            "spec.containers[0].lifecycle.preStop.tcpSocket",
        ),
        (
            "image: nginx",
            "image: nginx, resources: {limits: {nvidia.com/gpu: 1}}",
            "spec.containers[0].resources.limits.nvidia.com/gpu",
        ),
        (
            "spec: {",
            "spec: {volumes: [{name: d, nfs: {server: s, path: /}}], ",
            "spec.volumes[0].nfs",
        ),
    ];
    for (from, to, field) in table {
        let yaml = POD.replace(from, to);
        let err = parse_pod(&yaml).unwrap_err();
        assert_eq!(err.field, field, "{yaml}\n{err}");
        assert!(err.message.contains("not supported"), "{err}");
        let err = parse_manifests(&yaml).unwrap_err();
        assert_eq!(err.field, field, "{yaml}\n{err}");
    }
}

#[test]
fn json_pods_parse_too() {
    let json = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"j"},
                   "spec":{"containers":[{"name":"c","image":"i","resources":{"limits":{"cpu":0.5}}}]}}"#;
    let pod = parse_pod(json).unwrap();
    assert_eq!(
        pod.spec.containers[0].resources.limits["cpu"].millicores(),
        Ok(500)
    );
}

#[test]
fn yaml_anchors_and_merge_keys_work() {
    let yaml = r#"
apiVersion: v1
kind: Pod
metadata: {name: m}
spec:
  containers:
  - &base {name: a, image: busybox, command: [sleep, "1"]}
  - <<: *base
    name: b
"#;
    let pod = parse_pod(yaml).unwrap();
    assert_eq!(pod.spec.containers[1].name, "b");
    assert_eq!(pod.spec.containers[1].command, ["sleep", "1"]);
}

#[test]
fn the_kind_must_be_pod() {
    let err = parse_pod(&POD.replace("kind: Pod", "kind: Service")).unwrap_err();
    assert_eq!(err.field, "kind");
    assert!(err.message.contains("Service"), "{err}");
    assert_eq!(
        parse_pod(&POD.replace("kind: Pod\n", ""))
            .unwrap_err()
            .field,
        "kind"
    );
    let err = parse_pod(&POD.replace("apiVersion: v1", "apiVersion: v2")).unwrap_err();
    assert_eq!(err.field, "apiVersion");
}

#[test]
fn type_errors_name_the_field_path() {
    let table = [
        (
            "image: nginx",
            "image: nginx, resources: {limits: {memory: [1]}}",
            "spec.containers[0].resources.limits.memory",
        ),
        (
            "image: nginx",
            "image: nginx, ports: [{containerPort: http}]",
            "spec.containers[0].ports[0].containerPort",
        ),
        (
            "image: nginx",
            "image: nginx, env: [{name: A, value: 1}]",
            "spec.containers[0].env[0].value",
        ),
        (
            "image: nginx",
            "image: nginx, livenessProbe: {httpGet: {path: /}}",
            "spec.containers[0].livenessProbe.httpGet",
        ),
        (
            "spec: {",
            "spec: {restartPolicy: Sometimes, ",
            "spec.restartPolicy",
        ),
        ("spec: {", "spec: {hostNetwork: maybe, ", "spec.hostNetwork"),
        ("name: web", "name: [web]", "metadata.name"),
    ];
    for (from, to, field) in table {
        let yaml = POD.replace(from, to);
        let err = parse_pod(&yaml).unwrap_err();
        assert_eq!(err.field, field, "{yaml}\n{err}");
    }
}

#[test]
fn validation_runs_after_parsing() {
    let err = parse_pod(&POD.replace("name: c", "name: C")).unwrap_err();
    assert_eq!(err.field, "spec.containers[0].name");
    assert_eq!(err.document, None);
}

#[test]
fn syntax_errors_and_empty_input_are_reported() {
    assert!(parse_pod("a: [").is_err());
    assert!(parse_pod("").is_err());
    assert!(parse_pod(&format!("{POD}---\n{POD}")).is_err());
    assert_eq!(parse_pod("- 1").unwrap_err().field, "");
}

const SERVICE: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\n\
                       spec: {selector: {app: web}, ports: [{port: 80}]}\n";

#[test]
fn multi_document_streams_type_services_and_keep_other_kinds_raw() {
    let config = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: cfg}\ndata: {a: b}\n";
    let text = format!("# leading comment\n---\n{POD}---\n{SERVICE}---\n---\n{config}");
    let manifests = parse_manifests(&text).unwrap();
    assert_eq!(manifests.len(), 3);
    assert!(matches!(&manifests[0], Manifest::Pod(p) if p.metadata.name == "web"));
    let Manifest::Service(svc) = &manifests[1] else {
        panic!("expected a Service: {manifests:?}");
    };
    assert_eq!(svc.spec.ports[0].port, 80);
    let Manifest::Other { kind, name, value } = &manifests[2] else {
        panic!("expected the ConfigMap as Other: {manifests:?}");
    };
    assert_eq!((kind.as_str(), name.as_str()), ("ConfigMap", "cfg"));
    assert_eq!(value["data"]["a"], "b");
}

#[test]
fn services_and_slices_need_their_api_version() {
    let bad = SERVICE.replace("apiVersion: v1", "apiVersion: apps/v1");
    let err = parse_manifests(&bad).unwrap_err();
    assert_eq!(err.field, "apiVersion", "{err}");
    let slice = "apiVersion: v1\nkind: EndpointSlice\naddressType: IPv4\n";
    let err = parse_manifests(slice).unwrap_err();
    assert!(err.to_string().contains("discovery.k8s.io/v1"), "{err}");
    let ok = slice.replace("apiVersion: v1", "apiVersion: discovery.k8s.io/v1");
    assert!(matches!(
        &parse_manifests(&ok).unwrap()[0],
        Manifest::EndpointSlice(_)
    ));
}

#[test]
fn errors_name_the_document_index_and_field() {
    let bad = POD.replace("image: nginx", "image: nginx, ports: [{containerPort: 0}]");
    let err = parse_manifests(&format!("{SERVICE}---\n{bad}")).unwrap_err();
    assert_eq!(err.document, Some(1));
    assert_eq!(err.field, "spec.containers[0].ports[0].containerPort");
    assert!(
        err.to_string()
            .starts_with("document 1: spec.containers[0].ports[0]"),
        "{err}"
    );
    let err = parse_manifests(&format!("{POD}---\nmetadata: {{name: x}}\n")).unwrap_err();
    assert_eq!((err.document, err.field.as_str()), (Some(1), "kind"));
    let err = parse_manifests(&format!("{POD}---\na: [\n")).unwrap_err();
    assert_eq!(err.document, Some(1), "{err}");
}

#[test]
fn json_streams_and_lists_are_accepted() {
    let pod = r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"a"},"spec":{"containers":[{"name":"c","image":"i"}]}}"#;
    let svc = r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"s"}}"#;
    let manifests = parse_manifests(&format!("{pod}\n{svc}")).unwrap();
    assert_eq!(manifests.len(), 2);
    let list = format!(r#"{{"apiVersion":"v1","kind":"List","items":[{svc},{pod}]}}"#);
    let manifests = parse_manifests(&list).unwrap();
    assert!(matches!(&manifests[1], Manifest::Pod(_)));
    let bad_list = list.replace(r#""name":"c""#, r#""name":"C""#);
    let err = parse_manifests(&bad_list).unwrap_err();
    assert_eq!(
        (err.document, err.field.as_str()),
        (Some(0), "items[1].spec.containers[0].name")
    );
}

/// A Pod as bosun-control stores it after its defaults (control/src/api/defaults.rs) and
/// bookkeeping, as the node's watch receives it.
fn api_pod() -> Value {
    serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": "web", "namespace": "default", "uid": "0b6c4a1e-1111-4c1e-9a1e-000000000001",
            "resourceVersion": "42", "creationTimestamp": "2026-01-01T00:00:00Z", "generateName": "web-",
            "labels": {"app": "web"},
            "ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "web-1", "uid": "u", "controller": true}],
            "managedFields": [{"manager": "kubectl", "operation": "Update"}]},
        "spec": {
            "nodeName": "n1", "restartPolicy": "Always", "dnsPolicy": "ClusterFirst",
            "terminationGracePeriodSeconds": 30, "schedulerName": "default-scheduler",
            "securityContext": {}, "enableServiceLinks": true,
            "containers": [{"name": "c", "image": "bosun.test/busybox:1", "imagePullPolicy": "IfNotPresent",
                "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File",
                "resources": {}, "ports": [{"containerPort": 80, "protocol": "TCP"}]}]
        },
        "status": {"phase": "Pending"}
    })
}

#[test]
fn api_pods_with_kubernetes_defaults_are_accepted_for_this_node() {
    let pod = pod_from_api(api_pod(), "n1").expect("a defaulted API pod runs");
    assert_eq!(pod.spec.node_name.as_deref(), Some("n1"));
    assert_eq!(
        pod.metadata.uid.as_deref(),
        Some("0b6c4a1e-1111-4c1e-9a1e-000000000001")
    );
    // The same pod is still refused as a static manifest: nodeName has no meaning there.
    let err = parse_pod(&api_pod().to_string()).unwrap_err();
    assert_eq!(err.field, "spec.nodeName");
}

#[test]
fn api_pods_placed_by_node_selector_and_affinity_are_accepted() {
    let mut pod = api_pod();
    pod["spec"]["nodeSelector"] = serde_json::json!({"disk": "ssd"});
    pod["spec"]["affinity"] = serde_json::json!({"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
            {"matchExpressions": [{"key": "disk", "operator": "In", "values": ["ssd"]}]}]}}});
    let accepted = pod_from_api(pod.clone(), "n1").expect("the scheduler honoured them");
    assert_eq!(
        accepted.spec.node_selector.get("disk").map(String::as_str),
        Some("ssd")
    );
    // A static pod has no scheduler: still refused there.
    pod["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("nodeName");
    pod["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("affinity");
    assert_eq!(
        parse_pod(&pod.to_string()).unwrap_err().field,
        "spec.nodeSelector"
    );
}

#[test]
fn api_pods_asking_for_what_the_agent_does_not_do_are_refused_by_name() {
    let err = pod_from_api(api_pod(), "n2").unwrap_err();
    assert_eq!(err.field, "spec.nodeName");
    assert!(err.message.contains("\"n2\""), "{err}");
    let mut unbound = api_pod();
    unbound["spec"]
        .as_object_mut()
        .expect("spec")
        .remove("nodeName");
    assert_eq!(
        pod_from_api(unbound, "n1").unwrap_err().field,
        "spec.nodeName"
    );
    let cases = [
        (
            "/spec/containers/0/terminationMessagePolicy",
            serde_json::json!("FallbackToLogsOnError"),
            "spec.containers[0].terminationMessagePolicy",
        ),
        (
            // None without dnsConfig: kube-apiserver's own rule.
            "/spec/dnsPolicy",
            serde_json::json!("None"),
            "spec.dnsConfig.nameservers",
        ),
    ];
    for (pointer, value, field) in cases {
        let mut pod = api_pod();
        *pod.pointer_mut(pointer).expect(pointer) = value;
        assert_eq!(pod_from_api(pod, "n1").unwrap_err().field, field);
    }
}

#[test]
fn api_pods_after_service_account_admission_are_accepted() {
    let mut pod = api_pod();
    let spec = &mut pod["spec"];
    spec["serviceAccountName"] = "builder".into();
    spec["serviceAccount"] = "builder".into();
    spec["automountServiceAccountToken"] = true.into();
    spec["enableServiceLinks"] = false.into();
    spec["volumes"] = serde_json::json!([{"name": "kube-api-access-x2b4c", "projected": {"defaultMode": 420, "sources": [
        {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
        {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
        {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1", "fieldPath": "metadata.namespace"}}]}}]}}]);
    spec["containers"][0]["volumeMounts"] = serde_json::json!([{"name": "kube-api-access-x2b4c", "readOnly": true,
        "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"}]);
    let accepted = pod_from_api(pod.clone(), "n1").expect("an admitted pod runs");
    assert_eq!(
        accepted.spec.service_account_name.as_deref(),
        Some("builder")
    );
    assert_eq!(accepted.spec.enable_service_links, Some(false));
    // `automountServiceAccountToken: false` was the control plane's to act on.
    pod["spec"]["automountServiceAccountToken"] = false.into();
    pod_from_api(pod.clone(), "n1").expect("automount false");
    // The deprecated field must agree with serviceAccountName.
    pod["spec"]["serviceAccount"] = "other".into();
    assert_eq!(
        pod_from_api(pod, "n1").unwrap_err().field,
        "spec.serviceAccount"
    );
    // A static pod gets no token: only the default may be written there.
    let static_pod = "apiVersion: v1\nkind: Pod\nmetadata: {name: p}\nspec:\n  automountServiceAccountToken: false\n  containers:\n  - name: c\n    image: x\n";
    assert_eq!(
        parse_pod(static_pod).unwrap_err().field,
        "spec.automountServiceAccountToken"
    );
}
