//! The demo on `up`'s cluster, through the real kubectl: waits for the nodes to be Ready,
//! applies `examples/up/web.yaml` (a Deployment behind a Service), waits for the rollout,
//! runs the client pod of `examples/up/client.yaml`, and reports how its requests through the
//! ClusterIP spread over the pods and nodes; then what to try next.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::up::{self, UpNode};
use crate::util;

const NODES_READY_LIMIT: Duration = Duration::from_secs(60);
const CLIENT_LIMIT: Duration = Duration::from_secs(90);
const VIP: &str = "10.96.0.100";

fn examples(name: &str) -> std::path::PathBuf {
    util::workspace_root().join("examples/up").join(name)
}

/// `kubectl … -o json`, None when kubectl fails.
fn get_json(args: &[&str]) -> Option<Value> {
    let out = up::kubectl()
        .arg("get")
        .args(args)
        .args(["-o", "json"])
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| serde_json::from_slice(&out.stdout).ok())
        .flatten()
}

fn show(cmd: &mut Command) -> Result<()> {
    util::run(cmd)
}

pub fn run(nodes: &[UpNode]) -> Result<()> {
    println!("\n==> waiting for {} nodes to be Ready", nodes.len());
    let deadline = Instant::now() + NODES_READY_LIMIT;
    loop {
        let ready = get_json(&["nodes"]).map_or(0, |list| {
            let items = list["items"].as_array().cloned().unwrap_or_default();
            items.iter().filter(|n| is_ready(n)).count()
        });
        if ready == nodes.len() {
            break;
        }
        if Instant::now() > deadline {
            bail!(
                "{ready} of {} nodes Ready after {NODES_READY_LIMIT:?}; see the logs in {}",
                nodes.len(),
                up::up_dir().display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    show(up::kubectl().args(["get", "nodes", "-o", "wide"]))?;
    println!("\n==> the demo app: a Deployment behind a Service");
    show(
        up::kubectl()
            .arg("apply")
            .arg("-f")
            .arg(examples("web.yaml")),
    )?;
    show(up::kubectl().args(["rollout", "status", "deployment/web", "--timeout=120s"]))?;
    show(up::kubectl().args(["get", "pods", "-o", "wide"]))?;
    println!("\n==> a client pod calling the Service");
    show(
        up::kubectl()
            .arg("apply")
            .arg("-f")
            .arg(examples("client.yaml")),
    )?;
    let deadline = Instant::now() + CLIENT_LIMIT;
    loop {
        let phase = get_json(&["pod", "client"])
            .and_then(|p| p["status"]["phase"].as_str().map(str::to_owned))
            .unwrap_or_default();
        if phase == "Succeeded" || phase == "Failed" {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("the client pod is {phase:?} after {CLIENT_LIMIT:?}");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn is_ready(node: &Value) -> bool {
    let conditions = node["status"]["conditions"].as_array();
    conditions
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Ready" && c["status"] == "True")
}

/// Pod name → node name.
fn placement() -> BTreeMap<String, String> {
    let list = get_json(&["pods"]).unwrap_or_default();
    let items = list["items"].as_array().cloned().unwrap_or_default();
    items
        .iter()
        .map(|p| {
            let name = p["metadata"]["name"].as_str().unwrap_or_default();
            let node = p["spec"]["nodeName"].as_str().unwrap_or_default();
            (name.to_string(), node.to_string())
        })
        .collect()
}

/// The client's log, from the agent of the node it ran on (`kubectl logs` comes with the
/// streams issue).
fn client_log(nodes: &[UpNode], placed: &BTreeMap<String, String>) -> Result<String> {
    let on = placed.get("client").context("no client pod")?;
    let node = nodes
        .iter()
        .find(|n| n.name() == *on)
        .with_context(|| format!("the client ran on {on:?}, not one of up's nodes"))?;
    util::output(node.agent().args(["logs", "client"]))
}

/// Prints the spread of the client's requests over the pods, then what to try next.
pub fn report(nodes: &[UpNode]) -> Result<()> {
    let placed = placement();
    let log = client_log(nodes, &placed).unwrap_or_default();
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for line in log.lines() {
        if let Some(who) = line.trim().strip_prefix("answered by ") {
            *spread.entry(who.to_string()).or_default() += 1;
        }
    }
    let total: usize = spread.values().sum();
    let client_node = placed.get("client").cloned().unwrap_or_default();
    println!(
        "\n==> {total} requests from pod `client` (on {client_node}) to the ClusterIP {VIP}:80 were answered by:"
    );
    for (who, n) in &spread {
        let node = placed.get(who).map(String::as_str).unwrap_or("?");
        println!("  {who:<24} {node:<8} {n:>3}  {}", "#".repeat(*n));
    }
    let kubeconfig = up::admin_kubeconfig();
    println!(
        "\nbosun is up: bosun-control (embedded store) on https://127.0.0.1:{} and {} nodes ({}),",
        up::CONTROL_PORT,
        nodes.len(),
        nodes
            .iter()
            .map(UpNode::name)
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "each with its node network in netns bosun-up-<n> on one bridge, Services in eBPF maps."
    );
    println!(
        "Logs: {}/{{control,node-<n>}}.log. Try next:",
        up::up_dir().display()
    );
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get nodes -o wide");
    println!("  kubectl get pods -o wide");
    println!("  kubectl scale deployment/web --replicas=8 && kubectl get pods -o wide");
    println!("  kubectl rollout restart deployment/web && kubectl rollout status deployment/web");
    println!("  kubectl rollout history deployment/web; kubectl rollout undo deployment/web");
    println!("  kubectl describe service web; kubectl get endpointslices");
    println!("  cargo xtask down             # remove everything `up` made");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::VIP;

    /// The demo's Service asks for `VIP`, which bosun-control must leave free: it keeps the
    /// first address of the default range for `kubernetes` and the tenth for `kube-dns`.
    #[test]
    fn the_demo_service_asks_for_an_address_control_leaves_free() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let web = std::fs::read_to_string(root.join("examples/up/web.yaml")).expect("web.yaml");
        let client =
            std::fs::read_to_string(root.join("examples/up/client.yaml")).expect("client.yaml");
        assert!(
            web.contains(&format!("clusterIP: {VIP}\n")),
            "web.yaml asks for {VIP}"
        );
        assert!(
            client.contains(&format!("http://{VIP}/")),
            "client.yaml calls {VIP}"
        );
        assert!(!["10.96.0.1", "10.96.0.10"].contains(&VIP));
    }
}
