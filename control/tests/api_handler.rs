//! Writes through the in-process resource handler: the status subresource, finalizers,
//! deletecollection, dry runs, generateName, namespace termination, every kind's round trip,
//! body limits, refused encodings and malformed input.

mod handler;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use handler::{api, wait_for_code};

#[tokio::test(flavor = "multi_thread")]
async fn status_is_written_only_through_its_subresource() {
    let api = api().await;
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"selector": {"matchLabels": {"app": "web"}},
          "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "i"}]}}},
        "status": {"replicas": 7}});
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (code, created) = api.call(Method::POST, base, deployment).await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    assert!(
        created.get("status").is_none(),
        "create drops status: {created}"
    );
    let (code, patched) = api
        .call_typed(
            Method::PATCH,
            &format!("{base}/web/status"),
            "application/merge-patch+json",
            br#"{"status":{"replicas":2},"spec":{"replicas":9}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{patched}");
    assert_eq!(patched["status"]["replicas"], 2);
    assert_eq!(
        patched["spec"]["replicas"], 1,
        "a status write changes only status (replicas stays the default)"
    );
    let (_, patched) = api
        .call_typed(
            Method::PATCH,
            &format!("{base}/web"),
            "application/merge-patch+json",
            br#"{"status":{"replicas":5},"spec":{"replicas":4}}"#.to_vec(),
        )
        .await;
    assert_eq!(
        patched["status"]["replicas"], 2,
        "a main write keeps status"
    );
    assert_eq!(patched["spec"]["replicas"], 4);
    assert_eq!(patched["metadata"]["generation"], 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn finalizers_hold_a_deleted_object_until_they_are_removed() {
    let api = api().await;
    let (code, _) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/default/configmaps",
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let uri = "/api/v1/namespaces/default/configmaps/held";
    let (code, marked) = api
        .call(
            Method::DELETE,
            uri,
            json!({"propagationPolicy": "Background"}),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert!(
        marked["metadata"]["deletionTimestamp"].is_string(),
        "{marked}"
    );
    let (code, _) = api.call(Method::GET, uri, Value::Null).await;
    assert_eq!(code, StatusCode::OK, "still there while finalized");
    let (code, _) = api
        .call_typed(
            Method::PATCH,
            uri,
            "application/json-patch+json",
            br#"[{"op":"remove","path":"/metadata/finalizers"}]"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, gone) = api.call(Method::GET, uri, Value::Null).await;
    assert_eq!(code, StatusCode::NOT_FOUND, "{gone}");
    assert_eq!(gone["details"]["name"], "held");
}

#[tokio::test(flavor = "multi_thread")]
async fn deletecollection_dry_run_and_generate_name() {
    let api = api().await;
    for (name, app) in [("a", "web"), ("b", "web"), ("c", "db")] {
        api.create_cm("default", name, json!({"app": app})).await;
    }
    let base = "/api/v1/namespaces/default/configmaps";
    let (code, dry) = api
        .call(
            Method::POST,
            &format!("{base}?dryRun=All"),
            json!({"metadata": {"generateName": "gen-"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let dry_name = dry["metadata"]["name"].as_str().unwrap().to_owned();
    assert!(
        dry_name.starts_with("gen-") && dry_name.len() == 9,
        "{dry_name}"
    );
    let (code, _) = api
        .call(Method::GET, &format!("{base}/{dry_name}"), Value::Null)
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a dry run stores nothing");
    let (code, deleted) = api
        .call(
            Method::DELETE,
            &format!("{base}?labelSelector=app%3Dweb"),
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(
        deleted["items"].as_array().map(Vec::len),
        Some(2),
        "{deleted}"
    );
    let (_, list) = api.call(Method::GET, base, Value::Null).await;
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["c"]);
    assert_eq!(list["kind"], "ConfigMapList");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_bodies_and_paths_answer_with_a_status() {
    let api = api().await;
    let base = "/api/v1/namespaces/default/configmaps";
    let (code, status) = api
        .call_typed(Method::POST, base, "application/cbor", b"{}".to_vec())
        .await;
    assert_eq!(code, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(status["reason"], "UnsupportedMediaType");
    let (code, status) = api
        .call_typed(
            Method::POST,
            base,
            "application/vnd.kubernetes.protobuf",
            b"k8s\0".to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "an empty envelope: {status}");
    let big = vec![b' '; bosun_control::api::MAX_BODY_BYTES + 1];
    let (code, _) = api
        .call_typed(Method::POST, base, "application/json", big)
        .await;
    assert_eq!(code, StatusCode::PAYLOAD_TOO_LARGE);
    let (code, status) = api
        .call(
            Method::POST,
            base,
            json!({"metadata": {"name": "x", "namespace": "other"}}),
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST, "{status}");
    let long = "a".repeat(5000);
    let (code, status) = api
        .call(Method::GET, &format!("{base}/{long}"), Value::Null)
        .await;
    assert_eq!(
        code,
        StatusCode::BAD_REQUEST,
        "a key the store refuses is the caller's error: {status}"
    );
    api.create_cm("default", "x", json!({})).await;
    let (code, status) = api
        .call(Method::POST, base, json!({"metadata": {"name": "x"}}))
        .await;
    assert_eq!(code, StatusCode::CONFLICT);
    assert_eq!(status["message"], r#"configmaps "x" already exists"#);
    let (code, status) = api
        .call(
            Method::GET,
            "/apis/events.k8s.io/v1/namespaces/default/events",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "events.k8s.io/v1 is served: {status}");
    assert_eq!(status["kind"], "EventList");
    let (code, _) = api
        .call(
            Method::GET,
            "/apis/autoscaling/v2/namespaces/default/horizontalpodautoscalers",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api
        .call(Method::DELETE, "/api/v1/namespaces", Value::Null)
        .await;
    assert_eq!(
        code,
        StatusCode::METHOD_NOT_ALLOWED,
        "namespaces have no deletecollection"
    );
    let (code, status) = api
        .call(
            Method::GET,
            "/api/v1/events?fieldSelector=involvedObject.name%3Dweb",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::OK, "{status}");
    let (code, status) = api
        .call(
            Method::GET,
            "/api/v1/configmaps?fieldSelector=data.k%3Dv",
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::BAD_REQUEST);
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("field label not supported: data.k"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_terminating_namespace_refuses_new_objects_and_waits_for_finalizers() {
    let api = api().await;
    let (code, _) = api
        .call(
            Method::POST,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "t"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    let (code, _) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/t/configmaps",
            json!({"metadata": {"name": "held", "finalizers": ["example.com/hold"]}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    api.create_cm("t", "plain", json!({})).await;
    let (code, ns) = api
        .call(Method::DELETE, "/api/v1/namespaces/t", Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    assert_eq!(ns["status"]["phase"], "Terminating");
    let (code, status) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/t/configmaps",
            json!({"metadata": {"name": "new"}}),
        )
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN, "{status}");
    assert!(status["message"]
        .as_str()
        .unwrap()
        .contains("because it is being terminated"));
    // The plain object goes; the held one (and so the namespace) stays until its finalizer does.
    wait_for_code(
        &api,
        "/api/v1/namespaces/t/configmaps/plain",
        StatusCode::NOT_FOUND,
    )
    .await;
    let (code, _) = api
        .call(Method::GET, "/api/v1/namespaces/t", Value::Null)
        .await;
    assert_eq!(code, StatusCode::OK);
    let (code, _) = api
        .call_typed(
            Method::PATCH,
            "/api/v1/namespaces/t/configmaps/held",
            "application/merge-patch+json",
            br#"{"metadata":{"finalizers":null}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    wait_for_code(&api, "/api/v1/namespaces/t", StatusCode::NOT_FOUND).await;
    let (code, status) = api
        .call(
            Method::POST,
            "/api/v1/namespaces/t/configmaps",
            json!({"metadata": {"name": "late"}}),
        )
        .await;
    assert_eq!(code, StatusCode::NOT_FOUND, "a deleted namespace: {status}");
    // The built-in namespaces stay.
    let (code, _) = api
        .call(Method::DELETE, "/api/v1/namespaces/default", Value::Null)
        .await;
    assert_eq!(code, StatusCode::FORBIDDEN);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_list_pinned_to_a_name_returns_only_that_name() {
    let api = api().await;
    for name in ["a", "ab", "b"] {
        api.create_cm("default", name, json!({})).await;
    }
    for uri in [
        "/api/v1/namespaces/default/configmaps?fieldSelector=metadata.name%3Da",
        "/api/v1/configmaps?fieldSelector=metadata.name%3Da",
    ] {
        let (code, list) = api.call(Method::GET, uri, Value::Null).await;
        assert_eq!(code, StatusCode::OK);
        let names: Vec<&str> = list["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["metadata"]["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["a"], "{uri}");
        assert!(list["metadata"]["resourceVersion"].is_string());
    }
    let (_, list) = api
        .call(
            Method::GET,
            "/api/v1/namespaces?fieldSelector=metadata.name%3Ddefault",
            Value::Null,
        )
        .await;
    assert_eq!(list["items"][0]["metadata"]["name"], "default");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn every_served_kind_round_trips_strictly() {
    let api = api().await;
    let pod_spec = json!({"containers": [{"name": "c", "image": "i"}]});
    let template = json!({"metadata": {"labels": {"app": "x"}}, "spec": pod_spec});
    let workload = json!({"selector": {"matchLabels": {"app": "x"}}, "template": template});
    for r in bosun_control::kinds::RESOURCES
        .iter()
        .filter(|r| r.served())
    {
        // Versions of one kind share their objects: one name per version.
        let name = match r.group {
            "events.k8s.io" => "x-events-v1".to_owned(),
            // A CRD's name is its plural and group.
            "apiextensions.k8s.io" => "xs.example.com".to_owned(),
            _ => format!("x-{}", r.version),
        };
        let mut object = json!({"apiVersion": r.group_version(), "kind": r.kind,
            "metadata": {"name": name, "labels": {"a": "b"}, "annotations": {"c": "d"}}});
        match r.kind {
            "Pod" => object["spec"] = pod_spec.clone(),
            "Deployment" | "ReplicaSet" | "StatefulSet" | "DaemonSet" => {
                object["spec"] = workload.clone()
            }
            "ReplicationController" => object["spec"] = json!({"template": template}),
            "Job" => {
                let mut job_template = template.clone();
                job_template["spec"]["restartPolicy"] = json!("Never");
                object["spec"] = json!({"template": job_template})
            }
            "CronJob" => {
                let mut job_template = template.clone();
                job_template["spec"]["restartPolicy"] = json!("Never");
                object["spec"] = json!({"schedule": "@daily",
                    "jobTemplate": {"spec": {"template": job_template}}})
            }
            "Service" => object["spec"] = json!({"ports": [{"port": 80, "targetPort": "http"}]}),
            "ConfigMap" => object["data"] = json!({"k": "v"}),
            "Lease" => object["spec"] = json!({"holderIdentity": "n1", "leaseDurationSeconds": 40}),
            "EndpointSlice" => {
                object["addressType"] = json!("IPv4");
                object["endpoints"] = json!([{"addresses": ["10.0.0.1"]}]);
            }
            "StorageClass" => object["provisioner"] = json!("example.com/p"),
            "PersistentVolume" => {
                object["spec"] = json!({"capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"], "hostPath": {"path": "/tmp/x"}})
            }
            "PersistentVolumeClaim" => {
                object["spec"] = json!({"accessModes": ["ReadWriteOnce"],
                    "resources": {"requests": {"storage": "1Gi"}}})
            }
            "Event" if r.group == "events.k8s.io" => {
                object["regarding"] = json!({"kind": "Pod", "name": "x"});
                object["eventTime"] = json!("2026-12-02T12:00:00.000000Z");
            }
            "Event" => object["involvedObject"] = json!({"kind": "Pod", "name": "x"}),
            "RoleBinding" | "ClusterRoleBinding" => {
                object["roleRef"] = json!({"apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole", "name": "view"})
            }
            "HorizontalPodAutoscaler" => {
                object["spec"] = json!({"maxReplicas": 3, "scaleTargetRef":
                    {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}})
            }
            "CustomResourceDefinition" => {
                object["spec"] = json!({"group": "example.com", "scope": "Namespaced",
                    "names": {"plural": "xs", "kind": "X"},
                    "versions": [{"name": "v1", "served": true, "storage": true,
                        "schema": {"openAPIV3Schema": {"type": "object"}}}]})
            }
            "ValidatingAdmissionPolicy" => {
                object["spec"] = json!({"matchConstraints": {"resourceRules": [{
                    "apiGroups": ["apps"], "apiVersions": ["v1"], "operations": ["CREATE"],
                    "resources": ["deployments"]}]},
                    "validations": [{"expression": "object.spec.replicas < 10"}]})
            }
            "ValidatingAdmissionPolicyBinding" => {
                object["spec"] = json!({"policyName": "p", "validationActions": ["Deny"]})
            }
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration" => {
                object["webhooks"] = json!([{"name": "check.example.com",
                    "clientConfig": {"url": "https://127.0.0.1:1/check"},
                    "sideEffects": "None", "admissionReviewVersions": ["v1"],
                    "rules": [{"apiGroups": ["example.com"], "apiVersions": ["v1"],
                        "operations": ["CREATE"], "resources": ["widgets"]}]}])
            }
            "CertificateSigningRequest" => {
                use base64::Engine;
                let key = rcgen::KeyPair::generate().unwrap();
                let csr = rcgen::CertificateParams::default()
                    .serialize_request(&key)
                    .unwrap();
                let pem = csr.pem().unwrap();
                object["spec"] = json!({
                    "signerName": "example.com/signer",
                    "request": base64::engine::general_purpose::STANDARD.encode(pem),
                    "usages": ["client auth"],
                });
            }
            _ => {}
        }
        let collection = match (r.namespaced(), r.group) {
            (true, "") => format!("/api/v1/namespaces/default/{}", r.plural),
            (false, "") => format!("/api/v1/{}", r.plural),
            (true, g) => format!("/apis/{g}/{}/namespaces/default/{}", r.version, r.plural),
            (false, g) => format!("/apis/{g}/{}/{}", r.version, r.plural),
        };
        let (code, created) = api
            .call(
                Method::POST,
                &format!("{collection}?fieldValidation=Strict"),
                object.clone(),
            )
            .await;
        assert_eq!(code, StatusCode::CREATED, "{}: {created}", r.kind);
        let (code, read) = api
            .call(Method::GET, &format!("{collection}/{name}"), Value::Null)
            .await;
        assert_eq!(code, StatusCode::OK, "{}: {read}", r.kind);
        assert_eq!(read["metadata"]["labels"]["a"], "b", "{}", r.kind);
        assert_eq!(read["kind"], r.kind);
        assert_eq!(read["apiVersion"], r.group_version());
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_bodies_and_patches_are_client_errors_not_panics() {
    let api = api().await;
    api.create_cm("default", "x", json!({})).await;
    let base = "/api/v1/namespaces/default/configmaps";
    let uri = format!("{base}/x");
    let merge = "application/merge-patch+json";
    let json_patch = "application/json-patch+json";
    let cases: &[(Method, &str, &str, &str)] = &[
        (Method::POST, base, "application/json", "5"),
        (Method::POST, base, "application/json", "{\"metadata\": 5}"),
        (
            Method::POST,
            base,
            "application/json",
            "{\"metadata\": {\"labels\": \"x\"}}",
        ),
        (
            Method::POST,
            base,
            "application/json",
            "{\"kind\": 7, \"metadata\": {\"name\": \"k\"}}",
        ),
        (
            Method::POST,
            base,
            "application/json",
            "{\"metadata\":{\"name\":\"a\"},\"data\":[]}",
        ),
        (Method::POST, base, "text/plain", "{}"),
        (Method::PUT, &uri, "application/json", "[]"),
        (
            Method::PUT,
            &uri,
            "application/json",
            "{\"metadata\":{\"name\":\"y\"}}",
        ),
        (Method::PATCH, &uri, merge, "{\"metadata\": 5}"),
        (
            Method::PATCH,
            &uri,
            merge,
            "{\"metadata\": {\"name\": \"other\"}}",
        ),
        (Method::PATCH, &uri, merge, "not json"),
        (
            Method::PATCH,
            &uri,
            json_patch,
            "[{\"op\":\"replace\",\"path\":\"\",\"value\":5}]",
        ),
        (
            Method::PATCH,
            &uri,
            json_patch,
            "[{\"op\":\"replace\",\"path\":\"/metadata\",\"value\":[]}]",
        ),
        (Method::PATCH, &uri, json_patch, "[{\"op\":\"nope\"}]"),
        (Method::PATCH, &uri, json_patch, "{}"),
        (
            Method::DELETE,
            &uri,
            "application/json",
            "{\"propagationPolicy\": \"Sideways\"}",
        ),
        (Method::DELETE, &uri, "application/json", "[1"),
        (
            Method::GET,
            "/api/v1/configmaps?labelSelector=a%20in%20(",
            "",
            "",
        ),
        (Method::GET, "/api/v1/configmaps?limit=-1", "", ""),
        (Method::GET, "/api/v1/configmaps?continue=%%%", "", ""),
        (
            Method::GET,
            "/api/v1/configmaps?watch=1&resourceVersion=abc",
            "",
            "",
        ),
    ];
    for (method, uri, media, body) in cases {
        let (code, status) = api
            .call_typed(method.clone(), uri, media, body.as_bytes().to_vec())
            .await;
        if status["kind"] == "Status" || code != StatusCode::OK {
            assert!(
                code.is_client_error(),
                "{method} {uri} {body}: {code} {status}"
            );
            assert_eq!(status["kind"], "Status", "{method} {uri} {body}");
        } else {
            // The bad watch resourceVersion is reported in the stream.
            assert!(
                uri.contains("watch=1"),
                "{method} {uri} {body}: {code} {status}"
            );
        }
    }
    let (code, _) = api.call(Method::GET, &uri, Value::Null).await;
    assert_eq!(code, StatusCode::OK, "the object is untouched");
}

/// A namespace marked terminating by another writer of the store (another control process
/// over the same etcd) refuses creates here too, once the namespace watch brings the change.
#[tokio::test(flavor = "multi_thread")]
async fn a_namespace_terminated_by_another_writer_refuses_creates() {
    let api = api().await;
    let (code, _) = api
        .call(
            Method::POST,
            "/api/v1/namespaces",
            json!({"metadata": {"name": "elsewhere"}}),
        )
        .await;
    assert_eq!(code, StatusCode::CREATED);
    api.create_cm("elsewhere", "before", json!({})).await;
    let key = "/registry/core/namespaces/elsewhere";
    let kv = api
        .state
        .store
        .get(key)
        .await
        .expect("read")
        .expect("stored");
    let mut ns: Value = serde_json::from_slice(&kv.value).expect("JSON");
    ns["metadata"]["deletionTimestamp"] = json!("2026-12-02T00:00:00Z");
    api.state
        .store
        .update(key, ns.to_string().into_bytes().into(), kv.mod_revision)
        .await
        .expect("update");
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let (code, status) = api
            .call(
                Method::POST,
                "/api/v1/namespaces/elsewhere/configmaps",
                json!({"metadata": {"generateName": "after-"}}),
            )
            .await;
        if code == StatusCode::FORBIDDEN {
            assert!(status["message"]
                .as_str()
                .unwrap_or("")
                .contains("being terminated"));
            break;
        }
        assert_eq!(code, StatusCode::CREATED, "{status}");
        assert!(
            std::time::Instant::now() < deadline,
            "creates still accepted"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
