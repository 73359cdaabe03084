//! Socket LB against the real kernel: clients in a test cgroup + netns, backends on `lo` in
//! that netns, services at 10.96.x.y (blackholed there). Needs root, bpffs, cgroup2 at
//! /sys/fs/cgroup/unified. Clients and backends share the netns, so every test also
//! exercises hairpin (a pod reaching itself through its service).

mod common;

use std::{net::SocketAddrV4, time::Duration};

use bosun_ebpf::{Backend, Protocol, ServiceSpec};
use common::{
    client::{self, Mode, Outcome, Plan},
    servers::backends,
    svc::{assert_even, key, spec_for, spread, vip},
    Fixture,
};

#[test]
fn tcp_through_cluster_ip_reaches_all_backends_evenly_and_getpeername_shows_the_vip() {
    let mut fx = Fixture::new("tcp");
    let servers = backends(&fx.netns, 1, 4, 8080, false);
    let k = key(vip(1), 80, Protocol::Tcp);
    let id = fx
        .lb()
        .upsert_service(k, spec_for(&servers))
        .expect("upsert");
    let outcomes = client::run(
        &fx,
        Plan::new(Mode::Tcp, SocketAddrV4::new(vip(1), 80), 200),
    );
    let counts = spread(&outcomes);
    println!("tcp spread over 4 backends: {counts:?}");
    assert_even(&counts, &servers, 200);
    for o in &outcomes {
        let Outcome::Ok { seen, .. } = o else {
            unreachable!()
        };
        assert_eq!(
            seen, "10.96.0.1:80",
            "getpeername must report the service address"
        );
    }
    assert_eq!(fx.lb().counters(id).expect("counters").connections, 200);
}

#[test]
fn udp_through_cluster_ip_reaches_all_backends_and_replies_come_from_the_vip() {
    let mut fx = Fixture::new("udp");
    let servers = backends(&fx.netns, 2, 3, 5353, true);
    let k = key(vip(2), 53, Protocol::Udp);
    let id = fx
        .lb()
        .upsert_service(k, spec_for(&servers))
        .expect("upsert");
    let target = SocketAddrV4::new(vip(2), 53);
    for mode in [Mode::Udp, Mode::UdpConnected] {
        let outcomes = client::run(&fx, Plan::new(mode, target, 150));
        let counts = spread(&outcomes);
        println!("udp ({mode:?}) spread over 3 backends: {counts:?}");
        assert_even(&counts, &servers, 150);
        for o in &outcomes {
            let Outcome::Ok { seen, .. } = o else {
                unreachable!()
            };
            assert_eq!(
                seen, "10.96.0.2:53",
                "{mode:?}: reply must come from the service address"
            );
        }
    }
    let c = fx.lb().counters(id).expect("counters");
    assert_eq!((c.datagrams, c.connections), (150, 150), "{c:?}");
}

#[test]
fn zero_endpoints_fail_at_once_with_econnrefused() {
    let mut fx = Fixture::new("refused");
    let tcp = key(vip(3), 80, Protocol::Tcp);
    let udp = key(vip(3), 53, Protocol::Udp);
    let id = fx
        .lb()
        .upsert_service(tcp, ServiceSpec::default())
        .expect("upsert tcp");
    fx.lb()
        .upsert_service(udp, ServiceSpec::default())
        .expect("upsert udp");
    for (mode, port) in [(Mode::Tcp, 80), (Mode::Udp, 53), (Mode::UdpConnected, 53)] {
        let outcomes = client::run(&fx, Plan::new(mode, SocketAddrV4::new(vip(3), port), 5));
        for o in outcomes {
            match o {
                Outcome::Err { errno, micros } => {
                    assert_eq!(errno, libc::ECONNREFUSED, "{mode:?}: {o:?}");
                    assert!(micros < 50_000, "{mode:?}: refusal took {micros} µs");
                }
                ok => panic!("{mode:?}: expected ECONNREFUSED, got {ok:?}"),
            }
        }
    }
    assert_eq!(fx.lb().counters(id).expect("counters").refused, 5);
}

#[test]
fn removed_endpoint_gets_no_new_connections() {
    let mut fx = Fixture::new("remove");
    let servers = backends(&fx.netns, 4, 3, 8080, false);
    let k = key(vip(4), 80, Protocol::Tcp);
    let target = SocketAddrV4::new(vip(4), 80);
    fx.lb()
        .upsert_service(k, spec_for(&servers))
        .expect("upsert");
    assert_eq!(
        spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 60))).len(),
        3
    );
    fx.lb()
        .upsert_service(k, spec_for(&servers[1..]))
        .expect("update");
    let counts = spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 90)));
    assert!(
        !counts.contains_key(&servers[0].addr.to_string()),
        "{counts:?}"
    );
    assert_eq!(counts.len(), 2, "{counts:?}");
}

