//! PodDisruptionBudgets through the real kubectl, without nodes: `kubectl create pdb`
//! (protobuf) and its table; kube's validation texts for a budget naming both bounds, a
//! negative one and a bad percentage; the disruption controller's status over pods that are
//! Ready or not (written as a node would); an unready pod evicted under the default
//! IfHealthyBudget; an eviction (`pods/eviction`, JSON through `kubectl create
//! --raw`) refused with 429 while the budget allows nothing, and let through — the pod going —
//! once it allows one.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control, Streaming};
use serde_json::{json, Value};

fn get(control: &Control, args: &[&str]) -> Value {
    let mut full = vec!["get"];
    full.extend_from_slice(args);
    full.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&ok(control.kubectl(&full))).unwrap_or_default()
}

fn wait(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "not within {limit:?}: {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn apply(control: &Control, name: &str, text: &str) -> std::process::Output {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    control.kubectl(&["apply", "-f", path.to_str().unwrap_or_default()])
}

#[test]
fn a_budget_is_validated_computed_and_honoured_by_evictions() {
    let control = Control::start();
    for (spec, want) in [
        (
            "minAvailable: 1\n  maxUnavailable: 1",
            "minAvailable and maxUnavailable cannot be both set",
        ),
        (
            "minAvailable: -1",
            "spec.minAvailable: Invalid value: -1: must be greater than or equal to 0",
        ),
        (
            "maxUnavailable: 120%",
            "spec.maxUnavailable: Invalid value: \"120%\": must not be greater than 100%",
        ),
    ] {
        let text = format!(
            "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {{name: bad}}\nspec:\n  {spec}\n  selector: {{matchLabels: {{app: web}}}}\n"
        );
        let out = apply(&control, "bad.yaml", &text);
        assert!(!out.status.success(), "{spec}");
        assert!(
            stderr(&out).contains("The PodDisruptionBudget \"bad\" is invalid")
                && stderr(&out).contains(want),
            "{spec}: {}",
            stderr(&out)
        );
    }

    // Two Ready pods of app=web and one running but not Ready (their status written as their
    // node would).
    for (pod, ready) in [("web-a", "True"), ("web-b", "True"), ("web-c", "False")] {
        let text = format!(
            "apiVersion: v1\nkind: Pod\nmetadata: {{name: {pod}, labels: {{app: web}}}}\nspec:\n  nodeName: n1\n  containers: [{{name: c, image: busybox}}]\n"
        );
        ok(apply(&control, "pod.yaml", &text));
        let status = json!({"status": {"phase": "Running",
            "conditions": [{"type": "Ready", "status": ready}]}});
        ok(control.kubectl(&[
            "patch",
            "pod",
            pod,
            "--subresource=status",
            "--type=merge",
            "-p",
            &status.to_string(),
        ]));
    }
    ok(control.kubectl(&[
        "create",
        "pdb",
        "web",
        "--selector=app=web",
        "--min-available=2",
    ]));
    wait("the budget's status", Duration::from_secs(20), || {
        let s = &get(&control, &["pdb", "web"])["status"];
        s["expectedPods"] == 3 && s["currentHealthy"] == 2 && s["disruptionsAllowed"] == 0
    });
    let table = ok(control.kubectl(&["get", "pdb"]));
    assert!(
        table.contains("NAME   MIN AVAILABLE   MAX UNAVAILABLE   ALLOWED DISRUPTIONS   AGE"),
        "{table}"
    );

    let eviction = control.dir.path().join("eviction.json");
    let body =
        json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": "web-a"}});
    std::fs::write(&eviction, body.to_string()).expect("write eviction");
    let url = "/api/v1/namespaces/default/pods/web-a/eviction";
    let evict = || {
        control.kubectl(&[
            "create",
            "--raw",
            url,
            "-f",
            eviction.to_str().unwrap_or_default(),
        ])
    };
    let out = evict();
    assert!(
        stderr(&out).contains("Cannot evict pod as it would violate the pod's disruption budget."),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        get(&control, &["pod", "web-a"])["metadata"]["deletionTimestamp"],
        Value::Null
    );
    // The unready pod may go (IfHealthyBudget: the budget has its 2 healthy pods), taking no
    // disruption.
    let unready = body.to_string().replace("web-a", "web-c");
    std::fs::write(&eviction, unready).expect("write eviction");
    ok(control.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/web-c/eviction",
        "-f",
        eviction.to_str().unwrap_or_default(),
    ]));
    let pod = get(&control, &["pod", "web-c"]);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
    std::fs::write(&eviction, body.to_string()).expect("write eviction");

    ok(control.kubectl(&[
        "patch",
        "pdb",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"minAvailable":1}}"#,
    ]));
    wait("one disruption allowed", Duration::from_secs(20), || {
        get(&control, &["pdb", "web"])["status"]["disruptionsAllowed"] == 1
    });
    // The eviction lists web-a in `disruptedPods` only until the controller's next pass sees
    // web-a terminating (kube's buildDisruptedPodMap skips pods being deleted): a watch of the
    // budget, opened before, sees the entry.
    let watch = Streaming::spawn(
        &control.kubeconfig(),
        &[
            "get",
            "pdb",
            "web",
            "-w",
            "-o",
            r#"jsonpath={.status.disruptedPods}{"\n"}"#,
        ],
    );
    watch.wait_for("", Duration::from_secs(20));
    ok(evict());
    watch.wait_for("web-a", Duration::from_secs(20));
    // It took the one disruption.
    let budget = get(&control, &["pdb", "web"]);
    assert_eq!(budget["status"]["disruptionsAllowed"], 0, "{budget:#}");
    let pod = get(&control, &["pod", "web-a"]);
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "{pod:#}");
    // The second pod may not go now: web-a still counts as disrupted.
    let body = body.to_string().replace("web-a", "web-b");
    std::fs::write(&eviction, body).expect("write eviction");
    let out = control.kubectl(&[
        "create",
        "--raw",
        "/api/v1/namespaces/default/pods/web-b/eviction",
        "-f",
        eviction.to_str().unwrap_or_default(),
    ]);
    assert!(
        stderr(&out).contains("disruption budget"),
        "{}",
        stderr(&out)
    );
}
