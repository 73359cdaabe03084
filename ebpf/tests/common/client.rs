//! The client: a child process (this test binary, re-executed to run only
//! `client_process_entry`) that joins the test cgroup and then the test netns before exec,
//! so the socket LB sees its sockets. The cgroup is joined first: it is written through this
//! process's /sys view. Results come back as `CLIENT ...` lines on stdout.

use std::{
    fs::OpenOptions,
    io::{ErrorKind, Read},
    net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket},
    os::{fd::AsRawFd, unix::process::CommandExt},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use socket2::{Domain, SockAddr, Socket, Type};

use super::Fixture;

pub const ENV: &str = "BOSUN_LB_CLIENT";

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
    /// Reached `backend`; `seen` is the peer address the socket API reported (getpeername,
    /// or recvfrom's source).
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

/// A client plan: `count` attempts against `target`, optionally binding source ports
/// `bind_base + i`, pausing `pause_ms` between attempts.
#[derive(Clone, Copy, Debug)]
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

    fn encode(&self) -> String {
        let mode = match self.mode {
            Mode::Tcp => "tcp",
            Mode::Udp => "udp",
            Mode::UdpConnected => "udpc",
        };
        format!(
            "{mode} {} {} {} {}",
            self.target, self.count, self.bind_base, self.pause_ms
        )
    }

    fn decode(s: &str) -> Plan {
        let f: Vec<&str> = s.split(' ').collect();
        Plan {
            mode: match f[0] {
                "tcp" => Mode::Tcp,
                "udp" => Mode::Udp,
                _ => Mode::UdpConnected,
            },
            target: f[1].parse().expect("target"),
            count: f[2].parse().expect("count"),
            bind_base: f[3].parse().expect("bind base"),
            pause_ms: f[4].parse().expect("pause"),
        }
    }
}

/// Starts the client process in the fixture's cgroup and netns.
pub fn spawn(fx: &Fixture, plan: Plan) -> Child {
    let procs = OpenOptions::new()
        .write(true)
        .open(fx.cgroup.path.join("cgroup.procs"))
        .expect("open cgroup.procs");
    let netns = fx.netns.fd.as_raw_fd();
    let procs_fd = procs.as_raw_fd();
    let mut cmd = Command::new(std::env::current_exe().expect("current exe"));
    cmd.args([
        "--exact",
        "client_process_entry",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(ENV, plan.encode())
    .stdout(Stdio::piped())
    .stderr(Stdio::inherit());
    // SAFETY: the closure runs in the forked child before exec and makes only two raw,
    // async-signal-safe syscalls on fds the parent keeps open until spawn returns: join the
    // cgroup ("0" = this process), then enter the netns.
    unsafe {
        cmd.pre_exec(move || {
            if libc::write(procs_fd, b"0".as_ptr().cast(), 1) != 1 {
                return Err(std::io::Error::last_os_error());
            }
            if libc::setns(netns, libc::CLONE_NEWNET) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let child = cmd.spawn().expect("spawn client");
    drop(procs);
    child
}

/// Collects a spawned client's outcomes.
pub fn collect(child: Child) -> Vec<Outcome> {
    let out = child.wait_with_output().expect("wait for client");
    assert!(out.status.success(), "client failed: {:?}", out.status);
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.find("CLIENT ").map(|at| &l[at + 7..]))
        .map(|l| {
            let f: Vec<&str> = l.split(' ').collect();
            match f[0] {
                "OK" => Outcome::Ok {
                    backend: f[1].to_string(),
                    seen: f[2].to_string(),
                },
                _ => Outcome::Err {
                    errno: f[1].parse().expect("errno"),
                    micros: f[2].parse().expect("micros"),
                },
            }
        })
        .collect()
}

/// Runs a client plan to completion.
pub fn run(fx: &Fixture, plan: Plan) -> Vec<Outcome> {
    let outcomes = collect(spawn(fx, plan));
    assert_eq!(
        outcomes.len(),
        plan.count as usize,
        "client reported too few results"
    );
    outcomes
}

/// Entry point in the child: executes the plan from the environment.
pub fn client_main(plan: &str) {
    let plan = Plan::decode(plan);
    for i in 0..plan.count {
        let start = Instant::now();
        let result = match plan.mode {
            Mode::Tcp => tcp_once(&plan, i),
            Mode::Udp => udp_once(&plan, false),
            Mode::UdpConnected => udp_once(&plan, true),
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
        let local = SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, plan.bind_base + i as u16);
        socket.bind(&SockAddr::from(local))?;
    }
    socket.connect_timeout(&SockAddr::from(plan.target), Duration::from_secs(2))?;
    let seen = socket
        .peer_addr()?
        .as_socket()
        .map_or("?".to_string(), |a| a.to_string());
    socket.set_read_timeout(Some(Duration::from_secs(2)))?;
    let mut stream: std::net::TcpStream = socket.into();
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    // Reset instead of TIME_WAIT, so bound source ports can be reused at once.
    Socket::from(stream).set_linger(Some(Duration::ZERO))?;
    Ok((reply.trim().to_string(), seen))
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
    let reply = String::from_utf8_lossy(&buf[..n]).trim().to_string();
    if reply.is_empty() {
        return Err(std::io::Error::new(ErrorKind::UnexpectedEof, "empty reply"));
    }
    Ok((reply, from.to_string()))
}
