//! Kernel tests of what the agent does to the node's network outside its pods: a one-off
//! `run` leaves the routing tables, net.ipv4.ip_forward and /etc/bosun exactly as it found
//! them (after a normal exit and after SIGINT, with the default private pod network and with
//! `--network cni`); the daemon refuses a node route that would shadow one the node has,
//! naming both; `network teardown` removes the daemon's routes. Every agent runs with a netns
//! the test made as its node network (`nsenter --net` or `--node-netns`), so the host's own
//! routes are never touched.

mod common;
mod netns;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{Node, AGENT};
use netns::{bosun_cni_dir, node_netns, Netns};

/// Everything under /etc/bosun (paths and contents), or `None` when it does not exist.
fn etc_bosun() -> Option<Vec<(PathBuf, Vec<u8>)>> {
    fn walk(dir: &Path, out: &mut Vec<(PathBuf, Vec<u8>)>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("read /etc/bosun")
            .flatten()
            .map(|e| e.path())
            .collect();
        entries.sort();
        for p in entries {
            if p.is_dir() {
                out.push((p.clone(), Vec::new()));
                walk(&p, out);
            } else {
                let bytes = std::fs::read(&p).unwrap_or_default();
                out.push((p, bytes));
            }
        }
    }
    let root = Path::new("/etc/bosun");
    root.exists().then(|| {
        let mut out = Vec::new();
        walk(root, &mut out);
        out
    })
}

/// What a run must leave as it was: every routing table and ip_forward of the node netns,
/// and /etc/bosun.
#[derive(Debug, PartialEq)]
struct NodeState {
    routes: String,
    ip_forward: String,
    etc_bosun: Option<Vec<(PathBuf, Vec<u8>)>>,
}

fn node_state(ns: &Netns) -> NodeState {
    NodeState {
        routes: String::from_utf8_lossy(&ns.ip(&["route", "show", "table", "all"]).stdout)
            .into_owned(),
        ip_forward: ns.run_in(|| {
            std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").expect("ip_forward")
        }),
        etc_bosun: etc_bosun(),
    }
}

fn routes(ns: &Netns) -> String {
    String::from_utf8_lossy(&ns.ip(&["route", "show"]).stdout).into_owned()
}

/// `bosun-agent run` of `yaml` with `node`'s directories, its own netns being `ns` (so the
/// node network it sees is the test's), stdout and stderr piped.
fn spawn_run(node: &Node, ns: &Netns, yaml: &str, flags: &[&str]) -> Child {
    let file = node.base.join(format!("run-{}.yaml", common::unique()));
    std::fs::write(&file, yaml).expect("write pod");
    ns.command(AGENT)
        .arg("--root")
        .arg(&node.root)
        .arg("--run-dir")
        .arg(&node.run_dir)
        .arg("--cgroup-root")
        .arg(&node.cgroup_root)
        .arg("--bpffs-dir")
        .arg(&node.bpffs)
        .args(flags)
        .arg("run")
        .arg(&file)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn nsenter bosun-agent run")
}

/// Lines of `child`'s stdout, as they come.
fn stdout_lines(child: &mut Child) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    let out = child.stdout.take().expect("piped stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

/// Waits for a line containing `what`; returns every line read so far.
fn wait_line(rx: &mpsc::Receiver<String>, what: &str, timeout: Duration) -> Vec<String> {
    let deadline = Instant::now() + timeout;
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        let found = line.contains(what);
        seen.push(line);
        if found {
            return seen;
        }
    }
    panic!("no line with {what:?} within {timeout:?}; got {seen:#?}");
}

/// Waits for `child` to exit, bounded; returns its status and stderr.
fn wait_exit(mut child: Child, timeout: Duration) -> (std::process::ExitStatus, String) {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = std::io::Read::read_to_string(&mut e, &mut err);
            }
            return (status, err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("no exit within {timeout:?}");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn sigint(child: &Child) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::SIGINT,
    )
    .expect("SIGINT");
}

/// A pod that prints its addresses, says `started`, then exits (or sleeps).
fn pod(name: &str, then: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata: {{name: {name}}}\nspec:\n  restartPolicy: Never\n  terminationGracePeriodSeconds: 1\n  containers:\n  - name: c\n    image: bosun.test/busybox:1\n    command: [sh, -c, 'ip -4 -o addr; echo started; {then}']\n"
    )
}

