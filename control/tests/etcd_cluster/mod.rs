//! Real etcd clusters for the etcd backend's tests: Debian's `/usr/bin/etcd` (package
//! etcd-server) members on free loopback ports, with data under a temporary directory.
//!
//! Each member runs under a small `sh` wrapper whose stdin is a pipe from this process: when
//! the pipe closes — the member is dropped, or the test process ends in any way, even killed —
//! the wrapper SIGKILLs etcd and removes its data, so no etcd outlives its test. A member can
//! also be killed keeping its data, and started again on the same ports.

#![allow(dead_code)] // Each test crate uses part of the harness.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub const ETCD: &str = "/usr/bin/etcd";

/// How long a cluster may take to become healthy.
const START_PATIENCE: Duration = Duration::from_secs(30);

/// Fresh clusters tried before a test gives up on etcd.
const START_ATTEMPTS: usize = 2;

/// Kills etcd when its stdin closes; removes the data unless told `keep` first.
const WRAPPER: &str = r#"
data="$1"; shift
"$@" >"$data.log" 2>&1 &
pid=$!
read -r command
kill -9 "$pid"
wait "$pid"
[ "$command" = keep ] || rm -rf "$data" "$data.log"
rmdir "$(dirname "$data")" 2>/dev/null
exit 0
"#;

static CLUSTERS: AtomicUsize = AtomicUsize::new(0);

pub struct Member {
    pub name: String,
    pub client_port: u16,
    pub peer_port: u16,
    data: PathBuf,
    /// The wrapper and the write end of its stdin, while the member runs.
    running: Option<(Child, ChildStdin)>,
}

pub struct Cluster {
    pub members: Vec<Member>,
    initial_cluster: String,
    token: String,
    /// Removed by the last wrapper; kept here so a cluster dropped normally removes it too.
    _dir: Option<tempfile::TempDir>,
}

/// `count` distinct free loopback ports.
fn free_ports(count: usize) -> Vec<u16> {
    let listeners: Vec<TcpListener> = (0..count)
        .map(|_| TcpListener::bind("127.0.0.1:0").expect("a free port"))
        .collect();
    listeners
        .iter()
        .map(|listener| listener.local_addr().expect("port").port())
        .collect()
}

impl Cluster {
    /// Starts `size` members and waits (bounded) until every one is healthy. A cluster that
    /// does not come up is reported (every member's state and log) and replaced by a fresh one
    /// on other ports, at most [`START_ATTEMPTS`] times.
    pub fn start(size: usize) -> Cluster {
        let mut reports = Vec::new();
        for attempt in 1..=START_ATTEMPTS {
            let cluster = Cluster::spawn_all(size);
            match (0..size).try_for_each(|n| cluster.await_healthy(n)) {
                Ok(()) => return cluster,
                Err(report) => {
                    eprintln!("etcd cluster, attempt {attempt}: {report}");
                    reports.push(report);
                }
            }
        }
        panic!(
            "no etcd cluster of {size} came up in {START_ATTEMPTS} attempts:\n{}",
            reports.join("\n")
        );
    }

    fn spawn_all(size: usize) -> Cluster {
        let dir = tempfile::Builder::new()
            .prefix("bosun-etcd-")
            .tempdir()
            .expect("a temporary directory");
        let ports = free_ports(size * 2);
        let members: Vec<Member> = (0..size)
            .map(|n| Member {
                name: format!("m{}", n + 1),
                client_port: ports[2 * n],
                peer_port: ports[2 * n + 1],
                data: dir.path().join(format!("m{}", n + 1)),
                running: None,
            })
            .collect();
        let initial_cluster = members
            .iter()
            .map(|m| format!("{}=http://127.0.0.1:{}", m.name, m.peer_port))
            .collect::<Vec<_>>()
            .join(",");
        let token = format!(
            "bosun-test-{}-{}",
            std::process::id(),
            CLUSTERS.fetch_add(1, Ordering::Relaxed)
        );
        let mut cluster = Cluster {
            members,
            initial_cluster,
            token,
            _dir: Some(dir),
        };
        for n in 0..size {
            cluster.spawn(n);
        }
        cluster
    }

    /// Client URLs of every member, running or not.
    pub fn endpoints(&self) -> Vec<String> {
        self.members
            .iter()
            .map(|m| format!("http://127.0.0.1:{}", m.client_port))
            .collect()
    }

