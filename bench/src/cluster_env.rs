//! The cluster of the cluster benchmark: the release `bosun-control` (embedded store, a free
//! loopback port) and [`Plan::nodes`] release `bosun-agent --kubeconfig` nodes, each with its
//! node network in a netns of its own (`eth0` on a bridge in the fabric netns, no route out),
//! its own cgroup root, bpffs directory, root and run directories under
//! `target/bench-work/cluster`, its own node credentials, and a /22 pod CIDR (room for
//! [`Plan::max_pods`] pods). Every kernel object is named `bosun-bench-cluster…` so a run
//! killed half-way is cleaned up by the next one. [`ClusterEnv`] removes everything on drop:
//! the processes (killed by their guards), whatever is left in the cgroup roots, the mounts
//! under the work directory, the pinned programs and maps, the netns (with the pods' veths in
//! them) and the directories.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cluster::Plan;
use super::control_procs::{Control, Guarded};
use xtask::util;

/// The prefix of every netns, cgroup root and bpffs directory of the bench.
pub const PREFIX: &str = "bosun-bench-cluster";
/// The fabric's subnet; node `n` is `.n`.
const SUBNET: &str = "192.168.201";
const READY_LIMIT: Duration = Duration::from_secs(60);

/// Set to a command prefix (`heaptrack -o /tmp/agent`), it runs every agent under it: how the
/// agents' memory is profiled. The RSS the bench reports is then the wrapper's process's.
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

pub fn work_dir() -> PathBuf {
    util::target_dir().join("bench-work").join("cluster")
}

fn bpffs_root() -> PathBuf {
    Path::new("/sys/fs/bpf").join(PREFIX)
}

fn release_bin(name: &str) -> PathBuf {
    util::target_dir().join("release").join(name)
}

/// One node of the bench's cluster.
pub struct BenchNode {
    pub n: u8,
    pub agent: Option<Guarded>,
}

impl BenchNode {
    pub fn name(&self) -> String {
        format!("node-{}", self.n)
    }
    pub fn netns(&self) -> String {
        format!("{PREFIX}-{}", self.n)
    }
    fn base(&self) -> PathBuf {
        work_dir().join(self.name())
    }
    fn ip(&self) -> String {
        format!("{SUBNET}.{}", self.n)
    }
    /// `10.244.4.0/22` for node 1, `10.244.8.0/22` for node 2: 1022 pod addresses each.
    fn pod_cidr(&self) -> String {
        format!("10.244.{}.0/22", u16::from(self.n) * 4)
    }

    /// `bosun-agent` with this node's global flags (for `image import`, `logs` and the daemon).
    pub fn agent_cmd(&self) -> Command {
        let base = self.base();
        let mut c = Command::new(release_bin("bosun-agent"));
        c.arg("--root").arg(base.join("root"));
        c.arg("--run-dir").arg(base.join("run"));
        c.args(["--cgroup-root", &self.netns()]);
        c.args(["--network", "cni", "--dataplane", "ebpf"]);
        c.arg("--bpffs-dir").arg(bpffs_root().join(self.name()));
        c.arg("--node-netns")
            .arg(Path::new("/run/netns").join(self.netns()));
        c.arg("--cni-conf-dir").arg(base.join("cni"));
        c.arg("--cni-bin-dir")
            .arg(util::target_dir().join("release"));
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
}

impl ClusterEnv {
    /// Cleans up what a killed earlier run left, then makes the network, starts the control
    /// process and the agents, and waits (bounded) until every node is Ready.
    pub fn start(plan: &Plan) -> Result<Self> {
        cleanup(plan.nodes);
        let work = work_dir();
        std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
        let mut env = ClusterEnv {
            control: None,
            nodes: (1..=plan.nodes)
                .map(|n| BenchNode { n, agent: None })
                .collect(),
            kubeconfig: work.join("control").join("data").join("admin.kubeconfig"),
        };
        make_network(&env.nodes)?;
        env.control = Some(Control::start(
            &release_bin("bosun-control"),
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
                Command::new(release_bin("bosun-control"))
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
                plan.max_pods.to_string().into(),
                "--log-level".into(),
                "warn".into(),
            ] {
                args.push(a);
            }
            let (program, args) = wrapped(release_bin("bosun-agent"), args);
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
            .env("HOME", work_dir())
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
        cleanup(self.nodes.len() as u8);
    }
}

/// The fabric netns with its bridge, and each node's netns plugged into it.
fn make_network(nodes: &[BenchNode]) -> Result<()> {
    let ip = |args: &[&str]| util::output(&mut util::cmd("ip", args)).map(drop);
    ip(&["netns", "add", PREFIX])?;
    ip(&["-n", PREFIX, "link", "set", "lo", "up"])?;
    ip(&["-n", PREFIX, "link", "add", "br0", "type", "bridge"])?;
    ip(&["-n", PREFIX, "link", "set", "br0", "up"])?;
    let fabric = format!("/run/netns/{PREFIX}");
    for node in nodes {
        let ns = node.netns();
        let port = format!("bbc-{}", node.n);
        ip(&["netns", "add", &ns])?;
        ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        ip(&[
            "-n", &ns, "link", "add", "eth0", "type", "veth", "peer", "name", &port, "netns",
            &fabric,
        ])?;
        ip(&["-n", PREFIX, "link", "set", &port, "master", "br0"])?;
        ip(&["-n", PREFIX, "link", "set", &port, "up"])?;
        let addr = format!("{}/24", node.ip());
        ip(&["-n", &ns, "addr", "add", &addr, "dev", "eth0"])?;
        ip(&["-n", &ns, "link", "set", "eth0", "up"])?;
    }
    Ok(())
}

/// Removes everything the bench may have made for `nodes` nodes; what is already gone is
/// skipped. Run before a start (a killed run's leftovers) and on drop.
pub fn cleanup(nodes: u8) {
    let roots: Vec<PathBuf> = (1..=nodes.max(2))
        .flat_map(|n| cgroup_dirs(&format!("{PREFIX}-{n}")))
        .collect();
    roots.iter().for_each(|r| kill_tree(r));
    let deadline = Instant::now() + Duration::from_secs(10);
    while roots.iter().map(|r| procs(r)).sum::<usize>() > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    unmount_under(&work_dir());
    roots.iter().for_each(|r| rmdir_tree(r));
    let bpffs = bpffs_root();
    for e in std::fs::read_dir(&bpffs).into_iter().flatten().flatten() {
        let _ = bosun_ebpf::unpin_all(&e.path());
    }
    let _ = std::fs::remove_dir_all(&bpffs);
    let mut netns: Vec<String> = (1..=nodes.max(2))
        .map(|n| format!("{PREFIX}-{n}"))
        .collect();
    netns.push(PREFIX.to_owned());
    for ns in netns {
        if Path::new("/run/netns").join(&ns).exists() {
            let _ = util::output(&mut util::cmd("ip", ["netns", "del", &ns]));
        }
    }
    let _ = std::fs::remove_dir_all(work_dir());
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
        let a = BenchNode { n: 1, agent: None };
        let b = BenchNode { n: 2, agent: None };
        assert_eq!(a.pod_cidr(), "10.244.4.0/22");
        assert_eq!(b.pod_cidr(), "10.244.8.0/22");
        assert_eq!(a.netns(), "bosun-bench-cluster-1");
    }
}
