//! kube-apiserver's `/metrics` through the real kubectl (`kubectl get --raw /metrics`): the
//! request counters and latency histograms by verb and resource, the in-flight gauge, the
//! store's calls by operation and resource, the stored objects per resource and the process
//! metrics; a user in the `system:monitoring` group may read it (kube's bootstrap ClusterRole
//! and binding), another gets kube's 403.

mod common;

use common::{kubectl_with, ok, stderr, Control};

/// The value of the sample line starting with `series` (labels included), if any.
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[test]
fn metrics_count_requests_objects_and_the_process() {
    let dir = tempfile::tempdir().expect("temp dir");
    let file = dir.path().join("tokens.csv");
    std::fs::write(
        &file,
        "s3cr3t-prom,prometheus,1,\"system:monitoring\"\ns3cr3t-bob,bob,2,\n",
    )
    .expect("write");
    let control = Control::start_with(&["--token-auth-file", file.to_str().expect("utf-8")]);
    for i in 0..3 {
        ok(control.kubectl(&["create", "configmap", &format!("c{i}")]));
    }
    ok(control.kubectl(&["get", "configmaps"]));

    let text = ok(control.kubectl(&["get", "--raw", "/metrics"]));
    let created = sample(
        &text,
        r#"apiserver_request_total{verb="POST",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver",code="201"}"#,
    );
    // Ours, and the root-CA publisher's kube-root-ca.crt in each namespace (the in-process
    // controllers' requests count, as kube-controller-manager's do).
    assert!(created.is_some_and(|n| n >= 3.0), "{text}");
    let listed = sample(
        &text,
        r#"apiserver_request_total{verb="LIST",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="namespace",component="apiserver",code="200"}"#,
    );
    assert!(listed >= Some(1.0), "{text}");
    let timed = sample(
        &text,
        r#"apiserver_request_duration_seconds_count{verb="POST",dry_run="",group="",version="v1",resource="configmaps",subresource="",scope="resource",component="apiserver"}"#,
    );
    assert!(timed.is_some_and(|n| n >= 3.0), "{text}");
    // The scrape itself is in flight while it is encoded.
    assert_eq!(
        sample(
            &text,
            r#"apiserver_current_inflight_requests{request_kind="readOnly"}"#
        ),
        Some(1.0),
        "{text}"
    );
    // kube-root-ca.crt is in every namespace, so more than our three.
    let stored = sample(&text, r#"apiserver_storage_objects{resource="configmaps"}"#);
    assert!(stored.is_some_and(|n| n >= 3.0), "{text}");
    assert_eq!(
        sample(&text, r#"apiserver_storage_objects{resource="namespaces"}"#),
        Some(4.0),
        "{text}"
    );
    // The store's own calls, under kube's etcd_* names (the embedded store here).
    let stored = sample(
        &text,
        r#"etcd_requests_total{operation="create",type="configmaps"}"#,
    );
    assert!(stored.is_some_and(|n| n >= 3.0), "{text}");
    let timed = sample(
        &text,
        r#"etcd_request_duration_seconds_count{operation="list",type="configmaps"}"#,
    );
    assert!(timed.is_some_and(|n| n >= 1.0), "{text}");
    let rss = sample(&text, "process_resident_memory_bytes ");
    assert!(rss.is_some_and(|b| b > 1e6), "{text}");
    assert!(
        sample(&text, "process_cpu_seconds_total ").is_some(),
        "{text}"
    );

    let prometheus = control.token_kubeconfig("prom", "s3cr3t-prom");
    let text = ok(kubectl_with(&prometheus, &["get", "--raw", "/metrics"]));
    assert!(text.contains("apiserver_request_total{"), "{text}");
    let bob = control.token_kubeconfig("bob", "s3cr3t-bob");
    let out = kubectl_with(&bob, &["get", "--raw", "/metrics"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains(r#"forbidden: User "bob" cannot get path "/metrics""#),
        "{}",
        stderr(&out)
    );
}
