//! Services through the real kubectl: the `kubernetes` Service at the first address of the
//! range with its endpoints, ClusterIPs and node ports allocated from their ranges (an explicit
//! address or port already in use is refused the way kube-apiserver refuses it, and a deleted
//! Service gives its address back), and EndpointSlices and Endpoints following the ready pods
//! of a selector with named target ports resolved. Pods are reported Running/Ready with an IP by
//! stand-in kubelets (see `common::kubelets`).

mod common;

use std::time::{Duration, Instant};

use common::kubelets::{pod_ip, FakeKubelets};
use common::{ok, stderr, Control};
use serde_json::{json, Value};

fn create(control: &Control, name: &str, object: &Value) -> std::process::Output {
    let file = control.dir.path().join(format!("{name}.json"));
    std::fs::write(&file, object.to_string()).expect("write");
    control.kubectl(&["create", "-f", file.to_str().expect("utf-8")])
}

fn get(control: &Control, what: &str) -> Value {
    serde_json::from_str(&ok(control.kubectl(&["get", what, "-o", "json"]))).expect("JSON")
}

fn wait_until(what: &str, control: &Control, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done() {
        assert!(
            Instant::now() < deadline,
            "not within 30 s: {what}\nserver log:\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn service(name: &str, spec: Value) -> Value {
    let mut s = json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": name},
        "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}]}});
    if let (Some(to), Some(add)) = (s["spec"].as_object_mut(), spec.as_object()) {
        to.extend(add.clone());
    }
    s
}

#[test]
fn the_kubernetes_service_points_at_the_server() {
    let control = Control::start();
    wait_until("the kubernetes Service exists", &control, || {
        control
            .kubectl(&["get", "svc", "kubernetes"])
            .status
            .success()
    });
    let svc = get(&control, "svc/kubernetes");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.1");
    assert_eq!(svc["spec"]["ports"][0]["port"], 443);
    let port = control.server().rsplit(':').next().unwrap_or("").to_owned();
    wait_until("its endpoints name the server", &control, || {
        let out = control.kubectl(&[
            "get",
            "endpoints",
            "kubernetes",
            "-o",
            "jsonpath={.subsets[0].addresses[0].ip}:{.subsets[0].ports[0].port}",
        ]);
        String::from_utf8_lossy(&out.stdout) == format!("127.0.0.1:{port}")
    });
    let slice = get(&control, "endpointslice/kubernetes");
    assert_eq!(slice["endpoints"][0]["addresses"][0], "127.0.0.1");
}

#[test]
fn kube_dns_is_kept_at_the_tenth_address_and_cluster_info_lists_it() {
    let control = Control::start();
    wait_until("the kube-dns Service exists", &control, || {
        control
            .kubectl(&["get", "svc", "kube-dns", "-n", "kube-system"])
            .status
            .success()
    });
    let out = control.kubectl(&["get", "svc/kube-dns", "-n", "kube-system", "-o", "json"]);
    let svc: Value = serde_json::from_str(&ok(out)).expect("JSON");
    assert_eq!(svc["spec"]["clusterIP"], "10.96.0.10", "{svc}");
    let ports: Vec<String> = svc["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|p| format!("{}/{}/{}", p["name"], p["port"], p["protocol"]))
        .collect();
    assert!(
        ports.contains(&"\"dns\"/53/\"UDP\"".to_string()),
        "{ports:?}"
    );
    assert!(
        ports.contains(&"\"dns-tcp\"/53/\"TCP\"".to_string()),
        "{ports:?}"
    );
    let info = ok(control.kubectl(&["cluster-info"]));
    assert!(
        info.contains("CoreDNS is running at") && info.contains("services/kube-dns:dns/proxy"),
        "{info}"
    );
}

#[test]
fn cluster_ips_node_ports_and_endpoints() {
    let control = Control::start();
    let _kubelets = FakeKubelets::start(&control, "default");
    let labels = json!({"app": "web"});
    let deployment = json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels}, "spec": {"containers": [
                {"name": "c", "image": "busybox", "ports": [{"name": "http", "containerPort": 8080}]}]}}}});
    ok(create(&control, "web", &deployment));
    ok(create(&control, "svc-web", &service("web", json!({}))));
    let web = get(&control, "svc/web");
    let ip: std::net::Ipv4Addr = web["spec"]["clusterIP"]
        .as_str()
        .unwrap_or("")
        .parse()
        .expect("an IPv4 ClusterIP");
    assert_eq!(ip.octets()[0], 10);
    assert!(
        (96..112).contains(&ip.octets()[1]) && ip != std::net::Ipv4Addr::new(10, 96, 0, 1),
        "{ip}"
    );
    assert_eq!(web["spec"]["clusterIPs"], json!([ip.to_string()]));

    wait_until("two ready endpoints on port 8080", &control, || {
        let slices = get(&control, "endpointslices");
        let slice = slices["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|s| s["metadata"]["labels"]["kubernetes.io/service-name"] == "web")
            .cloned();
        slice.is_some_and(|s| {
            s["ports"][0]["port"] == 8080
                && s["endpoints"].as_array().is_some_and(|e| {
                    e.len() == 2 && e.iter().all(|e| e["conditions"]["ready"] == true)
                })
        })
    });
    let pods = get(&control, "pods");
    let names: Vec<&str> = pods["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str())
        .collect();
    let describe = ok(control.kubectl(&["describe", "svc", "web"]));
    for name in &names {
        assert!(
            describe.contains(&format!("{}:8080", pod_ip(name))),
            "{describe}"
        );
    }
    // The Endpoints' addresses in IP order, as kube's RepackSubsets sorts them.
    let endpoints = get(&control, "endpoints/web");
    let ips: Vec<&str> = endpoints["subsets"][0]["addresses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|a| a["ip"].as_str())
        .collect();
    let mut sorted = ips.clone();
    sorted.sort();
    assert_eq!((ips.len(), &ips), (2, &sorted), "{endpoints}");

    // An address in use, an address outside the range, a node port in use.
    let taken = create(
        &control,
        "svc-dup",
        &service("dup", json!({"clusterIP": ip.to_string()})),
    );
    assert!(
        stderr(&taken).contains(&format!(
            "failed to allocate IP {ip}: provided IP is already allocated"
        )),
        "{}",
        stderr(&taken)
    );
    let outside = create(
        &control,
        "svc-out",
        &service("out", json!({"clusterIP": "10.200.0.9"})),
    );
    assert!(
        stderr(&outside)
            .contains("is not in the valid range. The range of valid IPs is 10.96.0.0/12"),
        "{}",
        stderr(&outside)
    );
    ok(create(
        &control,
        "svc-np",
        &service("np", json!({"type": "NodePort"})),
    ));
    let node_port = get(&control, "svc/np")["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    assert!((30000..=32767).contains(&node_port), "{node_port}");
    let mut clash = service("np2", json!({"type": "NodePort"}));
    clash["spec"]["ports"][0]["nodePort"] = json!(node_port);
    let clash = create(&control, "svc-np2", &clash);
    assert!(
        stderr(&clash).contains("provided port is already allocated"),
        "{}",
        stderr(&clash)
    );

    // Giving the address back: a new Service may take it once the old one is gone.
    ok(control.kubectl(&["delete", "svc", "web"]));
    ok(create(
        &control,
        "svc-again",
        &service("again", json!({"clusterIP": ip.to_string()})),
    ));
    wait_until(
        "the deleted Service's slices and Endpoints are gone",
        &control,
        || !ok(control.kubectl(&["get", "endpointslices,endpoints", "-o", "name"])).contains("web"),
    );
}

#[test]
fn kubectl_expose_and_create_service_allocate() {
    let control = Control::start();
    ok(control.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=busybox",
        "--port=8080",
    ]));
    ok(control.kubectl(&[
        "expose",
        "deployment",
        "web",
        "--port=80",
        "--target-port=8080",
    ]));
    let web = get(&control, "svc/web");
    assert!(
        web["spec"]["clusterIP"]
            .as_str()
            .is_some_and(|ip| ip.starts_with("10.")),
        "{web:#}"
    );
    assert_eq!(web["spec"]["selector"], json!({"app": "web"}));
    ok(control.kubectl(&["create", "service", "nodeport", "edge", "--tcp=80:8080"]));
    let edge = get(&control, "svc/edge");
    let port = edge["spec"]["ports"][0]["nodePort"]
        .as_u64()
        .expect("a node port");
    assert!((30000..=32767).contains(&port), "{edge:#}");
    let table = ok(control.kubectl(&["get", "svc", "edge"]));
    assert!(
        table.contains(&format!("80:{port}/TCP")) && table.contains("NodePort"),
        "{table}"
    );
}
