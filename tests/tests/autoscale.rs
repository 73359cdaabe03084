//! Resource metrics and autoscaling with the real kubectl: one node on a fabric the host is
//! plugged into, bosun-control scraping its kubelet API every 2 s and evaluating HPAs every
//! 2 s with a 5 s scale-down window. A Deployment's pod burns CPU (capped at 100m, requesting
//! 50m) while a file of a hostPath directory the test owns exists: `kubectl top pods` shows it
//! with non-zero CPU and `kubectl top nodes` lists the node; `kubectl autoscale --cpu-percent=50
//! --min=1 --max=3` scales the Deployment to 3 with kube's SuccessfulRescale event; once the
//! test removes the file the load stops and it scales back to 1.

use std::time::Duration;

use bosun_e2e::{stdout, unique, wait_until, Control, Fabric, Node, NodeOptions};

const APP: &str = r#"apiVersion: apps/v1
kind: Deployment
metadata: {name: burn}
spec:
  replicas: 1
  selector: {matchLabels: {app: burn}}
  template:
    metadata: {labels: {app: burn}}
    spec:
      terminationGracePeriodSeconds: 1
      containers:
      - name: c
        image: bosun.test/busybox:1
        command: [sh, -c, "while :; do if [ -f /load/on ]; then :; else sleep 1; fi; done"]
        resources: {requests: {cpu: 50m}, limits: {cpu: 100m}}
        volumeMounts: [{name: load, mountPath: /load}]
      volumes:
      - {name: load, hostPath: {path: LOADDIR}}
"#;

/// The hostPath directory whose `on` file switches the load; removed on drop.
struct LoadDir(std::path::PathBuf);

impl Drop for LoadDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn replicas(control: &Control) -> i64 {
    control
        .get_json(&["deployment", "burn"])
        .and_then(|d| d["spec"]["replicas"].as_i64())
        .unwrap_or(-1)
}

fn events(control: &Control) -> String {
    stdout(&control.kubectl(&[
        "get",
        "events",
        "--field-selector",
        "involvedObject.kind=HorizontalPodAutoscaler",
        "-o",
        "jsonpath={range .items[*]}{.reason}: {.message}{\"\\n\"}{end}",
    ]))
}

#[test]
fn top_shows_a_burning_pod_and_autoscale_follows_the_load() {
    bosun_e2e::require_root();
    let control = Control::start_with(&[
        "--metric-resolution=2s",
        "--horizontal-pod-autoscaler-sync-period=2s",
        "--horizontal-pod-autoscaler-downscale-stabilization=5s",
    ]);
    let fabric = Fabric::with_host_link();
    let options = NodeOptions {
        fabric: Some(&fabric),
        dataplane: false,
        static_pods: false,
    };
    let mut node = Node::with(1, &control, options);
    node.start_agent();
    wait_until("the node is Ready", Duration::from_secs(30), || {
        control.node_ready(&node.name)
    });
    let load = LoadDir(std::env::temp_dir().join(unique("bosun-hpa-load")));
    std::fs::create_dir_all(&load.0).expect("load dir");
    std::fs::write(load.0.join("on"), "").expect("switch the load on");
    control.apply(&APP.replace("LOADDIR", &load.0.display().to_string()));
    let debug = || {
        format!(
            "\n--- control log ---\n{}\n--- agent log ---\n{}",
            control.log(),
            node.log()
        )
    };

    // kubectl top pods: the burning pod with non-zero CPU (millicores).
    let mut top = String::new();
    let burning = wait_until_ok("kubectl top pods shows burn with CPU", 60, || {
        top = stdout(&control.kubectl(&["top", "pods", "-l", "app=burn", "--no-headers"]));
        top.lines().any(|l| {
            let cols: Vec<&str> = l.split_whitespace().collect();
            cols.len() >= 3
                && cols[0].starts_with("burn-")
                && cols[1]
                    .trim_end_matches('m')
                    .parse::<u64>()
                    .is_ok_and(|m| m > 0)
        })
    });
    assert!(burning, "kubectl top pods: {top}{}", debug());
    let nodes = stdout(&control.kubectl(&["top", "nodes", "--no-headers"]));
    assert!(
        nodes
            .lines()
            .any(|l| l.split_whitespace().next() == Some(node.name.as_str())),
        "kubectl top nodes: {nodes}{}",
        debug()
    );

    // kubectl autoscale: v1 HPA, converted; the load takes it to the maximum.
    let out = control.kubectl(&[
        "autoscale",
        "deployment",
        "burn",
        "--cpu-percent=50",
        "--min=1",
        "--max=3",
    ]);
    assert!(out.status.success(), "kubectl autoscale: {out:?}");
    let up = wait_until_ok("the HPA scales burn to 3", 60, || replicas(&control) == 3);
    assert!(
        up,
        "replicas {}; events:\n{}{}",
        replicas(&control),
        events(&control),
        debug()
    );
    let hpa = control
        .get_json(&["hpa", "burn"])
        .expect("the HPA reads back");
    assert_eq!(hpa["apiVersion"], "autoscaling/v2", "{hpa}");
    assert!(
        events(&control).contains(
            "SuccessfulRescale: New size: 3; reason: cpu resource utilization (percentage of request) above target"
        ),
        "{}",
        events(&control)
    );

    // The load stops: after the 5 s window it comes back to the minimum.
    std::fs::remove_file(load.0.join("on")).expect("switch the load off");
    let down = wait_until_ok("the HPA scales burn back to 1", 60, || {
        replicas(&control) == 1
    });
    assert!(
        down,
        "replicas {}; events:\n{}{}",
        replicas(&control),
        events(&control),
        debug()
    );
    assert!(
        events(&control)
            .contains("SuccessfulRescale: New size: 1; reason: All metrics below target"),
        "{}",
        events(&control)
    );
    let hpa = control
        .get_json(&["hpa.v2.autoscaling", "burn"])
        .expect("the HPA");
    let active = hpa["status"]["conditions"]
        .as_array()
        .and_then(|cs| cs.iter().find(|c| c["type"] == "ScalingActive").cloned());
    assert_eq!(
        active.map(|c| c["status"].clone()),
        Some("True".into()),
        "{hpa}"
    );
    assert!(
        hpa["status"]["currentMetrics"][0]["resource"]["current"]["averageUtilization"].is_i64(),
        "{hpa}"
    );
}

/// Polls `check` every 500 ms for up to `secs` seconds; whether it came true (unlike
/// `wait_until`, the caller then fails with the cluster's logs).
fn wait_until_ok(_what: &str, secs: u64, mut check: impl FnMut() -> bool) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(secs);
    while std::time::Instant::now() < end {
        if check() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    false
}
