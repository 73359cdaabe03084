//! The service table against the real kernel: pinned state survives the loader (adoption
//! without a traffic gap), map sizes are honoured, and a 10k-service full write is timed.

mod common;

use std::{
    net::{Ipv4Addr, SocketAddrV4},
    time::{Duration, Instant},
};

use bosun_ebpf::{Backend, DataplaneError, MapSizes, Protocol, ServiceSpec, SockLb};
use common::{
    client::{self, Mode, Outcome, Plan},
    servers::backends,
    svc::{key, spec_for, spread, vip},
    test_sizes, Fixture,
};

#[test]
fn pinned_dataplane_survives_the_loader_and_is_adopted_without_a_traffic_gap() {
    let mut fx = Fixture::new("adopt");
    let servers = backends(&fx.netns, 9, 3, 8080, false);
    let k = key(vip(9), 80, Protocol::Tcp);
    let target = SocketAddrV4::new(vip(9), 80);
    let id = fx
        .lb()
        .upsert_service(k, spec_for(&servers))
        .expect("upsert");
    let installed = fx.lb().services();

    // A bounded load loop runs while the loader goes away and a new one adopts.
    let load = client::spawn(
        &fx,
        Plan {
            pause_ms: 5,
            ..Plan::new(Mode::Tcp, target, 200)
        },
    );
    std::thread::sleep(Duration::from_millis(150));
    drop(fx.lb.take());
    std::thread::sleep(Duration::from_millis(150));
    let mut lb = SockLb::load_or_adopt(&fx.pins.path, test_sizes()).expect("adopt");
    assert!(lb.adopted(), "pinned programs and maps must be adopted");
    assert_eq!(
        lb.services(),
        installed,
        "adopted table must show the installed services"
    );
    lb.attach(&fx.cgroup.path).expect("attach is idempotent");
    // The adopted table can be updated: drop one backend.
    lb.upsert_service(k, spec_for(&servers[..2]))
        .expect("update after adoption");
    fx.lb = Some(lb);

    let outcomes = client::collect(load);
    assert_eq!(outcomes.len(), 200);
    let failed: Vec<&Outcome> = outcomes.iter().filter(|o| o.backend().is_none()).collect();
    assert!(
        failed.is_empty(),
        "requests failed across the restart: {failed:?}"
    );
    let after = spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 40)));
    assert!(
        !after.contains_key(&servers[2].addr.to_string()),
        "{after:?}"
    );
    assert!(fx.lb().counters(id).expect("counters").connections >= 240);
}

#[test]
fn map_sizes_are_honoured_with_errors_naming_the_map() {
    let sizes = MapSizes {
        services: 4,
        backend_slots: 8,
        ..test_sizes()
    };
    let mut fx = Fixture::with_sizes("sizes", sizes);
    assert_eq!(fx.lb().map_sizes(), sizes);
    let b = |n: u8| Backend::ready(Ipv4Addr::new(10, 250, 10, n), 8080);
    let spec = |n: u8| ServiceSpec {
        backends: (1..=n).map(b).collect(),
        ..ServiceSpec::default()
    };
    for i in 0..4 {
        fx.lb()
            .upsert_service(key(vip(20 + i), 80, Protocol::Tcp), spec(1))
            .expect("fits");
    }
    let err = fx
        .lb()
        .upsert_service(key(vip(30), 80, Protocol::Tcp), spec(1))
        .unwrap_err();
    assert!(
        matches!(
            err,
            DataplaneError::Full {
                map: "bosun_svc_v1",
                ..
            }
        ),
        "{err}"
    );
    // 4 slots used; 5 more do not fit 8, and the failed service is not left half-written.
    let bad = key(vip(20), 80, Protocol::Tcp);
    let before = fx.lb().services();
    let err = fx.lb().upsert_service(bad, spec(5)).unwrap_err();
    assert!(
        matches!(
            err,
            DataplaneError::Full {
                map: "bosun_be_v1",
                ..
            }
        ),
        "{err}"
    );
    println!("errors: {err}");
    assert_eq!(
        fx.lb().services(),
        before,
        "a failed update must leave the service as it was"
    );
    // ...and frees what it half-wrote: 4 live + 4 new slots fit exactly.
    fx.lb()
        .upsert_service(bad, spec(4))
        .expect("partial write was cleared");
    fx.lb().upsert_service(bad, spec(1)).expect("shrink back");
    // A batch that does not fit: what fits goes live, the rest fails and is left clean.
    let batch: Vec<_> = (0..3u8)
        .map(|i| (key(vip(40 + i), 80, Protocol::Tcp), spec(1)))
        .collect();
    assert!(fx
        .lb()
        .remove_service(&key(vip(22), 80, Protocol::Tcp))
        .expect("remove"));
    let results = fx.lb().upsert_services(batch);
    assert!(results[0].1.is_ok(), "{results:?}");
    assert!(results[1..].iter().all(|(_, r)| r.is_err()), "{results:?}");
    assert!(fx
        .lb()
        .remove_service(&key(vip(40), 80, Protocol::Tcp))
        .expect("remove"));
    // Removing frees ids and slots.
    assert!(fx
        .lb()
        .remove_service(&key(vip(21), 80, Protocol::Tcp))
        .expect("remove"));
    fx.lb()
        .upsert_service(key(vip(30), 80, Protocol::Tcp), spec(1))
        .expect("fits again");
}

