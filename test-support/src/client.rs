//! The socket client of the load-balancing tests: a separate process (`bosun-test-client`)
//! that joins a test cgroup and netns and then makes TCP or UDP attempts, reporting for each
//! the backend that answered and the peer address the socket API showed. A process of its own
//! because the BPF cgroup hooks see a socket through its process's cgroup.
//!
//! The process joins the cgroup first (written through its own /sys view), then the netns.
//! Results come back as `CLIENT OK <backend> <seen>` / `CLIENT ERR <errno> <micros>` lines.

use std::io::{ErrorKind, Read};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use socket2::{Domain, SockAddr, Socket, Type};

/// How the client talks to the target.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    Tcp,
    /// Unconnected UDP: sendto/recvfrom.
    Udp,
    /// Connected UDP: connect/send/recv.
    UdpConnected,
}

/// One attempt's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// Reached `backend` (the reply's text); `seen` is the peer address the socket API
    /// reported (getpeername, or recvfrom's source).
    Ok { backend: String, seen: String },
    /// Failed with this errno after `micros`.
    Err { errno: i32, micros: u64 },
}

impl Outcome {
    pub fn backend(&self) -> Option<&str> {
        match self {
            Outcome::Ok { backend, .. } => Some(backend),
            Outcome::Err { .. } => None,
        }
    }
}

/// `count` attempts against `target`, optionally binding source ports `bind_base + i`,
/// pausing `pause_ms` between attempts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Plan {
    pub mode: Mode,
    pub target: SocketAddrV4,
    pub count: u32,
    pub bind_base: u16,
    pub pause_ms: u64,
}

impl Plan {
    pub fn new(mode: Mode, target: SocketAddrV4, count: u32) -> Plan {
        Plan {
            mode,
            target,
            count,
            bind_base: 0,
            pause_ms: 0,
        }
    }

    /// The plan as the client's command-line arguments.
    pub fn args(&self) -> Vec<String> {
        let mode = match self.mode {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::UdpConnected => "udpc",
        };
        vec![
            mode.to_owned(),
            self.target.to_string(),
            self.count.to_string(),
            self.bind_base.to_string(),
            self.pause_ms.to_string(),
        ]
    }

    /// Parses [`Plan::args`].
    pub fn parse(args: &[String]) -> Result<Plan, String> {
        let [mode, target, count, bind_base, pause_ms] = args else {
            return Err(format!(
                "expected MODE TARGET COUNT BIND_BASE PAUSE_MS, got {args:?}"
            ));
        };
        let field = |name: &str, e: &dyn std::fmt::Display| format!("{name}: {e}");
        Ok(Plan {
            mode: match mode.as_str() {
                "tcp" => Mode::Tcp,
                "udp" => Mode::Udp,
                "udpc" => Mode::UdpConnected,
                other => return Err(format!("mode: {other:?} is not tcp, udp or udpc")),
            },
            target: target.parse().map_err(|e| field("target", &e))?,
            count: count.parse().map_err(|e| field("count", &e))?,
            bind_base: bind_base.parse().map_err(|e| field("bind base", &e))?,
            pause_ms: pause_ms.parse().map_err(|e| field("pause", &e))?,
        })
    }
}

/// Where the client process joins before its first socket.
pub struct Placement<'a> {
    /// A cgroup (v2) directory: the client writes itself into its `cgroup.procs`.
    pub cgroup: Option<&'a Path>,
    /// A netns file (`/run/netns/NAME`) the client enters.
    pub netns: Option<&'a Path>,
}

/// The `bosun-test-client` binary: beside the running test's `deps/` directory.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("test binaries live in target/<profile>/deps");
    let bin = profile_dir.join("bosun-test-client");
    assert!(
        bin.is_file(),
        "{} missing: run `cargo build -p bosun-test-support` (or test the whole workspace)",
        bin.display()
    );
    bin
}

/// Starts the client for `plan` at `placement`; collect its results with [`collect`].
pub fn spawn(binary: &Path, placement: &Placement<'_>, plan: &Plan) -> Child {
    let mut command = Command::new(binary);
    if let Some(cgroup) = placement.cgroup {
        command.arg("--cgroup").arg(cgroup);
    }
    if let Some(netns) = placement.netns {
        command.arg("--netns").arg(netns);
    }
    command
        .args(plan.args())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {}: {e}", binary.display()))
}

