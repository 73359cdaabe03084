//! The cluster of the cluster and volumes benchmarks ([`Layout`]): `bosun-control` (embedded
//! store, a free loopback port) and [`Layout::nodes`] `bosun-agent --kubeconfig` nodes, each
//! with its node network in a netns of its own (`eth0` on a bridge in the fabric netns, no
//! route out), its own cgroup root, bpffs directory, root and run directories under
//! `target/bench-work/<name>`, its own node credentials, a /22 pod CIDR (room for
//! [`Layout::max_pods`] pods) and, with [`Layout::csi_local`], a `bosun-csi-local` driver
//! whose socket the agent discovers in its plugins directory. Every kernel object is named
//! after [`Layout::prefix`] (`bosun-bench-cluster…`) so a run killed half-way is cleaned up
//! by the next one. [`ClusterEnv`] removes everything on drop: the processes (killed by their
//! guards), whatever is left in the cgroup roots, the mounts under the work directory, the
//! loop devices backed by its files, the pinned programs and maps, the netns (with the pods'
//! veths in them) and the directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::control_procs::{Control, Guarded};
use xtask::util;

/// The prefix of every netns, cgroup root and bpffs directory of the cluster bench.
pub const PREFIX: &str = "bosun-bench-cluster";
/// The CSI driver [`Layout::csi_local`] starts on each node.
pub const CSI_DRIVER: &str = "local.csi.bosun.dev";
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Set to a command prefix (`heaptrack -o /tmp/agent`), it runs every agent under it: how the
/// agents' memory is profiled. The RSS the bench reports is then the wrapper's process's, and
/// the teardown kills only the wrapper: a wrapper that keeps its agent as a child (heaptrack's
/// script does) leaves that agent running — `pkill -f target/release/bosun-agent` after.
const AGENT_WRAPPER: &str = "BOSUN_BENCH_AGENT_WRAPPER";

/// `agent args`, or the wrapper's command with them appended.
fn wrapped(agent: PathBuf, args: Vec<OsString>) -> (PathBuf, Vec<OsString>) {
    let wrapper = std::env::var(AGENT_WRAPPER).unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let Some(program) = words.next() else {
        return (agent, args);
    };
    let mut all: Vec<OsString> = words.map(Into::into).collect();
    all.push(agent.into_os_string());
    all.extend(args);
    (PathBuf::from(program), all)
}

/// The cluster bench's work directory.
pub fn work_dir() -> PathBuf {
    util::target_dir().join("bench-work").join("cluster")
}

/// What a bench's cluster is made of and where its things go; two benches with different
/// layouts never touch each other's netns, cgroups or files.
#[derive(Clone, Debug)]
pub struct Layout {
    /// Of every netns, cgroup root and bpffs directory.
    pub prefix: &'static str,
    /// The fabric's /24 (`a.b.c`); node `n` is `.n`.
    pub subnet: &'static str,
    /// `target/bench-work/<work>`.
    pub work: &'static str,
    /// Where `bosun-control`, `bosun-agent` and `bosun-csi-local` are.
    pub bin_dir: PathBuf,
    pub nodes: u8,
    /// Each agent's `--max-pods`.
    pub max_pods: usize,
    /// A `bosun-csi-local` driver beside each agent.
    pub csi_local: bool,
    /// `--dataplane` of the agents (`ebpf` or `none`).
    pub dataplane: &'static str,
}

impl Layout {
    /// The cluster bench's: release binaries, the eBPF dataplane.
    pub fn cluster(nodes: u8, max_pods: usize) -> Self {
        Self {
            prefix: PREFIX,
            subnet: "192.168.201",
            work: "cluster",
            bin_dir: util::target_dir().join("release"),
            nodes,
            max_pods,
            csi_local: false,
            dataplane: "ebpf",
        }
    }

    pub fn work_dir(&self) -> PathBuf {
        util::target_dir().join("bench-work").join(self.work)
    }

    fn bpffs_root(&self) -> PathBuf {
        Path::new("/sys/fs/bpf").join(self.prefix)
    }

    fn bin(&self, name: &str) -> PathBuf {
        self.bin_dir.join(name)
    }
}

