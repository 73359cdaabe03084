//! In-cluster API access end to end, as client-go's `rest.InClusterConfig` finds it: a pod
//! that asks for nothing gets (from bosun-control's ServiceAccount admission) the
//! `kube-api-access-*` volume, and the agent writes its token, the cluster CA (from the
//! `kube-root-ca.crt` ConfigMap) and the namespace at
//! `/var/run/secrets/kubernetes.io/serviceaccount`, and gives it `KUBERNETES_SERVICE_HOST`/
//! `_PORT` naming the `kubernetes` Service (and, with service links, the namespace's
//! Services). The token and CA, used from the host against bosun-control, authenticate as
//! `system:serviceaccount:default:default` bound to the pod (`kubectl auth whoami`), refused
//! what RBAC does not grant it until a RoleBinding to `view` lets it list the pods.

use std::time::Duration;

use bosun_e2e::{stderr, stdout, wait_until, Control, Node};

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: in-cluster}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'cd /var/run/secrets/kubernetes.io/serviceaccount; echo NS=$(cat namespace) HOST=$KUBERNETES_SERVICE_HOST PORT=$KUBERNETES_SERVICE_PORT HTTPS=$KUBERNETES_SERVICE_PORT_HTTPS LINK=$WEB_SERVICE_PORT CA=$(tr -d "\n" < ca.crt | tr " " _); echo TOKEN=$(cat token); sleep 1000']
"#;

const SERVICE: &str = r#"apiVersion: v1
kind: Service
metadata: {name: web}
spec:
  ports: [{port: 8080}]
"#;

/// The value after `KEY=` in the log.
fn field(log: &str, key: &str) -> Option<String> {
    log.split_whitespace()
        .find_map(|w| w.strip_prefix(&format!("{key}=")))
        .map(str::to_owned)
}

#[test]
fn a_pod_finds_the_api_its_token_and_ca_as_in_kubernetes() {
    let control = Control::start();
    let mut node = Node::new(99, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_until("the node Ready", Duration::from_secs(30), || {
        control.node_ready(&name)
    });
    control.apply(SERVICE);
    control.apply(&POD.replace("NODE", &name));
    let mut log = String::new();
    let shown = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            "the token in the pod's log",
            Duration::from_secs(60),
            || {
                log = node.logs("default", "in-cluster");
                log.contains("TOKEN=ey")
            },
        )
    }));
    if shown.is_err() {
        panic!(
            "no token: {log}\n--- pod ---\n{:?}\n--- agent log ---\n{}\n--- control log ---\n{}",
            control.get_json(&["pod", "in-cluster"]),
            node.log(),
            control.log()
        );
    }
    let cluster_ip = control
        .get_json(&["service", "kubernetes"])
        .and_then(|s| s["spec"]["clusterIP"].as_str().map(str::to_owned))
        .expect("the kubernetes Service");
    assert_eq!(field(&log, "NS").as_deref(), Some("default"), "{log}");
    assert_eq!(field(&log, "HOST"), Some(cluster_ip), "{log}");
    assert_eq!(field(&log, "PORT").as_deref(), Some("443"), "{log}");
    assert_eq!(field(&log, "HTTPS").as_deref(), Some("443"), "{log}");
    assert_eq!(field(&log, "LINK").as_deref(), Some("8080"), "{log}");
    let ca_path = control.dir.path().join("pki/ca.crt");
    let ca = std::fs::read_to_string(&ca_path).expect("the cluster CA");
    let flat = ca.replace('\n', "").replace(' ', "_");
    assert_eq!(field(&log, "CA"), Some(flat), "{log}");

    // The pod's token, with the pod's CA (the same bytes), speaks for its account.
    let token = field(&log, "TOKEN").expect("TOKEN");
    let as_pod = |args: &[&str]| {
        std::process::Command::new("kubectl")
            .arg(format!("--server=https://127.0.0.1:{}", control.port))
            .arg(format!("--certificate-authority={}", ca_path.display()))
            .arg(format!("--token={token}"))
            .arg("--request-timeout=10s")
            .args(args)
            .env("KUBECONFIG", "/dev/null")
            .output()
            .expect("run kubectl")
    };
    let out = as_pod(&["auth", "whoami", "-o", "json"]);
    let review: serde_json::Value =
        serde_json::from_str(&stdout(&out)).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let user = &review["status"]["userInfo"];
    assert_eq!(user["username"], "system:serviceaccount:default:default");
    // A pod's token names its pod (kube's extra of a pod-bound token).
    let pod_uid = control
        .get_json(&["pod", "in-cluster"])
        .map(|pod| pod["metadata"]["uid"].clone());
    let extra = &user["extra"];
    assert_eq!(
        extra["authentication.kubernetes.io/pod-name"],
        serde_json::json!(["in-cluster"]),
        "{review}"
    );
    assert_eq!(
        pod_uid.map(|uid| serde_json::json!([uid])).as_ref(),
        Some(&extra["authentication.kubernetes.io/pod-uid"]),
        "{review}"
    );

    // RBAC: the account may not list pods until a RoleBinding grants it `view`.
    let refused = as_pod(&["get", "pods"]);
    assert!(
        stderr(&refused).contains(
            "pods is forbidden: User \"system:serviceaccount:default:default\" cannot list resource \"pods\""
        ),
        "{}",
        stderr(&refused)
    );
    let bound = control.kubectl(&[
        "create",
        "rolebinding",
        "default-view",
        "--clusterrole=view",
        "--serviceaccount=default:default",
    ]);
    assert!(bound.status.success(), "{}", stderr(&bound));
    wait_until("the token lists pods", Duration::from_secs(30), || {
        stdout(&as_pod(&["get", "pods", "-o", "name"])).contains("pod/in-cluster")
    });
}