#[test]
fn run_leaves_routes_ip_forward_and_etc_bosun_as_it_found_them() {
    let ns = node_netns("192.168.131.1");
    let node = Node::new("runleaves");
    let bins = bosun_cni_dir().display().to_string();
    let cni = ["--network", "cni", "--cni-bin-dir", bins.as_str()];
    let before = node_state(&ns);
    for (flags, network) in [(&[][..], "private"), (&cni[..], "cni")] {
        // A normal exit.
        let mut child = spawn_run(
            &node,
            &ns,
            &pod(&format!("{network}-done"), "exit 0"),
            flags,
        );
        let lines = stdout_lines(&mut child);
        let seen = wait_line(&lines, "started", Duration::from_secs(60));
        let (status, err) = wait_exit(child, Duration::from_secs(60));
        assert!(status.success(), "{network}: {status}: {err}");
        let got_pod_ip = seen.iter().any(|l| l.contains("inet 10.244."));
        assert_eq!(got_pod_ip, network == "cni", "{network}: {seen:#?}\n{err}");
        assert_eq!(node_state(&ns), before, "{network} run, normal exit\n{err}");

        // Ctrl-C while the pod runs (with CNI: once its routes are in place).
        let mut child = spawn_run(
            &node,
            &ns,
            &pod(&format!("{network}-int"), "exec sleep 600"),
            flags,
        );
        let lines = stdout_lines(&mut child);
        wait_line(&lines, "started", Duration::from_secs(60));
        if network == "cni" {
            let r = routes(&ns);
            assert!(r.contains("blackhole 10.96.0.0/12 proto 176"), "{r}");
            assert!(r.contains("blackhole 10.244.0.0/24 proto 176"), "{r}");
        }
        sigint(&child);
        let (status, err) = wait_exit(child, Duration::from_secs(60));
        assert!(
            err.contains("terminated"),
            "{network}: the pod was stopped: {status}: {err}"
        );
        assert_eq!(node_state(&ns), before, "{network} run, SIGINT\n{err}");
    }
}

/// A node netns with a route over `10.96.0.0/11` (the default service CIDR is inside it).
fn netns_with_route_over_service_cidr() -> Netns {
    let ns = node_netns("192.168.132.1");
    ns.ip(&[
        "link", "add", "bsd0", "type", "veth", "peer", "name", "bsd1",
    ]);
    ns.ip(&["link", "set", "bsd0", "up"]);
    ns.ip(&["link", "set", "bsd1", "up"]);
    ns.ip(&["addr", "add", "192.168.132.2/24", "dev", "bsd0"]);
    ns.ip(&[
        "route",
        "add",
        "10.96.0.0/11",
        "via",
        "192.168.132.254",
        "dev",
        "bsd0",
    ]);
    ns
}

#[test]
fn daemon_refuses_a_node_route_that_would_shadow_one_the_node_has() {
    let ns = netns_with_route_over_service_cidr();
    let before = routes(&ns);
    let bins = bosun_cni_dir().display().to_string();
    let netns_path = ns.path().display().to_string();
    // Through the CNI network's node routes, and through the dataplane alone.
    for flags in [
        vec![
            "--network",
            "cni",
            "--cni-bin-dir",
            &bins,
            "--dataplane",
            "none",
        ],
        vec!["--network", "none", "--dataplane", "ebpf"],
    ] {
        let mut node = Node::new("shadow");
        node.extra_flags = flags.iter().map(|s| s.to_string()).collect();
        node.extra_flags
            .extend(["--node-netns".to_string(), netns_path.clone()]);
        node.extra_flags.push("--cni-conf-dir".into());
        node.extra_flags
            .push(node.base.join("cni").display().to_string());
        let child = node
            .cmd()
            .arg("--manifests")
            .arg(&node.manifests)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn daemon");
        let (status, err) = wait_exit(child, Duration::from_secs(30));
        assert!(!status.success(), "{flags:?}: refused: {err}");
        assert!(
            err.contains(
                "blackhole 10.96.0.0/12 (service CIDR) would shadow 10.96.0.0/11 via 192.168.132.254 dev bsd0"
            ),
            "{flags:?}: both routes named: {err}"
        );
        assert_eq!(routes(&ns), before, "{flags:?}: nothing installed");
        assert!(!node.bpffs.exists(), "{flags:?}: no map pinned: {err}");
    }
}

#[test]
fn network_teardown_removes_the_daemons_routes() {
    let ns = node_netns("192.168.133.1");
    let before = node_state(&ns).routes;
    let mut node = Node::new("teardown");
    let cni = node.base.join("cni").display().to_string();
    node.extra_flags = [
        "--network",
        "cni",
        "--dataplane",
        "none",
        "--cni-conf-dir",
        &cni,
        "--cni-bin-dir",
        &bosun_cni_dir().display().to_string(),
        "--node-netns",
        &ns.path().display().to_string(),
        "--pod-cidr",
        "10.244.133.0/24",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    node.start_daemon();
    node.stop_daemon();
    let kept = routes(&ns);
    assert!(
        kept.contains("blackhole 10.244.133.0/24 proto 176"),
        "the daemon keeps its routes: {kept}"
    );
    assert!(kept.contains("blackhole 10.96.0.0/12 proto 176"), "{kept}");
    let out = node
        .cmd()
        .args(["network", "teardown"])
        .output()
        .expect("run network teardown");
    let text = common::stdout(&out);
    assert!(out.status.success(), "{text}{}", common::stderr(&out));
    assert!(
        text.contains("removed blackhole 10.244.133.0/24")
            && text.contains("removed blackhole 10.96.0.0/12"),
        "{text}"
    );
    assert_eq!(node_state(&ns).routes, before);
}