/// One node of the bench's cluster.
pub struct BenchNode {
    pub n: u8,
    pub agent: Option<Guarded>,
    pub driver: Option<Guarded>,
    layout: Layout,
}

impl BenchNode {
    pub fn name(&self) -> String {
        format!("node-{}", self.n)
    }
    pub fn netns(&self) -> String {
        format!("{}-{}", self.layout.prefix, self.n)
    }
    pub fn base(&self) -> PathBuf {
        self.layout.work_dir().join(self.name())
    }
    /// The agent's `--root`.
    pub fn root(&self) -> PathBuf {
        self.base().join("root")
    }
    fn ip(&self) -> String {
        format!("{}.{}", self.layout.subnet, self.n)
    }
    /// `10.244.4.0/22` for node 1, `10.244.8.0/22` for node 2: 1022 pod addresses each.
    fn pod_cidr(&self) -> String {
        format!("10.244.{}.0/22", u16::from(self.n) * 4)
    }

    /// `bosun-agent` with this node's global flags (for `image import`, `logs` and the daemon).
    pub fn agent_cmd(&self) -> Command {
        let base = self.base();
        let mut c = Command::new(self.layout.bin("bosun-agent"));
        c.arg("--root").arg(self.root());
        c.arg("--run-dir").arg(base.join("run"));
        c.args(["--cgroup-root", &self.netns()]);
        c.args(["--network", "cni", "--dataplane", self.layout.dataplane]);
        c.arg("--bpffs-dir")
            .arg(self.layout.bpffs_root().join(self.name()));
        c.arg("--node-netns")
            .arg(Path::new("/run/netns").join(self.netns()));
        c.arg("--cni-conf-dir").arg(base.join("cni"));
        c.arg("--cni-bin-dir").arg(&self.layout.bin_dir);
        c.args(["--node-ip", &self.ip(), "--pod-cidr", &self.pod_cidr()]);
        c
    }

    /// `bosun-agent logs POD`: a container's log on this node.
    pub fn logs(&self, pod: &str) -> Result<String> {
        util::output(self.agent_cmd().args(["logs", pod, "-n", "default"]))
    }

    pub fn log_path(&self) -> PathBuf {
        self.base().join("agent.log")
    }

    pub fn log_tail(&self) -> String {
        self.agent
            .as_ref()
            .map(Guarded::log_tail)
            .unwrap_or_default()
    }
}

/// The running cluster; everything it made goes when it is dropped.
pub struct ClusterEnv {
    pub control: Option<Control>,
    pub nodes: Vec<BenchNode>,
    kubeconfig: PathBuf,
    layout: Layout,
}

impl ClusterEnv {
    /// Cleans up what a killed earlier run left, then makes the network, starts the control
    /// process and the agents, and waits (bounded) until every node is Ready.
    pub fn start(layout: &Layout) -> Result<Self> {
        cleanup(layout);
        let work = layout.work_dir();
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let mut env = ClusterEnv {
            control: None,
            nodes: (1..=layout.nodes)
                .map(|n| BenchNode {
                    n,
                    agent: None,
                    driver: None,
                    layout: layout.clone(),
                })
                .collect(),
            kubeconfig: work.join("control").join("data").join("admin.kubeconfig"),
            layout: layout.clone(),
        };
        make_network(layout, &env.nodes)?;
        env.control = Some(Control::start(
            &layout.bin("bosun-control"),
            &work.join("control"),
            None,
        )?);
        let images = util::target_dir().join("images").join("busybox");
        for node in &mut env.nodes {
            std::fs::create_dir_all(node.base().join("cni"))?;
            util::output(node.agent_cmd().args(["image", "import"]).arg(&images))
                .context("importing the busybox test image (cargo xtask images)")?;
            let kubeconfig = node.base().join("kubeconfig");
            util::output(
                Command::new(layout.bin("bosun-control"))
                    .arg("kubeconfig")
                    .arg("--data-dir")
                    .arg(work.join("control").join("data"))
                    .args(["--node", &node.name()])
                    .arg("--out")
                    .arg(&kubeconfig),
            )?;
            let mut args: Vec<OsString> = node.agent_cmd().get_args().map(Into::into).collect();
            for a in [
                "--kubeconfig".into(),
                kubeconfig.into_os_string(),
                "--node-name".into(),
                node.name().into(),
                "--max-pods".into(),
                layout.max_pods.to_string().into(),
                "--log-level".into(),
                "warn".into(),
            ] {
                args.push(a);
            }
            if layout.csi_local {
                node.driver = Some(start_driver(layout, node)?);
            }
            let (program, args) = wrapped(layout.bin("bosun-agent"), args);
            node.agent = Some(Guarded::spawn(
                "bosun-agent",
                &node.log_path(),
                &program,
                &args,
            )?);
        }
        env.wait_ready()?;
        Ok(env)
    }

