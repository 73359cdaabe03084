//! `cargo xtask up [--nodes N]`: the README's first command. Sets the machine up, builds
//! everything, and starts a small cluster: `bosun-control` on its embedded store (loopback
//! only) and N `bosun-agent --kubeconfig` nodes, each with its node network in a netns of its
//! own (`bosun-up-<n>`), all plugged into one bridge in netns `bosun-up` (no route out), the
//! agents routing each other's pod CIDRs. Then it applies the demo of `examples/up/` with
//! kubectl (a Deployment of busybox httpd replicas behind a Service, and a client pod),
//! waits for the rollout, and shows how the client's requests spread over the pods of every
//! node (`up_demo`). Each node runs `bosun-csi-local`, and the default StorageClass `local`
//! provisions its volumes; a claim naming no class is checked Bound (`up_storage`). `cargo xtask down` removes every process, mount, cgroup, netns, route,
//! pinned map and directory `up` made (`up_down`); both are idempotent. Everything `up`
//! makes is named `bosun-up…` or lives under `target/up/`.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::{setup, up_demo, up_down, up_net, up_storage, util};

/// The fabric netns (a bridge, no route out); node `n`'s netns is `bosun-up-<n>`.
pub const NETNS: &str = "bosun-up";
pub const ROOT: &str = "/var/lib/bosun-up";
pub const RUN_DIR: &str = "/run/bosun-up";
/// Cgroup roots are `bosun-up-<n>`; every one starts with this.
pub const CGROUP_PREFIX: &str = "bosun-up";
pub const BPFFS: &str = "/sys/fs/bpf/bosun-up";
/// bosun-control's HTTPS port on 127.0.0.1 (not 6443: a real cluster may use that).
pub const CONTROL_PORT: u16 = 16443;
/// Node `n`'s metrics are on 127.0.0.1:<METRICS_BASE + n>.
pub const METRICS_BASE: u16 = 10260;
pub const DEFAULT_NODES: u8 = 2;
const SERVING_LIMIT: Duration = Duration::from_secs(30);

/// One node of `up`'s cluster.
#[derive(Debug, Clone)]
pub struct UpNode {
    pub n: u8,
}

impl UpNode {
    pub fn name(&self) -> String {
        format!("node-{}", self.n)
    }
    pub fn netns(&self) -> String {
        format!("{NETNS}-{}", self.n)
    }
    pub fn ip(&self) -> String {
        format!("{}.{}", up_net::SUBNET, self.n)
    }
    pub fn pod_cidr(&self) -> String {
        format!("10.244.{}.0/24", self.n)
    }
    pub fn root(&self) -> PathBuf {
        Path::new(ROOT).join(self.name())
    }
    pub fn run_dir(&self) -> PathBuf {
        Path::new(RUN_DIR).join(self.name())
    }
    pub fn cgroup_root(&self) -> String {
        format!("{CGROUP_PREFIX}-{}", self.n)
    }
    pub fn kubeconfig(&self) -> PathBuf {
        up_dir().join(format!("{}.kubeconfig", self.name()))
    }
    pub fn log(&self) -> PathBuf {
        up_dir().join(format!("{}.log", self.name()))
    }

    /// `bosun-agent` with this node's global flags.
    pub fn agent(&self) -> Command {
        let mut c = Command::new(release_bin("bosun-agent"));
        c.arg("--root").arg(self.root());
        c.arg("--run-dir").arg(self.run_dir());
        c.args(["--cgroup-root", &self.cgroup_root()]);
        c.args(["--network", "cni", "--dataplane", "ebpf"]);
        c.arg("--bpffs-dir").arg(Path::new(BPFFS).join(self.name()));
        c.arg("--node-netns")
            .arg(Path::new("/run/netns").join(self.netns()));
        c.arg("--cni-conf-dir")
            .arg(up_dir().join(format!("cni-{}", self.name())));
        c.arg("--cni-bin-dir")
            .arg(util::target_dir().join("release"));
        c.args(["--node-ip", &self.ip(), "--pod-cidr", &self.pod_cidr()]);
        c
    }
}

/// `target/up`: kubeconfigs, CNI configs, logs and pidfiles.
pub fn up_dir() -> PathBuf {
    util::target_dir().join("up")
}

pub fn release_bin(name: &str) -> PathBuf {
    util::target_dir().join("release").join(name)
}

