//! The real kubectl against bosun-control: version negotiation, discovery, TLS with the CA and
//! client certificate of the kubeconfig the server wrote, and 401 without credentials.

mod common;

use common::{kubectl_with, ok, stderr, Control};

#[test]
fn kubectl_picks_its_1_32_client_and_reads_the_server_version() {
    let control = Control::start();
    let out = ok(control.kubectl(&["version", "-o", "json"]));
    let version: serde_json::Value = serde_json::from_str(&out).expect("version JSON");
    assert_eq!(version["serverVersion"]["major"], "1");
    assert_eq!(version["serverVersion"]["minor"], "32");
    assert!(
        version["clientVersion"]["minor"]
            .as_str()
            .is_some_and(|m| m.starts_with("32")),
        "the dispatcher should run its 1.32 client: {out}"
    );
}

#[test]
fn api_resources_lists_every_served_kind_with_short_names() {
    let control = Control::start();
    let out = ok(control.kubectl(&["api-resources", "--no-headers"]));
    let rows: Vec<Vec<&str>> = out
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    let find = |name: &str, api: &str| {
        rows.iter()
            .find(|r| r[0] == name && r.contains(&api))
            .unwrap_or_else(|| panic!("{name} {api} missing:\n{out}"))
    };
    assert_eq!(
        find("deployments", "apps/v1"),
        &["deployments", "deploy", "apps/v1", "true", "Deployment"]
    );
    assert_eq!(
        find("namespaces", "v1"),
        &["namespaces", "ns", "v1", "false", "Namespace"]
    );
    // `ev` is core v1's only (events.k8s.io/v1 has no short name), so `kubectl get ev`
    // warns of no ambiguity.
    assert_eq!(
        find("events", "events.k8s.io/v1"),
        &["events", "events.k8s.io/v1", "true", "Event"]
    );
    let events = control.kubectl(&["get", "ev"]);
    assert!(events.status.success(), "{}", stderr(&events));
    assert!(
        !stderr(&events).contains("could also match"),
        "{}",
        stderr(&events)
    );
    find("horizontalpodautoscalers", "autoscaling/v2");
    find("endpointslices", "discovery.k8s.io/v1");
    find("leases", "coordination.k8s.io/v1");
    // metrics.k8s.io (served from the scraped window), as metrics-server lists it.
    assert_eq!(
        find("pods", "metrics.k8s.io/v1beta1"),
        &["pods", "metrics.k8s.io/v1beta1", "true", "PodMetrics"]
    );
    find("nodes", "metrics.k8s.io/v1beta1");
    // Legacy discovery documents answer too (older clients, kube-rs).
    let groups = ok(control.kubectl(&["get", "--raw", "/apis"]));
    let groups: serde_json::Value = serde_json::from_str(&groups).expect("APIGroupList");
    assert_eq!(groups["kind"], "APIGroupList");
    let core = ok(control.kubectl(&["get", "--raw", "/api/v1"]));
    assert!(core.contains("\"kind\":\"APIResourceList\""), "{core}");
}

#[test]
fn requests_without_credentials_are_unauthorized() {
    let control = Control::start();
    // A kubeconfig that trusts the server but carries a token nobody issued.
    let text = std::fs::read_to_string(control.kubeconfig()).expect("kubeconfig");
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).expect("YAML");
    config["users"][0]["user"] = serde_yaml::from_str("{token: not-a-token}").expect("YAML");
    let stranger = control.dir.path().join("stranger.kubeconfig");
    std::fs::write(&stranger, serde_yaml::to_string(&config).expect("YAML")).expect("write");
    let out = kubectl_with(&stranger, &["get", "--raw", "/api/v1"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("Unauthorized"), "{}", stderr(&out));
    // /version stays public, as in Kubernetes.
    ok(kubectl_with(&stranger, &["get", "--raw", "/version"]));
    // No credentials at all (Python's TLS client with the CA only): 401 with a Status.
    std::fs::write(control.dir.path().join("ca.crt"), ca_pem(&config)).expect("ca");
    let script = "import ssl,sys,urllib.request,urllib.error\n\
ctx=ssl.create_default_context(cafile=sys.argv[2])\n\
try:\n    urllib.request.urlopen(sys.argv[1]+'/api/v1',context=ctx,timeout=10)\n\
except urllib.error.HTTPError as e:\n    print(e.code, e.read().decode())\n";
    let out = std::process::Command::new("python3")
        .args(["-c", script, &control.server()])
        .arg(control.dir.path().join("ca.crt"))
        .output()
        .expect("python3");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.starts_with("401 ") && text.contains("\"reason\":\"Unauthorized\""),
        "{text}{}",
        stderr(&out)
    );
    // A path we do not serve is a 404 Status for an authenticated caller.
    let out = control.kubectl(&["get", "--raw", "/apis/example.com/v1"]);
    assert!(stderr(&out).contains("NotFound"), "{}", stderr(&out));
}

fn ca_pem(config: &serde_yaml::Value) -> Vec<u8> {
    use base64::Engine;
    let data = config["clusters"][0]["cluster"]["certificate-authority-data"]
        .as_str()
        .expect("CA data");
    base64::engine::general_purpose::STANDARD
        .decode(data)
        .expect("base64")
}