/// Waits for a spawned client and parses its results; panics if it failed.
pub fn collect(child: Child) -> Vec<Outcome> {
    let out = child.wait_with_output().expect("wait for client");
    assert!(out.status.success(), "client failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.strip_prefix("CLIENT "))
        .map(|line| parse_outcome(line).unwrap_or_else(|| panic!("bad client line {line:?}")))
        .collect()
}

fn parse_outcome(line: &str) -> Option<Outcome> {
    let fields: Vec<&str> = line.split(' ').collect();
    match fields[..] {
        ["OK", backend, seen] => Some(Outcome::Ok {
            backend: backend.to_owned(),
            seen: seen.to_owned(),
        }),
        ["ERR", errno, micros] => Some(Outcome::Err {
            errno: errno.parse().ok()?,
            micros: micros.parse().ok()?,
        }),
        _ => None,
    }
}

/// Runs `plan` in this process, printing one `CLIENT …` line per attempt.
pub fn run_plan(plan: &Plan) {
    for i in 0..plan.count {
        let start = Instant::now();
        let result = match plan.mode {
            Mode::Tcp => tcp_once(plan, i),
            Mode::Udp => udp_once(plan, false),
            Mode::UdpConnected => udp_once(plan, true),
        };
        match result {
            Ok((backend, seen)) => println!("CLIENT OK {backend} {seen}"),
            Err(e) => println!(
                "CLIENT ERR {} {}",
                e.raw_os_error().unwrap_or(-1),
                start.elapsed().as_micros()
            ),
        }
        if plan.pause_ms > 0 {
            std::thread::sleep(Duration::from_millis(plan.pause_ms));
        }
    }
}

fn tcp_once(plan: &Plan, i: u32) -> std::io::Result<(String, String)> {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    if plan.bind_base > 0 {
        socket.set_reuse_address(true)?;
        let port = plan.bind_base.wrapping_add(i as u16);
        socket.bind(&SockAddr::from(SocketAddrV4::new(
            Ipv4Addr::UNSPECIFIED,
            port,
        )))?;
    }
    socket.connect_timeout(&SockAddr::from(plan.target), Duration::from_secs(2))?;
    let seen = socket
        .peer_addr()?
        .as_socket()
        .map_or("?".to_owned(), |a| a.to_string());
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut stream: std::net::TcpStream = socket.into();
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    // Reset instead of TIME_WAIT, so bound source ports can be reused at once.
    Socket::from(stream).set_linger(Some(Duration::ZERO))?;
    Ok((reply.trim().to_owned(), seen))
}

fn udp_once(plan: &Plan, connected: bool) -> std::io::Result<(String, String)> {
    let socket = UdpSocket::bind("0.0.0.0:0")?;
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut buf = [0u8; 512];
    let (n, from): (usize, SocketAddr) = if connected {
        socket.connect(plan.target)?;
        socket.send(b"ping")?;
        let n = socket.recv(&mut buf)?;
        (n, socket.peer_addr()?)
    } else {
        socket.send_to(b"ping", plan.target)?;
        socket.recv_from(&mut buf)?
    };
    let reply = String::from_utf8_lossy(&buf[..n]).trim().to_owned();
    if reply.is_empty() {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "empty reply"));
    }
    Ok((reply, from.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_round_trip_through_arguments() {
        let plan = Plan {
            bind_base: 40000,
            pause_ms: 5,
            ..Plan::new(Mode::UdpConnected, "10.96.0.1:53".parse().unwrap(), 7)
        };
        assert_eq!(Plan::parse(&plan.args()), Ok(plan));
        let bad = Plan::parse(&[
            "sctp".into(),
            "x".into(),
            "1".into(),
            "0".into(),
            "0".into(),
        ]);
        assert!(bad.unwrap_err().contains("mode"));
        assert!(Plan::parse(&[]).is_err());
    }

    #[test]
    fn outcome_lines_parse_and_garbage_does_not() {
        assert_eq!(
            parse_outcome("OK 10.250.0.1:8080 10.96.0.1:80"),
            Some(Outcome::Ok {
                backend: "10.250.0.1:8080".into(),
                seen: "10.96.0.1:80".into()
            })
        );
        assert_eq!(
            parse_outcome("ERR 111 35"),
            Some(Outcome::Err {
                errno: 111,
                micros: 35
            })
        );
        assert_eq!(parse_outcome("ERR x 35"), None);
        assert_eq!(parse_outcome("HELLO"), None);
    }
}
