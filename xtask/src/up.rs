//! `cargo xtask up` / `cargo xtask down`: the README's first command. `up` sets the machine
//! up, builds everything, and starts one standalone agent whose node network lives in its own
//! netns (`bosun-up`: lo with a node address, no route out) with the manifests of
//! `examples/up/` (three httpd pods, a ClusterIP Service, a client), then shows how the
//! client's requests through the ClusterIP spread over the pods. `down` removes every
//! process, mount, cgroup, netns, route, pinned map and directory `up` made; both are
//! idempotent. Everything `up` makes is named `bosun-up` or lives under `target/up/`.

use std::collections::BTreeMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use serde_json::Value;

use crate::{setup, up_down, util};

pub const NETNS: &str = "bosun-up";
pub const NODE_IP: &str = "192.168.200.1";
pub const ROOT: &str = "/var/lib/bosun-up";
pub const RUN_DIR: &str = "/run/bosun-up";
pub const CGROUP_ROOT: &str = "bosun-up";
pub const BPFFS: &str = "/sys/fs/bpf/bosun-up";
const VIP: &str = "10.96.0.10";
const READY_LIMIT: Duration = Duration::from_secs(120);

/// `target/up`: manifests, CNI config, agent log and pidfile.
pub fn up_dir() -> PathBuf {
    util::target_dir().join("up")
}

pub fn agent_bin() -> PathBuf {
    util::target_dir().join("release/bosun-agent")
}

/// The agent command with up's global flags.
pub fn agent() -> Command {
    let mut c = Command::new(agent_bin());
    c.args([
        "--root",
        ROOT,
        "--run-dir",
        RUN_DIR,
        "--cgroup-root",
        CGROUP_ROOT,
    ]);
    c.args(["--bpffs-dir", BPFFS, "--network", "cni"]);
    c.arg("--node-netns").arg(format!("/run/netns/{NETNS}"));
    c.arg("--cni-conf-dir").arg(up_dir().join("cni"));
    c.arg("--cni-bin-dir")
        .arg(util::target_dir().join("release"));
    c
}

/// The flags to show the user for `ps`/`logs` (the same state directories).
fn flags_hint() -> String {
    format!("--root {ROOT} --run-dir {RUN_DIR}")
}

pub fn run() -> Result<()> {
    if !util::is_root() {
        bail!("cargo xtask up must run as root: pods need namespaces, cgroups and eBPF");
    }
    let images_dir = setup::prepare_release(&["--workspace"])?;
    let root = util::workspace_root();
    if let Some(pid) = up_down::running_agents().first() {
        println!(
            "\n==> bosun is already up (agent pid {pid}); `cargo xtask down` first to start over"
        );
        return report();
    }
    make_node_netns()?;
    let dir = up_dir();
    let manifests = dir.join("manifests");
    std::fs::create_dir_all(&manifests).context("creating target/up/manifests")?;
    std::fs::create_dir_all(dir.join("cni")).context("creating target/up/cni")?;
    for e in std::fs::read_dir(root.join("examples/up")).context("reading examples/up")? {
        let path = e?.path();
        if let Some(name) = path.file_name() {
            std::fs::copy(&path, manifests.join(name))
                .with_context(|| format!("copying {}", path.display()))?;
        }
    }
    util::run(
        agent()
            .arg("image")
            .arg("import")
            .arg(images_dir.join("busybox")),
    )?;
    start_agent(&manifests)?;
    wait_ready()?;
    report()
}

/// `ip netns add bosun-up`, lo up with the node address, forwarding on; no other interface,
/// no route out.
fn make_node_netns() -> Result<()> {
    if !Path::new("/run/netns").join(NETNS).exists() {
        util::run(&mut util::cmd("ip", ["netns", "add", NETNS]))?;
    }
    util::run(&mut util::cmd(
        "ip",
        ["-n", NETNS, "link", "set", "lo", "up"],
    ))?;
    let addr = format!("{NODE_IP}/32");
    let shown = util::output(&mut util::cmd(
        "ip",
        ["-n", NETNS, "addr", "show", "dev", "lo"],
    ))?;
    if !shown.contains(&addr) {
        util::run(&mut util::cmd(
            "ip",
            ["-n", NETNS, "addr", "add", &addr, "dev", "lo"],
        ))?;
    }
    Ok(())
}

