//! One node: a netns made by the test (lo with the node's IP, forwarding on, no other
//! interface, no route out) and a `bosun-agent --kubeconfig` process whose pods are networked
//! into it by bosun-cni, with private directories, cgroup root and pod CIDR. On drop the agent
//! is stopped and everything it made is removed (processes and cgroups under its cgroup root,
//! mounts under its directories, the netns).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use bosun_test_support::Netns;

use crate::{binary, images_dir, require_root, stderr, unique, wait_until, Control};

pub struct Node {
    pub name: String,
    pub ip: String,
    pub pod_cidr: String,
    pub netns: Netns,
    pub base: PathBuf,
    /// The static pod manifest directory (`--manifests`, when the node runs static pods),
    /// beside the API's pods.
    pub manifests: PathBuf,
    static_pods: bool,
    pub cgroup_root: String,
    /// `--bpffs-dir` when the node runs the eBPF service dataplane.
    pub bpffs: Option<PathBuf>,
    /// `--metrics-addr 127.0.0.1:<port>` when the node runs the dataplane.
    pub metrics_port: Option<u16>,
    kubeconfig: PathBuf,
    /// `--bootstrap-kubeconfig`, for a node that gets its identity by TLS bootstrap.
    bootstrap: Option<PathBuf>,
    agent: Option<Child>,
    /// More flags for every `bosun-agent` command ([`Node::add_agent_flags`]).
    agent_flags: Vec<String>,
    /// `bosun-csi-local` serving under the agent's plugin directory, when started.
    csi_driver: Option<Child>,
}

/// The name `bosun-csi-local` registers under (its default).
pub const CSI_LOCAL_DRIVER: &str = "local.csi.bosun.dev";

/// How a node is made.
#[derive(Default)]
pub struct NodeOptions<'a> {
    /// Plugged into this fabric (its IP on `eth0` there), instead of alone with its IP on lo.
    pub fabric: Option<&'a crate::Fabric>,
    /// Runs the eBPF service dataplane (the cluster's Services in pinned maps).
    pub dataplane: bool,
    /// Also runs the static pods of a manifest directory (`--manifests`).
    pub static_pods: bool,
}

impl Node {
    /// A node numbered `n` (1..=200: its IP is 192.168.n.1, its pod CIDR 10.244.n.0/24) of
    /// `control`'s cluster, with a node kubeconfig of its own and the busybox test image
    /// imported; its agent is not started yet.
    pub fn new(n: u8, control: &Control) -> Node {
        let options = NodeOptions {
            static_pods: true,
            ..NodeOptions::default()
        };
        Node::with(n, control, options)
    }

    /// Node `n` made as `options` say (on a fabric its IP is the fabric's `.n`).
    pub fn with(n: u8, control: &Control, options: NodeOptions<'_>) -> Node {
        Node::make(n, control, options, false)
    }

    /// A node with no kubeconfig but `control`'s bootstrap one: its agent asks for a
    /// certificate and writes its own kubeconfig ([`Node::kubeconfig`]), like a kubelet's TLS
    /// bootstrap.
    pub fn bootstrapping(n: u8, control: &Control) -> Node {
        Node::make(n, control, NodeOptions::default(), true)
    }

    fn make(n: u8, control: &Control, options: NodeOptions<'_>, bootstrap: bool) -> Node {
        require_root();
        let name = unique("node-");
        let base = std::env::temp_dir().join(format!("bosun-e2e-{name}"));
        let (kubeconfig, bootstrap) = match bootstrap {
            true => (
                base.join("kubelet.kubeconfig"),
                Some(control.bootstrap_kubeconfig()),
            ),
            false => (control.node_kubeconfig(&name), None),
        };
        let netns = Netns::new("bsne");
        netns.ip(&["link", "set", "lo", "up"]);
        let ip = match options.fabric {
            Some(fabric) => fabric.plug(n, &netns),
            None => {
                let ip = format!("192.168.{n}.1");
                netns.ip(&["addr", "add", &format!("{ip}/32"), "dev", "lo"]);
                ip
            }
        };
        let bpffs = options
            .dataplane
            .then(|| PathBuf::from(format!("/sys/fs/bpf/bosun-e2e-{name}")));
        let _ = std::fs::remove_dir_all(&base);
        std::fs::create_dir_all(base.join("cni")).expect("create the node's directories");
        std::fs::create_dir_all(base.join("manifests")).expect("create the manifest dir");
        // The node's resolvers are the test's: none unless it writes some (never the host's).
        std::fs::write(base.join("resolv.conf"), "").expect("write the node's resolv.conf");
        let node = Node {
            cgroup_root: format!("bosun-e2e-{name}"),
            metrics_port: bpffs.as_ref().map(|_| crate::control::free_port()),
            bpffs,
            static_pods: options.static_pods,
            name,
            ip,
            pod_cidr: format!("10.244.{n}.0/24"),
            netns,
            manifests: base.join("manifests"),
            base,
            kubeconfig,
            bootstrap,
            agent: None,
            agent_flags: Vec::new(),
            csi_driver: None,
        };
        let image = images_dir().join("busybox");
        let out = node
            .agent_cmd()
            .args(["image", "import"])
            .arg(&image)
            .output()
            .expect("run bosun-agent image import");
        assert!(
            out.status.success(),
            "importing {} (run `cargo xtask images` and set BOSUN_TEST_IMAGES): {}",
            image.display(),
            stderr(&out)
        );
        node
    }