    fn wait_ready(&self) -> Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            for node in &self.nodes {
                if let Some(agent) = &node.agent {
                    agent.check()?;
                }
            }
            let out = self
                .kubectl()
                .args(["get", "nodes", "--no-headers"])
                .output();
            let ready = out.map_or(0, |o| {
                let text = String::from_utf8_lossy(&o.stdout).into_owned();
                text.lines().filter(|l| l.contains(" Ready ")).count()
            });
            if ready == self.nodes.len() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{ready} of {} nodes Ready after {READY_LIMIT:?}{}",
                    self.nodes.len(),
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// The real kubectl as the cluster's administrator.
    pub fn kubectl(&self) -> Command {
        let mut c = Command::new("kubectl");
        c.env("KUBECONFIG", &self.kubeconfig)
            .env("HOME", self.layout.work_dir())
            .arg("--request-timeout=30s");
        c
    }

    /// `kubectl apply -f -` of `yaml`.
    pub fn apply(&self, yaml: &str) -> Result<()> {
        use std::io::Write;
        let mut child = self
            .kubectl()
            .args(["apply", "-f", "-"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .context("starting kubectl apply")?;
        child
            .stdin
            .take()
            .context("kubectl's stdin")?
            .write_all(yaml.as_bytes())?;
        let out = child.wait_with_output()?;
        if !out.status.success() {
            bail!(
                "kubectl apply failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(())
    }

    /// The control's and each agent's log tails, for errors.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        if let Some(control) = &self.control {
            out += &format!("\n--- control ---\n{}", control.process.log_tail());
        }
        for node in &self.nodes {
            out += &format!("\n--- {} ---\n{}", node.name(), node.log_tail());
        }
        out
    }
}

impl Drop for ClusterEnv {
    fn drop(&mut self) {
        // The agents first (their guards SIGKILL them), then the control process.
        for node in &mut self.nodes {
            drop(node.agent.take());
        }
        drop(self.control.take());
        cleanup(&self.layout);
        // The drivers last: the agents' mounts are gone, nothing calls them any more.
        for node in &mut self.nodes {
            drop(node.driver.take());
        }
    }
}

/// `bosun-csi-local` for `node`: its socket where the agent discovers drivers, its volume
/// files under the node's directory (so [`cleanup`] finds their loop devices).
fn start_driver(layout: &Layout, node: &BenchNode) -> Result<Guarded> {
    let plugin = node.root().join("plugins").join(CSI_DRIVER);
    std::fs::create_dir_all(&plugin)?;
    let endpoint = format!("unix://{}", plugin.join("csi.sock").display());
    let args: Vec<OsString> = vec![
        "--endpoint".into(),
        endpoint.into(),
        "--node-id".into(),
        node.name().into(),
        "--state-dir".into(),
        node.base().join("csi-local").into(),
    ];
    let log = node.base().join("csi-local.log");
    Guarded::spawn(
        "bosun-csi-local",
        &log,
        &layout.bin("bosun-csi-local"),
        &args,
    )
}

/// The fabric netns with its bridge, and each node's netns plugged into it.
fn make_network(layout: &Layout, nodes: &[BenchNode]) -> Result<()> {
    let ip = |args: &[&str]| util::output(&mut util::cmd("ip", args)).map(drop);
    let prefix = layout.prefix;
    ip(&["netns", "add", prefix])?;
    ip(&["-n", prefix, "link", "set", "lo", "up"])?;
    ip(&["-n", prefix, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", prefix, "link", "set", "br0", "up"])?;
    let fabric = format!("/run/netns/{prefix}");
    for node in nodes {
        let ns = node.netns();
        let port = format!("bbc-{}", node.n);
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
            &fabric,
        ])?;
        ip(&["-n", prefix, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", prefix, "link", "set", &port, "up"])?;
        let addr = format!("{}/24", node.ip());
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// Removes everything the bench may have made for `layout`; what is already gone is
/// skipped. Run before a start (a killed run's leftovers) and on drop.
pub fn cleanup(layout: &Layout) {
    let prefix = layout.prefix;
    let nodes = layout.nodes;
    let roots: Vec<PathBuf> = (1..=nodes.max(2))
        .flat_map(|n| cgroup_dirs(&format!("{prefix}-{n}")))
        .collect();
    roots.iter().for_each(|r| kill_tree(r));
    let deadline = Instant::now() + Duration::from_secs(10);
    while roots.iter().map(|r| procs(r)).sum::<usize>() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let work = layout.work_dir();
    unmount_under(&work);
    detach_loops_under(&work);
    roots.iter().for_each(|r| rmdir_tree(r));
    let bpffs = layout.bpffs_root();
    for e in std::fs::read_dir(&bpffs).into_iter().flatten().flatten() {
        let _ = bosun_ebpf::unpin_all(&e.path());
    }
    let _ = std::fs::remove_dir_all(&bpffs);
    let mut netns: Vec<String> = (1..=nodes.max(2))
        .map(|n| format!("{prefix}-{n}"))
        .collect();
    netns.push(prefix.to_owned());
    for ns in netns {
        if Path::new("/run/netns").join(&ns).exists() {
            let _ = util::output(&mut util::cmd("ip", ["netns", "del", &ns]));
        }
    }
    let _ = std::fs::remove_dir_all(work);
}

/// Detaches the loop devices whose backing file is under `dir` (a driver's volume files).
fn detach_loops_under(dir: &Path) {
    for dev in xtask::up_storage::attached_loops_under(dir) {
        let _ = util::output(&mut util::cmd("losetup", ["-d", dev.as_str()]));
    }
}

/// Cgroup directory `name` in every hierarchy where it exists (v1 controllers, v2).
pub fn cgroup_dirs(name: &str) -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .into_iter()
        .flatten()
        .flatten()
        .map(|h| h.path().join(name))
        .filter(|d| d.is_dir())
        .collect();
    let unified = Path::new("/sys/fs/cgroup").join(name);
    if unified.is_dir() && !dirs.contains(&unified) {
        dirs.push(unified);
    }
    dirs
}

pub fn kill_tree(dir: &Path) {
    if let Ok(pids) = std::fs::read_to_string(dir.join("cgroup.procs")) {
        for pid in pids.lines().filter_map(|p| p.parse::<i32>().ok()) {
            let pid = nix::unistd::Pid::from_raw(pid);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGKILL);
        }
    }
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            kill_tree(&e.path());
        }
    }
}

pub fn procs(dir: &Path) -> usize {
    let own = std::fs::read_to_string(dir.join("cgroup.procs"))
        .map(|s| s.lines().count())
        .unwrap_or(0);
    let children: usize = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter(|e| e.path().is_dir())
        .map(|e| procs(&e.path()))
        .sum();
    own + children
}

pub fn rmdir_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            rmdir_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}

/// Detaches every mount below `dir`, deepest first.
pub fn unmount_under(dir: &Path) {
    let prefix = format!("{}/", dir.display());
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let mut targets: Vec<&str> = mounts
        .lines()
        .filter_map(|l| l.split(' ').nth(1))
        .filter(|m| m.starts_with(&prefix))
        .collect();
    targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
    for t in targets {
        let _ = nix::mount::umount2(t, nix::mount::MntFlags::MNT_DETACH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nodes_get_disjoint_pod_cidrs_of_a_thousand_addresses() {
        let layout = Layout::cluster(2, 110);
        let node = |n| BenchNode {
            n,
            agent: None,
            driver: None,
            layout: layout.clone(),
        };
        let (a, b) = (node(1), node(2));
        assert_eq!(a.pod_cidr(), "10.244.4.0/22");
        assert_eq!(b.pod_cidr(), "10.244.8.0/22");
        assert_eq!(a.netns(), "bosun-bench-cluster-1");
    }
}
