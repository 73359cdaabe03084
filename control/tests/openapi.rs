//! The real kubectl reads our OpenAPI v3 documents: `explain` finds kinds and fields by their
//! group-version-kind and follows `$ref`s; `apply --dry-run=client` gets past the OpenAPI
//! download and the `fieldValidation` check; a List manifest gets past the v2 download.

mod common;

use common::{ok, stderr, Control};

#[test]
fn explain_prints_field_descriptions_from_the_generated_schemas() {
    let control = Control::start();
    let out = ok(control.kubectl(&["explain", "deployment.spec.replicas"]));
    assert!(out.contains("KIND:       Deployment"), "{out}");
    assert!(out.contains("FIELD: replicas <integer>"), "{out}");
    assert!(out.contains("Number of desired pods"), "{out}");
    let out = ok(control.kubectl(&["explain", "pods"]));
    assert!(out.contains("VERSION:    v1"), "{out}");
    assert!(out.contains("spec\t<PodSpec>"), "{out}");
    let out = ok(control.kubectl(&["explain", "deployment.spec"]));
    assert!(
        out.contains("template\t<PodTemplateSpec> -required-"),
        "{out}"
    );
    let out = ok(control.kubectl(&["explain", "hpa.spec", "--api-version=autoscaling/v1"]));
    assert!(out.contains("targetCPUUtilizationPercentage"), "{out}");
}

#[test]
fn explain_of_an_unknown_field_names_it() {
    let control = Control::start();
    let out = control.kubectl(&["explain", "deployment.spec.nope"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("nope"), "{}", stderr(&out));
}

#[test]
fn client_side_apply_dry_run_reads_the_documents_and_prints_the_object() {
    let control = Control::start();
    let file = control.dir.path().join("web.yaml");
    std::fs::write(
        &file,
        concat!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web, namespace: default}\n",
            "spec:\n  replicas: 2\n  selector: {matchLabels: {app: web}}\n  template:\n",
            "    metadata: {labels: {app: web}}\n",
            "    spec: {containers: [{name: c, image: nginx}]}\n",
        ),
    )
    .expect("write");
    let file = file.to_str().expect("path");
    let out = control.kubectl(&[
        "apply",
        "--dry-run=client",
        "-f",
        file,
        "-o",
        "yaml",
        "-v=6",
    ]);
    let log = stderr(&out);
    assert!(out.status.success(), "{log}");
    assert!(
        log.contains("GET https://") && log.contains("/openapi/v3/apis/apps/v1?hash="),
        "{log}"
    );
    assert!(
        common::stdout(&out).contains("last-applied-configuration"),
        "{}",
        common::stdout(&out)
    );
}

/// A `kind: List` manifest, as `kubectl get -o yaml` writes several objects: kubectl validates
/// it on the client with `/openapi/v2`, then creates each item with `fieldValidation=Strict`.
#[test]
fn list_manifests_are_created_and_applied_with_each_item_validated() {
    let control = Control::start();
    let list = |extra: &str| {
        format!(
            "apiVersion: v1\nkind: List\nitems:\n\
             - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: one}}, data: {{a: '1'}}}}\n\
             - {{apiVersion: v1, kind: ConfigMap, metadata: {{name: two}}, data: {{b: '2'}}{extra}}}\n"
        )
    };
    let file = control.dir.path().join("list.yaml");
    std::fs::write(&file, list("")).expect("write");
    let path = file.to_str().expect("utf-8");
    let out = ok(control.kubectl(&["create", "-f", path]));
    assert!(
        out.contains("configmap/one created") && out.contains("configmap/two created"),
        "{out}"
    );
    std::fs::write(&file, list(", bogus: 1")).expect("write");
    let refused = control.kubectl(&["apply", "-f", path]);
    assert!(!refused.status.success(), "an unknown field was accepted");
    assert!(stderr(&refused).contains("bogus"), "{}", stderr(&refused));
    std::fs::write(&file, list("").replace("'2'", "'3'")).expect("write");
    let out = ok(control.kubectl(&["apply", "-f", path]));
    assert!(out.contains("configmap/two configured"), "{out}");
    let value = ok(control.kubectl(&["get", "configmap", "two", "-o", "jsonpath={.data.b}"]));
    assert_eq!(value, "3");
}