pub fn control_dir() -> PathBuf {
    Path::new(ROOT).join("control")
}

/// The admin kubeconfig bosun-control writes.
pub fn admin_kubeconfig() -> PathBuf {
    control_dir().join("admin.kubeconfig")
}

/// kubectl as the cluster's administrator.
pub fn kubectl() -> Command {
    let mut c = Command::new("kubectl");
    c.env("KUBECONFIG", admin_kubeconfig());
    c
}

/// The nodes of a cluster of `count`.
pub fn nodes(count: u8) -> Vec<UpNode> {
    (1..=count).map(|n| UpNode { n }).collect()
}

pub fn run(count: u8) -> Result<()> {
    if !util::is_root() {
        bail!("cargo xtask up must run as root: pods need namespaces, cgroups and eBPF");
    }
    if count == 0 || count > 9 {
        bail!("--nodes {count}: between 1 and 9");
    }
    let images_dir = setup::prepare_release(&["--workspace"])?;
    let running = up_down::running_processes();
    if !running.is_empty() {
        println!(
            "\n==> bosun is already up (pids {running:?}); `cargo xtask down` first to start over"
        );
        return up_demo::report(&nodes(up_down::node_count().max(1)));
    }
    std::fs::create_dir_all(up_dir()).context("creating target/up")?;
    let nodes = nodes(count);
    up_net::make(&nodes)?;
    start_control()?;
    for node in &nodes {
        util::run(
            node.agent()
                .args(["image", "import"])
                .arg(images_dir.join("busybox")),
        )?;
        node_kubeconfig(node)?;
        up_storage::start_driver(node)?;
        start_agent(node)?;
    }
    up_storage::default_class()?;
    up_demo::run(&nodes)?;
    up_storage::check_claim()?;
    up_demo::report(&nodes)
}

/// Starts a background process in its own process group (so it outlives this command and a
/// Ctrl-C here), logging to `log`; records its pid in `target/up/<name>.pid`.
pub(crate) fn spawn(name: &str, cmd: &mut Command, log: &Path) -> Result<()> {
    let file = std::fs::File::create(log).with_context(|| format!("creating {}", log.display()))?;
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(file)
        .process_group(0);
    println!("$ {} &", util::display(cmd));
    let child = cmd.spawn().with_context(|| format!("starting {name}"))?;
    let pidfile = up_dir().join(format!("{name}.pid"));
    std::fs::write(&pidfile, child.id().to_string())
        .with_context(|| format!("writing {}", pidfile.display()))?;
    println!("{name} pid {} (log: {})", child.id(), log.display());
    Ok(())
}

/// bosun-control on 127.0.0.1:16443, embedded store under /var/lib/bosun-up/control; waits
/// (bounded) until it answers.
fn start_control() -> Result<()> {
    println!("\n==> starting bosun-control");
    let mut cmd = Command::new(release_bin("bosun-control"));
    cmd.arg("--data-dir").arg(control_dir());
    cmd.args(["--bind-address", "127.0.0.1"]);
    cmd.args(["--secure-port", &CONTROL_PORT.to_string()]);
    spawn("control", &mut cmd, &up_dir().join("control.log"))?;
    let deadline = Instant::now() + SERVING_LIMIT;
    loop {
        if admin_kubeconfig().exists()
            && util::succeeds(kubectl().args(["get", "--raw", "/readyz"]))
        {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "bosun-control not serving after {SERVING_LIMIT:?}; see {}",
                up_dir().join("control.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The node's own credentials (`system:node:<name>`, held to the node authorization rule).
fn node_kubeconfig(node: &UpNode) -> Result<()> {
    util::run(
        Command::new(release_bin("bosun-control"))
            .arg("kubeconfig")
            .arg("--data-dir")
            .arg(control_dir())
            .args(["--node", &node.name()])
            .arg("--out")
            .arg(node.kubeconfig()),
    )
}

fn start_agent(node: &UpNode) -> Result<()> {
    let mut cmd = node.agent();
    cmd.arg("--kubeconfig").arg(node.kubeconfig());
    cmd.args(["--node-name", &node.name()]);
    let metrics = format!("127.0.0.1:{}", METRICS_BASE + u16::from(node.n));
    cmd.args(["--metrics-addr", &metrics]);
    spawn(&node.name(), &mut cmd, &node.log())
}