    /// `bosun-agent` with this node's flags.
    fn agent_cmd(&self) -> Command {
        let mut c = Command::new(binary("bosun-agent", "bosun-agent"));
        c.arg("--root").arg(self.base.join("root"));
        c.arg("--run-dir").arg(self.base.join("run"));
        c.args(["--cgroup-root", &self.cgroup_root]);
        c.args(["--network", "cni"]);
        match &self.bpffs {
            Some(dir) => {
                c.args(["--dataplane", "ebpf"]).arg("--bpffs-dir").arg(dir);
            }
            None => {
                c.args(["--dataplane", "none"]);
            }
        }
        c.arg("--node-netns").arg(self.netns.path());
        c.arg("--cni-conf-dir").arg(self.base.join("cni"));
        c.arg("--cni-bin-dir")
            .arg(binary("bosun-cni", "bosun-cni").parent().expect("bin dir"));
        c.args(["--node-ip", &self.ip, "--pod-cidr", &self.pod_cidr]);
        c.arg("--resolv-conf").arg(self.resolv_conf());
        c.args(["--log-level", "info,bosun_agent=debug"]);
        c.args(&self.agent_flags);
        c
    }

    /// Adds `flags` to the agent's command line (from its next start on).
    pub fn add_agent_flags(&mut self, flags: &[&str]) {
        self.agent_flags.extend(flags.iter().map(|f| f.to_string()));
    }