#[test]
fn ten_thousand_services_full_write_then_one_endpoint_change() {
    const N: u32 = 10_000;
    let sizes = MapSizes {
        services: N,
        backend_slots: N * 10 * 2,
        ..test_sizes()
    };
    let mut fx = Fixture::with_sizes("10k", sizes);
    let servers = backends(&fx.netns, 11, 10, 8080, false);
    let vip_of = |i: u32| Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 96, 0, 0)) + 256 + i);
    let all: Vec<_> = (0..N)
        .map(|i| (key(vip_of(i), 80, Protocol::Tcp), spec_for(&servers)))
        .collect();
    let start = Instant::now();
    let results = fx.lb().upsert_services(all.clone());
    let full = start.elapsed();
    assert!(results.iter().all(|(_, r)| r.is_ok()));
    assert_eq!(fx.lb().services().len(), N as usize);
    let start = Instant::now();
    let again = fx.lb().upsert_services(all);
    let resync = start.elapsed();
    assert!(again.iter().all(|(_, r)| r.is_ok()));
    let err = fx
        .lb()
        .upsert_service(key(vip_of(N), 80, Protocol::Tcp), spec_for(&servers));
    assert!(matches!(err, Err(DataplaneError::Full { .. })), "{err:?}");

    let last = key(vip_of(N - 1), 80, Protocol::Tcp);
    let mut one = Vec::new();
    for round in 0..20 {
        let keep = if round % 2 == 0 {
            &servers[1..]
        } else {
            &servers[..]
        };
        let t = Instant::now();
        fx.lb()
            .upsert_service(last, spec_for(keep))
            .expect("one endpoint change");
        one.push(t.elapsed());
    }
    one.sort();
    println!(
        "full write of {N} services x 10 backends: {:.1} ms; unchanged resync: {:.1} ms; \
         one endpoint change: p50 {:.3} ms, max {:.3} ms",
        full.as_secs_f64() * 1e3,
        resync.as_secs_f64() * 1e3,
        one[one.len() / 2].as_secs_f64() * 1e3,
        one[one.len() - 1].as_secs_f64() * 1e3
    );
    let target = SocketAddrV4::new(vip_of(N - 1), 80);
    assert_eq!(
        spread(&client::run(&fx, Plan::new(Mode::Tcp, target, 100))).len(),
        10
    );

    // Adoption rebuilds the whole table from the maps.
    drop(fx.lb.take());
    let t = Instant::now();
    let lb = SockLb::load_or_adopt(&fx.pins.path, sizes).expect("adopt");
    println!(
        "adopting {N} services: {:.1} ms",
        t.elapsed().as_secs_f64() * 1e3
    );
    assert_eq!(lb.services().len(), N as usize);
    fx.lb = Some(lb);
}

#[test]
fn a_batch_that_overflows_the_backend_slots_fails_cleanly_per_service() {
    let sizes = MapSizes {
        services: 8,
        backend_slots: 6,
        ..test_sizes()
    };
    let mut fx = Fixture::with_sizes("batch", sizes);
    let spec = |n: u8| ServiceSpec {
        backends: (1..=n)
            .map(|h| Backend::ready(Ipv4Addr::new(10, 250, 12, h), 8080))
            .collect(),
        ..ServiceSpec::default()
    };
    let first: Vec<_> = (0..3u8)
        .map(|i| (key(vip(50 + i), 80, Protocol::Tcp), spec(2)))
        .collect();
    assert!(fx
        .lb()
        .upsert_services(first)
        .iter()
        .all(|(_, r)| r.is_ok()));
    let before = fx.lb().services();
    let more: Vec<_> = (0..2u8)
        .map(|i| (key(vip(60 + i), 80, Protocol::Tcp), spec(1)))
        .collect();
    let results = fx.lb().upsert_services(more.clone());
    assert!(
        matches!(
            results[0].1,
            Err(DataplaneError::Full {
                map: "bosun_be_v1",
                ..
            })
        ),
        "{results:?}"
    );
    assert!(
        matches!(results[1].1, Err(DataplaneError::BatchAborted { .. })),
        "{results:?}"
    );
    assert_eq!(fx.lb().services(), before);
    assert!(fx
        .lb()
        .remove_service(&key(vip(50), 80, Protocol::Tcp))
        .expect("remove"));
    assert!(fx.lb().upsert_services(more).iter().all(|(_, r)| r.is_ok()));
}

#[test]
fn detach_and_unpin_removes_every_pin_and_stops_translation() {
    let mut fx = Fixture::new("unpin");
    let servers = backends(&fx.netns, 13, 1, 8080, false);
    let target = SocketAddrV4::new(vip(13), 80);
    fx.lb()
        .upsert_service(key(vip(13), 80, Protocol::Tcp), spec_for(&servers))
        .expect("upsert");
    assert!(client::run(&fx, Plan::new(Mode::Tcp, target, 1))[0]
        .backend()
        .is_some());
    fx.lb
        .take()
        .expect("lb")
        .detach_and_unpin()
        .expect("detach and unpin");
    assert!(!fx.pins.path.exists(), "pin dir must be gone");
    // The VIP is plain again: it meets the blackhole route. bpffs drops an unlinked pin's
    // reference after an RCU grace period, so the hook goes a moment after the unlink.
    bosun_test_support::wait_until(
        "the VIP to meet the blackhole route",
        Duration::from_secs(5),
        || {
            let after = client::run(&fx, Plan::new(Mode::Tcp, target, 1));
            matches!(after[0], Outcome::Err { .. })
        },
    );
}