    fn spawn(&mut self, n: usize) {
        let member = &self.members[n];
        let client = format!("http://127.0.0.1:{}", member.client_port);
        let peer = format!("http://127.0.0.1:{}", member.peer_port);
        let mut child = Command::new("sh")
            .args(["-c", WRAPPER, "etcd-member"])
            .arg(&member.data)
            .arg(ETCD)
            .args(["--name", &member.name])
            .arg("--data-dir")
            .arg(&member.data)
            .args(["--listen-client-urls", &client])
            .args(["--advertise-client-urls", &client])
            .args(["--listen-peer-urls", &peer])
            .args(["--initial-advertise-peer-urls", &peer])
            .args(["--initial-cluster", &self.initial_cluster])
            .args(["--initial-cluster-token", &self.token])
            .args(["--initial-cluster-state", "new"])
            // Fast failure detection keeps the failover tests short.
            .args(["--heartbeat-interval", "50", "--election-timeout", "500"])
            .args(["--logger", "zap", "--log-level", "warn"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn sh for etcd");
        let stdin = child.stdin.take().expect("the wrapper's stdin");
        self.members[n].running = Some((child, stdin));
    }

    /// Waits until member `n` reports itself healthy (it has a leader and serves reads).
    pub fn wait_healthy(&self, n: usize) {
        if let Err(report) = self.await_healthy(n) {
            panic!("{report}");
        }
    }

    /// Waits (bounded) for member `n` to be healthy; else the state of every member.
    fn await_healthy(&self, n: usize) -> Result<(), String> {
        let deadline = Instant::now() + START_PATIENCE;
        while !healthy(self.members[n].client_port) {
            if Instant::now() >= deadline {
                let members: Vec<String> = self.members.iter().map(Member::report).collect();
                return Err(format!(
                    "etcd {} not healthy after {START_PATIENCE:?}; members:\n{}",
                    self.members[n].name,
                    members.join("\n")
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(())
    }

    /// SIGKILLs member `n`, keeping its data for [`Cluster::restart`].
    pub fn kill(&mut self, n: usize) {
        if let Some((mut child, mut stdin)) = self.members[n].running.take() {
            let _ = stdin.write_all(b"keep\n");
            drop(stdin);
            let _ = child.wait();
        }
    }

    /// Starts member `n` again on its ports and data (without waiting for it).
    pub fn restart(&mut self, n: usize) {
        assert!(self.members[n].running.is_none(), "member {n} runs");
        self.spawn(n);
    }

    pub fn is_running(&self, n: usize) -> bool {
        self.members[n].running.is_some()
    }

    /// The running member that is the raft leader now, if one answers as such.
    pub fn leader(&self) -> Option<usize> {
        (0..self.members.len())
            .filter(|n| self.is_running(*n))
            .find(|n| status(self.members[*n].client_port).is_some_and(|(me, leader)| me == leader))
    }
}

/// (member id, leader id) from a member's `/v3/maintenance/status` (the gRPC gateway).
fn status(port: u16) -> Option<(String, String)> {
    let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    let request = "POST /v3/maintenance/status HTTP/1.0\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}";
    stream.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let body = response.split("\r\n\r\n").nth(1)?;
    let value: serde_json::Value = serde_json::from_str(body).ok()?;
    let text = |v: &serde_json::Value| v.as_str().map(str::to_owned);
    Some((
        text(&value["header"]["member_id"])?,
        text(&value["leader"])?,
    ))
}

impl Member {
    /// The member's log so far, or why it cannot be read.
    pub fn log(&self) -> String {
        let mut path = self.data.clone().into_os_string();
        path.push(".log");
        match std::fs::read(Path::new(&path)) {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => format!("(log {} unreadable: {error})", Path::new(&path).display()),
        }
    }

    /// Its wrapper's state, whether its ports accept connections, whether its data exists, and
    /// its log: what a failed start is diagnosed from.
    fn report(&self) -> String {
        let wrapper = match &self.running {
            None => "stopped".to_owned(),
            Some((child, _)) => format!("wrapper pid {}", child.id()),
        };
        let accepts = |port: u16| {
            let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
            TcpStream::connect_timeout(&address, Duration::from_secs(1)).is_ok()
        };
        format!(
            "- {}: {wrapper}; client port {} accepts: {}; peer port {} accepts: {}; data dir exists: {}; log:\n{}",
            self.name,
            self.client_port,
            accepts(self.client_port),
            self.peer_port,
            accepts(self.peer_port),
            self.data.exists(),
            self.log()
        )
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        if let Some((mut child, stdin)) = self.running.take() {
            drop(stdin); // EOF: the wrapper kills etcd and removes the data.
            let _ = child.wait();
        }
    }
}

/// GET /health on a member's client port: `{"health":"true"}` once it has a leader.
fn healthy(port: u16) -> bool {
    let check = || -> std::io::Result<bool> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream.write_all(b"GET /health HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")?;
        let mut response = String::new();
        stream.read_to_string(&mut response)?;
        Ok(response.contains(r#""health":"true""#))
    };
    check().unwrap_or(false)
}

impl Cluster {
    /// The watches member `n` serves now (etcd's `etcd_debugging_mvcc_watcher_total`, from
    /// its client port's `/metrics`); `None` if it does not answer.
    pub fn watchers(&self, n: usize) -> Option<u64> {
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], self.members[n].client_port));
        let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(1)).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        stream
            .write_all(b"GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        response.lines().find_map(|line| {
            let value = line.strip_prefix("etcd_debugging_mvcc_watcher_total ")?;
            value.trim().parse::<f64>().ok().map(|v| v as u64)
        })
    }
}