    /// Starts `bosun-agent --kubeconfig` for this node.
    pub fn start_agent(&mut self) {
        assert!(self.agent.is_none(), "the agent is running");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("agent.log"))
            .expect("agent log");
        let static_pods = match self.static_pods {
            true => vec!["--manifests".into(), self.manifests.clone()],
            false => Vec::new(),
        };
        let child = self
            .agent_cmd()
            .arg("--kubeconfig")
            .arg(&self.kubeconfig)
            .args(self.bootstrap.iter().flat_map(|b| {
                [
                    std::ffi::OsStr::new("--bootstrap-kubeconfig"),
                    b.as_os_str(),
                ]
            }))
            .args(["--node-name", &self.name])
            .args(static_pods)
            .args(
                self.metrics_port
                    .map(|p| vec!["--metrics-addr".to_string(), format!("127.0.0.1:{p}")])
                    .unwrap_or_default(),
            )
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bosun-agent");
        self.agent = Some(child);
    }

    /// The node's resolver configuration (`--resolv-conf`), empty unless the test writes it
    /// before starting the agent: the upstreams of the node's cluster DNS server.
    pub fn resolv_conf(&self) -> PathBuf {
        self.base.join("resolv.conf")
    }

    /// Starts `bosun-csi-local` for this node: its socket is
    /// `<agent root>/plugins/local.csi.bosun.dev/csi.sock` (where the agent finds drivers),
    /// its volumes under `<base>/csi-local`, its node id the node's name.
    pub fn start_csi_driver(&mut self) {
        assert!(self.csi_driver.is_none(), "the CSI driver is running");
        let socket = self
            .base
            .join("root/plugins")
            .join(CSI_LOCAL_DRIVER)
            .join("csi.sock");
        std::fs::create_dir_all(socket.parent().expect("socket dir")).expect("plugin dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.base.join("csi-local.log"))
            .expect("driver log");
        let child = Command::new(binary("bosun-csi-local", "bosun-csi"))
            .arg("--endpoint")
            .arg(format!("unix://{}", socket.display()))
            .args(["--node-id", &self.name])
            .arg("--state-dir")
            .arg(self.base.join("csi-local"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn bosun-csi-local");
        self.csi_driver = Some(child);
    }

    /// The CSI driver's log.
    pub fn csi_log(&self) -> String {
        std::fs::read_to_string(self.base.join("csi-local.log")).unwrap_or_default()
    }

    /// The node's kubeconfig (`--kubeconfig`).
    pub fn kubeconfig(&self) -> &Path {
        &self.kubeconfig
    }

    /// `bosun-agent ps --json`: the pods on the node as the agent sees them.
    pub fn ps(&self) -> Vec<serde_json::Value> {
        let out = self
            .agent_cmd()
            .args(["ps", "--json"])
            .output()
            .expect("run bosun-agent ps");
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The pod `name` in [`Node::ps`].
    pub fn ps_pod(&self, name: &str) -> Option<serde_json::Value> {
        self.ps().into_iter().find(|p| p["name"] == name)
    }

    /// `bosun-agent logs POD -n NAMESPACE`: a container's log on this node.
    pub fn logs(&self, namespace: &str, pod: &str) -> String {
        let out = self
            .agent_cmd()
            .args(["logs", pod, "-n", namespace])
            .output()
            .expect("run bosun-agent logs");
        crate::stdout(&out)
    }

    /// A scrape of the agent's Prometheus metrics (empty when it does not answer).
    pub fn metrics(&self) -> String {
        use std::io::{Read, Write};
        let Some(port) = self.metrics_port else {
            return String::new();
        };
        let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
            return String::new();
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
        let mut body = String::new();
        if s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").is_ok() {
            let _ = s.read_to_string(&mut body);
        }
        body
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.base.join("agent.log")).unwrap_or_default()
    }

    /// The pod cgroup directories (`pod<uid>`) under this node's cgroup root, in every
    /// hierarchy.
    pub fn pod_cgroups(&self) -> Vec<PathBuf> {
        let mut found = Vec::new();
        for dir in self.cgroup_dirs() {
            collect_pod_dirs(&dir, &mut found);
        }
        found
    }

    /// This node's cgroup root in each hierarchy (one on cgroup v2, several on v1/hybrid).
    fn cgroup_dirs(&self) -> Vec<PathBuf> {
        let hierarchies = std::fs::read_dir("/sys/fs/cgroup")
            .into_iter()
            .flatten()
            .flatten();
        let mut dirs: Vec<PathBuf> = hierarchies
            .map(|h| h.path().join(&self.cgroup_root))
            .filter(|d| d.is_dir())
            .collect();
        let unified = Path::new("/sys/fs/cgroup").join(&self.cgroup_root);
        if unified.is_dir() {
            dirs.push(unified);
        }
        dirs
    }

    /// Kills the agent at once (SIGKILL): whatever it was doing is cut off mid-step.
    pub fn kill_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the agent like a service manager (SIGTERM), bounded.
    pub fn stop_agent(&mut self) {
        if let Some(mut child) = self.agent.take() {
            let pid = nix::unistd::Pid::from_raw(child.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::SIGTERM);
            let exited = || matches!(child.try_wait(), Ok(Some(_)));
            let mut exited = exited;
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while !exited() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.stop_agent();
        if let Some(mut driver) = self.csi_driver.take() {
            let _ = driver.kill();
            let _ = driver.wait();
        }
        if let Some(dir) = &self.bpffs {
            // Links first (unpin_all's order): the hooks leave the cgroups, the maps go.
            let _ = bosun_ebpf::unpin_all(dir);
            let _ = std::fs::remove_dir_all(dir);
        }
        // Whatever the agent left: every process under the cgroup root, then the cgroups.
        let roots = self.cgroup_dirs();
        roots.iter().for_each(|r| kill_tree(r));
        let _ = std::panic::catch_unwind(|| {
            wait_until("pod processes gone", Duration::from_secs(5), || {
                roots.iter().map(|r| procs(r)).sum::<usize>() == 0
            })
        });
        roots.iter().for_each(|r| rmdir_tree(r));
        let base = self.base.display().to_string();
        let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
        let mut targets: Vec<&str> = mounts
            .lines()
            .filter_map(|l| l.split(' ').nth(1))
            .filter(|m| m.starts_with(&base))
            .collect();
        targets.sort_by_key(|t| std::cmp::Reverse(t.len()));
        for target in targets {
            let _ = nix::mount::umount2(target, nix::mount::MntFlags::MNT_DETACH);
        }
        detach_loops_under(&base);
        let _ = std::fs::remove_dir_all(&self.base);
        // The netns (and the pods' veths in it) goes when `self.netns` drops.
    }
}

/// Detaches the loop devices whose backing file is under `base` (the CSI driver's volumes).
fn detach_loops_under(base: &str) {
    let Ok(out) = Command::new("losetup").arg("-a").output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        if let Some((device, rest)) = line.split_once(':') {
            if rest.contains(base) {
                let _ = Command::new("losetup").args(["-d", device]).status();
            }
        }
    }
}

fn collect_pod_dirs(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            if e.file_name().to_string_lossy().starts_with("pod") {
                out.push(e.path());
            } else {
                collect_pod_dirs(&e.path(), out);
            }
        }
    }
}

fn kill_tree(dir: &Path) {
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

fn procs(dir: &Path) -> usize {
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

fn rmdir_tree(dir: &Path) {
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        if e.path().is_dir() {
            rmdir_tree(&e.path());
        }
    }
    let _ = std::fs::remove_dir(dir);
}