/// Starts the daemon in the background (its own process group, so it outlives this command
/// and a Ctrl-C here), logging to target/up/agent.log, and writes its pidfile.
fn start_agent(manifests: &Path) -> Result<()> {
    let dir = up_dir();
    let log_path = dir.join("agent.log");
    let log = std::fs::File::create(&log_path).context("creating target/up/agent.log")?;
    let mut cmd = agent();
    cmd.arg("--manifests")
        .arg(manifests)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .process_group(0);
    println!("$ {} &", util::display(&cmd));
    let child = cmd.spawn().context("starting bosun-agent")?;
    std::fs::write(up_down::pidfile(), child.id().to_string()).context("writing the pidfile")?;
    println!("agent pid {} (log: {})", child.id(), log_path.display());
    Ok(())
}

fn pods() -> Option<Vec<Value>> {
    let out = agent()
        .args(["ps", "--json"])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// Waits until the three web pods are ready and the client is done.
fn wait_ready() -> Result<()> {
    println!("\n==> waiting for the web pods to be ready and the client to finish");
    let deadline = Instant::now() + READY_LIMIT;
    let mut last = String::new();
    loop {
        if let Some(pods) = pods() {
            let phase = |name: &str| {
                let p = pods.iter().find(|p| p["name"] == name);
                p.map(|p| {
                    (
                        p["phase"].as_str().unwrap_or("").to_string(),
                        p["ready"] == true,
                    )
                })
            };
            let webs_ready = (1..=3).all(|i| phase(&format!("web-{i}")).is_some_and(|p| p.1));
            let client = phase("client").map(|p| p.0).unwrap_or_default();
            let now = format!("web pods ready: {webs_ready}, client: {client}");
            if now != last {
                println!("  {now}");
                last = now;
            }
            if webs_ready && (client == "Succeeded" || client == "Failed") {
                return Ok(());
            }
        }
        if Instant::now() > deadline {
            bail!(
                "not ready after {READY_LIMIT:?}; see {}",
                up_dir().join("agent.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// Prints the spread of the client's requests over the pods, then what to try next.
fn report() -> Result<()> {
    let out = util::output(agent().args(["logs", "client"]))?;
    let mut spread: BTreeMap<String, usize> = BTreeMap::new();
    for line in out.lines() {
        if let Some(who) = line.trim().strip_prefix("answered by ") {
            *spread.entry(who.to_string()).or_default() += 1;
        }
    }
    let total: usize = spread.values().sum();
    println!(
        "\n==> {total} requests from pod `client` to the ClusterIP {VIP}:80 were answered by:"
    );
    for (who, n) in &spread {
        println!("  {who:<12} {n:>3}  {}", "#".repeat(*n));
    }
    let a = format!("{} {}", agent_bin().display(), flags_hint());
    let manifests = up_dir().join("manifests");
    println!("\nbosun is up: one agent, node network in netns `{NETNS}`, Services in eBPF maps under {BPFFS}.");
    println!("Try next:");
    println!("  A=\"{a}\"");
    println!("  $A ps                        # pods, containers, readiness, pod IPs");
    println!("  $A logs client               # the client's requests (logs web-1: a server)");
    println!(
        "  ls {}   # edit or add Pods/Services: applied within a second",
        manifests.display()
    );
    println!("  cargo xtask bench routing    # bosun eBPF vs iptables/nftables ClusterIP routing");
    println!("  cargo xtask down             # remove everything `up` made");
    Ok(())
}
