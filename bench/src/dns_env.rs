//! The DNS benchmark's sealed world: a "node" netns and a "pod" netns joined by a veth pair
//! (`bdns0` in the node: 10.99.0.1 for bosun, 10.99.0.3 for dnsmasq; `bdns1` in the pod:
//! 10.99.0.2), only connected routes, nothing towards the machine's uplink. In the node run
//! the three servers: the upstream resolver of both (a dnsmasq on 127.0.0.1:5300 that knows
//! only the bench's external names, from a hosts file, and forwards nothing), bosun's DNS
//! server (`bosun-agent dns-serve`, the agent's own server with the bench's Services), and
//! the peer (dnsmasq with the same names in an `addn-hosts` file and that upstream). Every
//! process is started through `nsenter` into the node netns and killed on drop; the netns go
//! with them.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use bosun_test_support::Netns;
use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;

use super::dns_perf::{self, Target};

pub const BOSUN_IP: &str = "10.99.0.1";
pub const DNSMASQ_IP: &str = "10.99.0.3";
const POD_IP: &str = "10.99.0.2";
const UPSTREAM: &str = "127.0.0.1";
const UPSTREAM_PORT: &str = "5300";
/// How long a server gets to answer its first query.
const READY_LIMIT: Duration = Duration::from_secs(20);

/// A server process in the node netns; SIGTERM, then SIGKILL, on drop.
struct Server {
    name: &'static str,
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("warning: {} did not stop on SIGTERM; killing it", self.name);
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The files the servers are made of.
pub struct Files {
    /// `bosun-agent` (release).
    pub agent: PathBuf,
    /// Services for `dns-serve --records`.
    pub records: PathBuf,
    /// The same cluster names as a hosts file, for the dnsmasq peer.
    pub cluster_hosts: PathBuf,
    /// The external names the upstream knows.
    pub external_hosts: PathBuf,
    /// Where each server's output goes (`<name>.log`).
    pub logs: PathBuf,
}

/// The two namespaces and the servers; dropped servers first, then the namespaces.
pub struct World {
    servers: Vec<Server>,
    pub pod: Netns,
    node: Netns,
}

impl World {
    pub fn start(files: &Files) -> Result<World> {
        let node = Netns::create("bsnbench-dns-node")?;
        let pod = Netns::create("bsnbench-dns-pod")?;
        node.try_ip(&[
            "link", "add", "bdns0", "type", "veth", "peer", "name", "bdns1",
        ])?;
        node.try_ip(&["link", "set", "bdns1", "netns", &pod.name])?;
        for ip in [BOSUN_IP, DNSMASQ_IP] {
            node.try_ip(&["addr", "add", &format!("{ip}/24"), "dev", "bdns0"])?;
        }
        node.try_ip(&["link", "set", "bdns0", "up"])?;
        pod.try_ip(&["addr", "add", &format!("{POD_IP}/24"), "dev", "bdns1"])?;
        pod.try_ip(&["link", "set", "bdns1", "up"])?;
        let mut world = World {
            servers: Vec::new(),
            pod,
            node,
        };
        let upstream = format!("{UPSTREAM}#{UPSTREAM_PORT}");
        world.spawn(
            "upstream",
            files,
            dnsmasq(&world.node, &files.external_hosts, UPSTREAM, UPSTREAM_PORT).args([
                // Answers live long enough to be cached through the whole run.
                "--local-ttl=600",
            ]),
        )?;
        let mut bosun = world.node.command(&files.agent.to_string_lossy());
        bosun
            .args(["--log-level", "warn", "dns-serve", "--records"])
            .arg(&files.records)
            .args(["--listen", &format!("{BOSUN_IP}:53")])
            .args(["--upstream", &format!("{UPSTREAM}:{UPSTREAM_PORT}")]);
        world.spawn("bosun", files, &mut bosun)?;
        world.spawn(
            "dnsmasq",
            files,
            dnsmasq(&world.node, &files.cluster_hosts, DNSMASQ_IP, "53").args([
                // bosun's cluster TTL; never forward the cluster domain; cache like bosun.
                "--local-ttl=5",
                "--local=/cluster.local/",
                "--cache-size=10000",
                &format!("--server={upstream}"),
            ]),
        )?;
        Ok(world)
    }

    fn spawn(&mut self, name: &'static str, files: &Files, command: &mut Command) -> Result<()> {
        let log = files.logs.join(format!("{name}.log"));
        let out = File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(out.try_clone()?)
            .stderr(out)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        // nsenter execs its program: the server is this child itself.
        let mut server = Server { name, child };
        if let Ok(Some(status)) = server.child.try_wait() {
            bail!("{name} exited at once ({status}); see {}", log.display());
        }
        self.servers.push(server);
        Ok(())
    }

    /// Waits (bounded) until `target` answers every name of `queries` once with NOERROR —
    /// which also fills the forwarders' caches with the external names.
    pub fn warm(&self, target: &Target, queries: &Path) -> Result<()> {
        let deadline = Instant::now() + READY_LIMIT;
        loop {
            let mut c = self.pod.command("dnsperf");
            c.args([
                "-s",
                target.server,
                "-p",
                &target.port.to_string(),
                "-n",
                "1",
            ])
            .args(["-q", "10", "-t", "2", "-d"])
            .arg(queries);
            let result = xtask::util::output(&mut c).and_then(|out| dns_perf::parse_summary(&out));
            match result {
                Ok(t) if t.lost == 0 => return Ok(()),
                Ok(t) if Instant::now() > deadline => {
                    bail!("{}: {} queries lost", target.server, t.lost)
                }
                Err(e) if Instant::now() > deadline => return Err(e),
                _ => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }
}

/// A dnsmasq serving `hosts` on `ip:port` in the foreground, reading no system file.
fn dnsmasq(node: &Netns, hosts: &Path, ip: &str, port: &str) -> Command {
    let mut c = node.command("dnsmasq");
    c.args([
        "--keep-in-foreground",
        "--conf-file=/dev/null",
        "--user=root",
    ])
    .args([
        "--pid-file=",
        "--log-facility=-",
        "--no-resolv",
        "--no-hosts",
    ])
    .args(["--bind-interfaces", &format!("--listen-address={ip}")])
    .arg(format!("--port={port}"))
    .arg(format!("--addn-hosts={}", hosts.display()));
    c
}
