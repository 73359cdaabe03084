//! `--metrics-addr` at agent start: an address already in use stops the agent with the flag
//! and the address named, before it creates a directory, a cgroup, a route or a map.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

const AGENT: &str = env!("CARGO_BIN_EXE_bosun-agent");

const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sleep, '1000']\n";

#[test]
fn a_taken_metrics_address_stops_the_agent_before_it_touches_anything() {
    let held = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = held.local_addr().expect("addr");
    let base = tempfile::tempdir().expect("tempdir");
    let manifests = base.path().join("manifests");
    std::fs::create_dir(&manifests).expect("manifests dir");
    std::fs::write(manifests.join("web.yaml"), POD).expect("manifest");
    let (root, run_dir) = (base.path().join("root"), base.path().join("run"));
    let cgroup_root = format!("bosun-test-metricsaddr-{}", std::process::id());
    let mut child = Command::new(AGENT)
        .arg("--root")
        .arg(&root)
        .arg("--run-dir")
        .arg(&run_dir)
        .args(["--cgroup-root", &cgroup_root])
        .args(["--network", "none", "--dataplane", "none"])
        .arg("--bpffs-dir")
        .arg(base.path().join("bpffs"))
        .arg("--metrics-addr")
        .arg(addr.to_string())
        .arg("--manifests")
        .arg(&manifests)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn agent");
    // The agent must exit on its own; a running one would be serving pods.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let out = child.wait_with_output().expect("output");
            panic!(
                "the agent kept running with its metrics address taken:\n{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains(&format!("--metrics-addr {addr}: address already in use")),
        "{stderr}"
    );
    for dir in [&root, &run_dir] {
        assert!(!dir.exists(), "{} was created:\n{stderr}", dir.display());
    }
    let cgroups: Vec<_> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(&cgroup_root))
        .filter(|p| Path::new(p).exists())
        .collect();
    assert!(cgroups.is_empty(), "cgroups created: {cgroups:?}");
    drop(held);
}
