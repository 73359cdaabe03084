//! Kernel test helpers for bosun-cni: throwaway network namespaces ("nodes" and "pods", from
//! `bosun-test-support`), and a runner that executes the plugin inside a node
//! netns. Traffic stays inside these namespaces; nothing is added to the host's root netns.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};

// Not every test file uses every helper.
#[allow(unused_imports)]
pub use bosun_test_support::{unique, Netns};
use serde_json::Value;

/// A node netns with a node address on `lo` (so the node has a source address for pods).
pub fn node(prefix: &str, node_ip: &str) -> Netns {
    let n = Netns::new(prefix);
    n.ip(&["addr", "add", &format!("{node_ip}/32"), "dev", "lo"]);
    n
}

/// The plugin's exit status and parsed stdout.
pub struct PluginOutput {
    pub success: bool,
    pub code: Option<i32>,
    pub json: Option<Value>,
}

/// Runs bosun-cni in `node` (or the current netns if `None`) with `env` and `stdin`.
pub fn plugin(node: Option<&Netns>, env: &[(&str, &str)], stdin: &str) -> PluginOutput {
    let bin = env!("CARGO_BIN_EXE_bosun-cni");
    let mut cmd = match node {
        Some(n) => n.command(bin),
        None => Command::new(bin),
    };
    cmd.env_clear()
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawn bosun-cni");
    if let Some(mut input) = child.stdin.take() {
        let _ = input.write_all(stdin.as_bytes());
    }
    let out = child.wait_with_output().expect("wait bosun-cni");
    let text = String::from_utf8_lossy(&out.stdout);
    PluginOutput {
        success: out.status.success(),
        code: out.status.code(),
        json: (!text.trim().is_empty()).then(|| {
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("stdout not JSON ({e}): {text}"))
        }),
    }
}

/// A bosun-cni config for `subnet` with IPAM data under `data_dir`.
pub fn conf(version: &str, subnet: &str, data_dir: &std::path::Path) -> Value {
    serde_json::json!({
        "cniVersion": version,
        "name": "bosun-test",
        "type": "bosun-cni",
        "mtu": 1400,
        "ipam": {"subnet": subnet, "dataDir": data_dir},
    })
}

/// Runs `cmd` (ADD/DEL/CHECK) for one attachment.
pub fn verb(node: &Netns, cmd: &str, id: &str, pod: &Netns, conf: &Value) -> PluginOutput {
    let netns = pod.path();
    let netns = netns.to_string_lossy();
    plugin(
        Some(node),
        &[
            ("CNI_COMMAND", cmd),
            ("CNI_CONTAINERID", id),
            ("CNI_NETNS", &netns),
            ("CNI_IFNAME", "eth0"),
            ("CNI_PATH", "/nonexistent"),
        ],
        &conf.to_string(),
    )
}

/// The pod IP in an ADD result.
pub fn result_ip(out: &PluginOutput) -> String {
    let json = out.json.as_ref().expect("ADD printed a result");
    assert!(out.success, "ADD failed: {json}");
    let addr = json["ips"][0]["address"].as_str().expect("ips[0].address");
    addr.split('/').next().unwrap_or_default().to_owned()
}
