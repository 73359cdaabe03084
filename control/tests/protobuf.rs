//! `kubectl create <kind>` sends protobuf bodies: the real kubectl creates a namespace, a
//! deployment, a configmap, a secret, a service, a job, a cronjob, an ingress and a service
//! account, and each reads back with the fields kubectl sent (and Kubernetes' defaults).

mod common;

use std::time::Duration;

use common::{ok, Control, Streaming};
use serde_json::Value;

fn get(control: &Control, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(control.kubectl(&all))).expect("kubectl get -o json")
}

#[test]
fn kubectl_create_sends_protobuf_and_the_objects_read_back() {
    let control = Control::start();

    let out = ok(control.kubectl(&["create", "namespace", "shop"]));
    assert!(out.contains("namespace/shop created"), "{out}");
    let ns = get(&control, &["namespace", "shop"]);
    assert_eq!(ns["status"]["phase"], "Active");

    let out = ok(control.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx",
        "--replicas=3",
        "--port=80",
        "-n",
        "shop",
    ]));
    assert!(out.contains("deployment.apps/web created"), "{out}");
    let web = get(&control, &["deployment", "web", "-n", "shop"]);
    assert_eq!(web["spec"]["replicas"], 3);
    assert_eq!(web["spec"]["selector"]["matchLabels"]["app"], "web");
    let container = &web["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["name"], "nginx");
    assert_eq!(container["image"], "nginx");
    assert_eq!(container["ports"][0]["containerPort"], 80);
    assert_eq!(container["ports"][0]["protocol"], "TCP", "defaulted");
    assert_eq!(web["spec"]["strategy"]["type"], "RollingUpdate");
    assert!(web["metadata"]["creationTimestamp"].is_string());
    assert_eq!(
        web["metadata"]["generation"], 1,
        "a Deployment tracks its generation"
    );

    ok(control.kubectl(&[
        "create",
        "configmap",
        "settings",
        "--from-literal=color=blue",
        "--from-literal=size=",
        "-n",
        "shop",
    ]));
    let cm = get(&control, &["configmap", "settings", "-n", "shop"]);
    assert_eq!(cm["data"]["color"], "blue");
    assert_eq!(cm["data"]["size"], "");
    assert!(
        cm["metadata"].get("generation").is_none() && ns["metadata"].get("generation").is_none(),
        "a ConfigMap and a Namespace have no generation, as in Kubernetes: {cm} {ns}"
    );

    ok(control.kubectl(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=s3cr3t",
        "-n",
        "shop",
    ]));
    let password = ok(control.kubectl(&[
        "get",
        "secret",
        "creds",
        "-n",
        "shop",
        "-o",
        "jsonpath={.data.password}",
    ]));
    use base64::Engine;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(password.trim())
        .expect("base64");
    assert_eq!(decoded, b"s3cr3t");
    let secret = get(&control, &["secret", "creds", "-n", "shop"]);
    assert_eq!(secret["type"], "Opaque");

    ok(control.kubectl(&[
        "create",
        "service",
        "clusterip",
        "web",
        "--tcp=80:8080",
        "-n",
        "shop",
    ]));
    let svc = get(&control, &["service", "web", "-n", "shop"]);
    assert_eq!(svc["spec"]["type"], "ClusterIP");
    assert_eq!(svc["spec"]["ports"][0]["port"], 80);
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(svc["spec"]["ports"][0]["protocol"], "TCP");
    assert_eq!(svc["spec"]["selector"]["app"], "web");

    ok(control.kubectl(&[
        "create",
        "job",
        "once",
        "--image=busybox",
        "-n",
        "shop",
        "--",
        "echo",
        "hi",
    ]));
    let job = get(&control, &["job", "once", "-n", "shop"]);
    let container = &job["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "busybox");
    assert_eq!(container["command"], serde_json::json!(["echo", "hi"]));
    assert_eq!(job["spec"]["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["spec"]["backoffLimit"], 6, "defaulted");

    ok(control.kubectl(&[
        "create",
        "cronjob",
        "nightly",
        "--image=busybox",
        "--schedule=*/5 * * * *",
        "-n",
        "shop",
        "--",
        "date",
    ]));
    let cron = get(&control, &["cronjob", "nightly", "-n", "shop"]);
    assert_eq!(cron["spec"]["schedule"], "*/5 * * * *");
    let template = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(template["containers"][0]["image"], "busybox");
    assert_eq!(
        template["containers"][0]["command"],
        serde_json::json!(["date"])
    );
    assert_eq!(template["restartPolicy"], "OnFailure");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Allow", "defaulted");
    let table = ok(control.kubectl(&["get", "cronjobs", "-n", "shop"]));
    assert!(table.contains("nightly   */5 * * * *"), "{table}");

    // An Ingress rule's `http` is an inline member of its proto message.
    ok(control.kubectl(&[
        "create",
        "ingress",
        "shop",
        "--rule=shop.example/api*=web:80",
        "-n",
        "shop",
    ]));
    let ingress = get(&control, &["ingress", "shop", "-n", "shop"]);
    let rule = &ingress["spec"]["rules"][0];
    assert_eq!(rule["host"], "shop.example");
    let path = &rule["http"]["paths"][0];
    assert_eq!(path["path"], "/api");
    assert_eq!(path["pathType"], "Prefix");
    assert_eq!(path["backend"]["service"]["name"], "web");
    assert_eq!(path["backend"]["service"]["port"]["number"], 80);

    ok(control.kubectl(&["create", "serviceaccount", "robot", "-n", "shop"]));
    let sa = get(&control, &["serviceaccount", "robot", "-n", "shop"]);
    assert_eq!(sa["metadata"]["namespace"], "shop");
}

/// `kubectl autoscale` creates an autoscaling/v1 HorizontalPodAutoscaler (protobuf); it is
/// stored as v2 with a cpu Utilization metric and reads back at both versions.
#[test]
fn kubectl_autoscale_creates_a_v1_hpa_that_reads_back_at_v1_and_v2() {
    let control = Control::start();
    ok(control.kubectl(&["create", "deployment", "web", "--image=nginx"]));
    let out = ok(control.kubectl(&[
        "autoscale",
        "deployment",
        "web",
        "--min=2",
        "--max=5",
        "--cpu-percent=80",
    ]));
    assert!(out.contains("web autoscaled"), "{out}");
    let v2 = get(
        &control,
        &["horizontalpodautoscalers.v2.autoscaling", "web"],
    );
    assert_eq!(v2["apiVersion"], "autoscaling/v2");
    assert_eq!(v2["spec"]["minReplicas"], 2);
    assert_eq!(v2["spec"]["maxReplicas"], 5);
    assert_eq!(v2["spec"]["scaleTargetRef"]["name"], "web");
    assert_eq!(
        v2["spec"]["metrics"],
        serde_json::json!([{"type": "Resource", "resource": {"name": "cpu",
            "target": {"type": "Utilization", "averageUtilization": 80}}}])
    );
    let v1 = get(
        &control,
        &["horizontalpodautoscalers.v1.autoscaling", "web"],
    );
    assert_eq!(v1["apiVersion"], "autoscaling/v1");
    assert_eq!(v1["spec"]["targetCPUUtilizationPercentage"], 80);
    assert!(v1["spec"].get("metrics").is_none(), "{v1}");
    let table = ok(control.kubectl(&["get", "hpa"]));
    assert!(table.contains("Deployment/web"), "{table}");
    // A v1 watch sees v1 objects: the patch below arrives converted.
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &[
            "get",
            "horizontalpodautoscalers.v1.autoscaling",
            "web",
            "-w",
            "--output-watch-events",
            "-o",
            "json",
        ],
    );
    watch.wait_for(
        r#""targetCPUUtilizationPercentage":80"#,
        Duration::from_secs(10),
    );
    // A v1 merge patch of the target lands in the v2 metric.
    ok(control.kubectl(&[
        "patch",
        "horizontalpodautoscalers.v1.autoscaling",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"targetCPUUtilizationPercentage":60}}"#,
    ]));
    let v2 = get(&control, &["hpa", "web"]);
    assert_eq!(
        v2["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        60
    );
    let seen = watch.wait_for(
        r#""targetCPUUtilizationPercentage":60"#,
        Duration::from_secs(10),
    );
    let modified = seen.last().expect("a line");
    assert!(modified.contains(r#""type":"MODIFIED""#), "{modified}");
    assert!(
        modified.contains(r#""apiVersion":"autoscaling/v1""#),
        "{modified}"
    );
}