#[test]
fn terminating_serving_endpoints_are_used_only_when_none_is_ready() {
    let mut fx = Fixture::new("term");
    let servers = backends(&fx.netns, 5, 3, 8080, false);
    let k = key(vip(5), 80, Protocol::Tcp);
    let target = SocketAddrV4::new(vip(5), 80);
    let b = |i: usize| (*servers[i].addr.ip(), servers[i].addr.port());
    let not_serving = Backend {
        serving: false,
        ..Backend::terminating(b(2).0, b(2).1)
    };
    let mixed = ServiceSpec {
        backends: vec![
            Backend::ready(b(0).0, b(0).1),
            Backend::terminating(b(1).0, b(1).1),
            not_serving,
        ],
        ..ServiceSpec::default()
    };
    fx.lb().upsert_service(k, mixed).expect("upsert");
    let counts = spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 30)));
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec![&servers[0].addr.to_string()]
    );

    let draining = ServiceSpec {
        backends: vec![Backend::terminating(b(1).0, b(1).1), not_serving],
        ..ServiceSpec::default()
    };
    fx.lb().upsert_service(k, draining).expect("update");
    let counts = spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 30)));
    assert_eq!(
        counts.keys().collect::<Vec<_>>(),
        vec![&servers[1].addr.to_string()]
    );
}

#[test]
fn addresses_without_a_service_entry_are_untouched() {
    let mut fx = Fixture::new("headless");
    let servers = backends(&fx.netns, 6, 1, 8080, false);
    fx.lb()
        .upsert_service(key(vip(6), 80, Protocol::Tcp), spec_for(&servers))
        .expect("upsert");
    // A pod IP (what a headless service resolves to) goes straight through.
    let direct = client::run(&fx, Plan::new(Mode::Tcp, servers[0].addr, 3));
    for o in &direct {
        assert_eq!(o.backend(), Some("10.250.6.1:8080"), "{o:?}");
    }
    // Another port of the VIP is no service: it meets the blackhole route.
    let other = client::run(&fx, Plan::new(Mode::Tcp, SocketAddrV4::new(vip(6), 81), 1));
    assert!(matches!(other[0], Outcome::Err { .. }), "{other:?}");
}

#[test]
fn client_ip_affinity_sticks_until_the_timeout() {
    let mut fx = Fixture::new("affinity");
    let servers = backends(&fx.netns, 7, 4, 8080, false);
    let k = key(vip(7), 80, Protocol::Tcp);
    let target = SocketAddrV4::new(vip(7), 80);
    let spec = ServiceSpec {
        // Long enough that the first burst finishes inside it even on a loaded machine.
        affinity_timeout: Some(Duration::from_secs(3)),
        ..spec_for(&servers)
    };
    fx.lb().upsert_service(k, spec).expect("upsert");
    let first = spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 20)));
    assert_eq!(first.len(), 1, "affinity must pin one backend: {first:?}");
    let sticky = first.keys().next().cloned().expect("one backend");
    // After the timeout a new choice is made; with 4 backends it soon differs.
    let mut moved = false;
    for _ in 0..8 {
        std::thread::sleep(Duration::from_millis(3300));
        let again = client::run(&fx, Plan::new(Mode::Tcp, target, 1));
        if again[0].backend() != Some(sticky.as_str()) {
            moved = true;
            break;
        }
    }
    assert!(moved, "affinity never expired");
}

#[test]
fn maglev_keeps_most_flows_when_one_backend_of_many_is_removed() {
    let mut fx = Fixture::new("maglev");
    let servers = backends(&fx.netns, 8, 10, 8080, false);
    let k = key(vip(8), 80, Protocol::Tcp);
    let target = SocketAddrV4::new(vip(8), 80);
    let spec = ServiceSpec {
        maglev: true,
        ..spec_for(&servers)
    };
    fx.lb().upsert_service(k, spec).expect("upsert");
    // Flows = bound source ports; the same port hashes to the same backend.
    let plan = Plan {
        bind_base: 41000,
        ..Plan::new(Mode::Tcp, target, 300)
    };
    let before = client::run(&fx, plan);
    let again = client::run(&fx, plan);
    assert_eq!(before, again, "maglev must be deterministic per flow");
    assert!(spread(&before).len() >= 9, "{:?}", spread(&before));

    let removed = servers[3].addr.to_string();
    let spec = ServiceSpec {
        maglev: true,
        backends: spec_for(&servers)
            .backends
            .into_iter()
            .filter(|b| b.ip != *servers[3].addr.ip())
            .collect(),
        ..ServiceSpec::default()
    };
    fx.lb().upsert_service(k, spec).expect("update");
    let after = client::run(&fx, plan);
    let (mut kept, mut moved) = (0, 0);
    for (b, a) in before.iter().zip(&after) {
        assert_ne!(
            a.backend(),
            Some(removed.as_str()),
            "removed backend still chosen"
        );
        if b.backend() != Some(removed.as_str()) {
            if b == a {
                kept += 1
            } else {
                moved += 1
            }
        }
    }
    println!("maglev: {kept} flows kept, {moved} moved (of flows not on the removed backend)");
    assert!(
        moved * 10 <= kept,
        "too many flows moved: {moved} vs {kept} kept"
    );
}
