//! The test client process against real sockets in a netns it did not create: it reaches a
//! TCP and a UDP server inside the test's namespace, reports the peer it saw, reports a
//! refused connection by errno, and joins the cgroup it is given. Needs root.

use std::io::Write;
use std::net::{SocketAddrV4, TcpListener, UdpSocket};
use std::path::Path;

use bosun_test_support::client::{collect, spawn, Mode, Outcome, Placement, Plan};
use bosun_test_support::{CgroupDir, Netns};

const CLIENT: &str = env!("CARGO_BIN_EXE_bosun-test-client");

#[test]
fn client_reaches_servers_inside_its_netns_and_reports_refusals() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (cargo xtask test)"
    );
    let ns = Netns::new("bstc");
    let tcp = ns.run_in(|| TcpListener::bind("127.0.0.1:0").expect("bind tcp"));
    let udp = ns.run_in(|| UdpSocket::bind("127.0.0.1:0").expect("bind udp"));
    let (tcp_addr, udp_addr) = (v4(tcp.local_addr()), v4(udp.local_addr()));
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().flatten() {
            let _ = stream.write_all(b"tcp-backend\n");
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((_, from)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(b"udp-backend", from);
        }
    });
    let netns = ns.path();
    let here = Placement {
        cgroup: None,
        netns: Some(&netns),
    };
    let run = |plan: Plan| collect(spawn(Path::new(CLIENT), &here, &plan));

    let tcp_out = run(Plan::new(Mode::Tcp, tcp_addr, 2));
    let expected = Outcome::Ok {
        backend: "tcp-backend".into(),
        seen: tcp_addr.to_string(),
    };
    assert_eq!(tcp_out, vec![expected.clone(), expected]);

    for mode in [Mode::Udp, Mode::UdpConnected] {
        let out = run(Plan::new(mode, udp_addr, 1));
        assert_eq!(
            out,
            vec![Outcome::Ok {
                backend: "udp-backend".into(),
                seen: udp_addr.to_string()
            }],
            "{mode:?}"
        );
    }

    // Nothing listens on port 1 in the namespace: ECONNREFUSED.
    let refused = run(Plan::new(Mode::Tcp, "127.0.0.1:1".parse().unwrap(), 1));
    assert!(
        matches!(refused[..], [Outcome::Err { errno: 111, .. }]),
        "{refused:?}"
    );
}

#[test]
fn client_joins_the_cgroup_it_is_given() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "needs root (cargo xtask test)"
    );
    let parent = Path::new("/sys/fs/cgroup/unified");
    let cgroup = CgroupDir::new(parent, &bosun_test_support::unique("bstc-cg"));
    let placement = Placement {
        cgroup: Some(&cgroup.path),
        netns: None,
    };
    // A plan that takes a moment, so the process can be seen in the cgroup.
    let plan = Plan {
        pause_ms: 300,
        ..Plan::new(Mode::Tcp, "127.0.0.1:1".parse().unwrap(), 3)
    };
    let child = spawn(Path::new(CLIENT), &placement, &plan);
    let pid = child.id().to_string();
    bosun_test_support::wait_until(
        "the client in the cgroup",
        std::time::Duration::from_secs(5),
        || {
            std::fs::read_to_string(cgroup.procs())
                .is_ok_and(|procs| procs.lines().any(|line| line == pid))
        },
    );
    assert_eq!(collect(child).len(), 3);
}

fn v4(addr: std::io::Result<std::net::SocketAddr>) -> SocketAddrV4 {
    match addr.expect("local addr") {
        std::net::SocketAddr::V4(v4) => v4,
        other => panic!("not IPv4: {other}"),
    }
}
