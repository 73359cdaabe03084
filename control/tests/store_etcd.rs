//! The shared store suite against the etcd backend on a real 3-member etcd cluster, plus what
//! only this backend has: surviving the loss of one member, failing clearly (and losing
//! nothing) without quorum, and naming an unreachable cluster.
//!
//! The suite's cases share one cluster, each under its own key prefix, and run one at a time:
//! etcd's revision and compaction are cluster-wide, and cases compare the store's revision
//! with their own writes and compact.

mod etcd_cluster;
mod store_suite;

use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use bosun_control::store::{Error, EtcdConfig, EtcdStore, Limits, ListOptions, Store};
use etcd_cluster::Cluster;

use store_suite::{bytes, within, Backend};

/// The cluster of the suite's cases, started by the first case; its members end with the
/// test process (see `etcd_cluster`).
static SHARED: Mutex<Option<Arc<Cluster>>> = Mutex::new(None);

/// One suite case at a time: `true` while a case runs.
static SERIAL: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

/// Held by a running suite case; released when the case ends, also by a panic.
struct Turn;

impl Turn {
    fn take() -> Turn {
        let (running, free) = &SERIAL;
        let mut running = running.lock().unwrap_or_else(PoisonError::into_inner);
        while *running {
            running = free.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running = true;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let (running, free) = &SERIAL;
        *running.lock().unwrap_or_else(PoisonError::into_inner) = false;
        free.notify_one();
    }
}

struct Etcd {
    cluster: Arc<Cluster>,
    _turn: Turn,
}

/// Waits for this case's turn, then for the shared cluster.
fn etcd() -> Etcd {
    let turn = Turn::take();
    let mut shared = SHARED.lock().unwrap_or_else(PoisonError::into_inner);
    let cluster = shared.get_or_insert_with(|| Arc::new(Cluster::start(3)));
    Etcd {
        cluster: Arc::clone(cluster),
        _turn: turn,
    }
}

fn config(cluster: &Cluster, prefix: &str, limits: Limits) -> EtcdConfig {
    EtcdConfig {
        limits,
        ..EtcdConfig::new(cluster.endpoints(), prefix)
    }
}

impl Backend for Etcd {
    async fn open(&self, case: &str, limits: Limits) -> Arc<dyn Store> {
        let config = config(&self.cluster, &format!("/suite/{case}"), limits);
        Arc::new(EtcdStore::connect(config).await.expect("connect to etcd"))
    }
}

store_suite::store_cases!(etcd());

/// The index of the member that leads the cluster.
async fn leader(cluster: &Cluster) -> usize {
    for endpoint in cluster.endpoints() {
        let Ok(mut client) = etcd_client::Client::connect([&endpoint], None).await else {
            continue;
        };
        let Ok(status) = client.status().await else {
            continue;
        };
        let ids = client.member_list().await.expect("member list");
        let leader = ids
            .members()
            .iter()
            .find(|member| member.id() == status.leader())
            .expect("the leader is a member");
        let name = leader.name().to_owned();
        return cluster
            .members
            .iter()
            .position(|member| member.name == name)
            .expect("a member of ours");
    }
    panic!("no member answered");
}

/// Killing the leader of three members: after at most one failed request (the one in flight
/// on the dead member, or during the election), every write succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn writes_go_on_when_one_of_three_members_dies() {
    let mut cluster = Cluster::start(3);
    let store = EtcdStore::connect(config(&cluster, "/ha", Limits::default()))
        .await
        .expect("connect");
    let before = store.create("/k/before", bytes("1")).await.unwrap();
    let dead = leader(&cluster).await;
    cluster.kill(dead);

    let mut failures = 0;
    let mut written = Vec::new();
    let started = Instant::now();
    for n in 0..20 {
        let key = format!("/k/after-{n:02}");
        loop {
            match store.create(&key, bytes("x")).await {
                Ok(kv) => break written.push(kv),
                // A write that timed out in the election may have been applied after all.
                Err(Error::AlreadyExists { .. }) if failures > 0 => {
                    break written.push(store.get(&key).await.unwrap().expect("the key"));
                }
                Err(error) => {
                    failures += 1;
                    eprintln!("write {n} during the election: {error}");
                    assert!(failures <= 5, "writes keep failing: {error}");
                    assert!(started.elapsed() < Duration::from_secs(20));
                }
            }
        }
    }
    eprintln!(
        "20 writes with member {dead} dead in {:?}, {failures} retried",
        started.elapsed()
    );
    assert!(written
        .windows(2)
        .all(|w| w[0].mod_revision < w[1].mod_revision));
    assert!(written[0].mod_revision > before.mod_revision);
    written.push(before);
    written.sort_by(|a, b| a.key.cmp(&b.key));
    let page = store.list("/k/", &ListOptions::default()).await.unwrap();
    assert_eq!(page.items, written);
}

/// With two of three members dead, requests fail within the request timeout with an error
/// naming the endpoints; once the members are back, every key is intact, the failed write
/// left nothing, and revisions continue after the last one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_quorum_requests_fail_clearly_and_nothing_is_lost() {
    let mut cluster = Cluster::start(3);
    let timeout = Duration::from_secs(3);
    let store = EtcdStore::connect(EtcdConfig {
        request_timeout: timeout,
        ..config(&cluster, "/quorum", Limits::default())
    })
    .await
    .expect("connect");
    let mut scribe = store_suite::Scribe::new(Arc::new(store.clone()), "/q/");
    scribe.churn(30, 0).await;
    let last = store.revision().await.unwrap();

    cluster.kill(0);
    cluster.kill(1);
    let started = Instant::now();
    // Reads fail as soon as the survivor sees it has no leader (an election timeout).
    let error = within("a failing read", async {
        loop {
            match store.get("/q/k00001").await {
                Ok(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                Err(error) => break error,
            }
        }
    })
    .await;
    eprintln!("read without quorum after {:?}: {error}", started.elapsed());
    let write_started = Instant::now();
    let error = store
        .create("/q/lost", bytes("x"))
        .await
        .expect_err("a write without quorum");
    let waited = write_started.elapsed();
    eprintln!("write without quorum after {waited:?}: {error}");
    assert!(waited < timeout + Duration::from_secs(2), "{waited:?}");
    let text = error.to_string();
    let survivor = format!("127.0.0.1:{}", cluster.members[2].client_port);
    assert!(
        text.contains("etcd at") && text.contains(&survivor),
        "{text}"
    );

    cluster.restart(0);
    cluster.restart(1);
    for n in 0..3 {
        cluster.wait_healthy(n);
    }
    let (items, revision) = within("the list after recovery", async {
        loop {
            match store.list("/q/", &ListOptions::default()).await {
                Ok(page) => break (page.items, page.revision),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    })
    .await;
    assert_eq!(revision, last, "nothing was written while down");
    assert_eq!(items, scribe.live.values().cloned().collect::<Vec<_>>());
    let next = store.create("/q/after", bytes("y")).await.unwrap();
    assert_eq!(next.mod_revision, last + 1);
}

/// A cluster nobody answers on fails to open within the timeouts, naming the endpoints.
#[tokio::test]
async fn an_unreachable_cluster_is_named_in_the_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let endpoints = vec![
        format!("http://127.0.0.1:{port}"),
        format!("http://127.0.0.2:{port}"),
    ];
    let started = Instant::now();
    let error = EtcdStore::connect(EtcdConfig {
        request_timeout: Duration::from_secs(2),
        connect_timeout: Duration::from_secs(1),
        ..EtcdConfig::new(endpoints.clone(), "/x")
    })
    .await
    .expect_err("nothing listens");
    eprintln!("after {:?}: {error}", started.elapsed());
    assert!(started.elapsed() < Duration::from_secs(5));
    let text = error.to_string();
    assert!(text.contains(&endpoints.join(",")), "{text}");
}

/// A list answer larger than gRPC's default 4 MiB message limit arrives whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lists_larger_than_four_mebibytes_are_read() {
    let backend = etcd();
    let store = backend.open("big-list", Limits::default()).await;
    let value = bytes(&"v".repeat(1024 * 1024));
    for n in 0..6 {
        store
            .create(&format!("/big/{n}"), value.clone())
            .await
            .unwrap();
    }
    let page = store.list("/big/", &ListOptions::default()).await.unwrap();
    assert_eq!(page.items.len(), 6);
    assert!(page.items.iter().all(|kv| kv.value == value));
    let mut watch = store.watch("/big/", page.revision - 6).await.unwrap();
    assert_eq!(store_suite::next_events(&mut watch, 6).await.len(), 6);
}

/// A list at revision 0 is the empty state before every write, as on the embedded store
/// (etcd itself reads revision 0 as "the newest").
#[tokio::test]
async fn a_list_at_revision_zero_is_empty() {
    let backend = etcd();
    let store = backend.open("revision-zero", Limits::default()).await;
    store.create("/z/a", bytes("a")).await.unwrap();
    let at_zero = ListOptions {
        revision: Some(0),
        ..ListOptions::default()
    };
    let page = store.list("/z/", &at_zero).await.unwrap();
    assert_eq!((page.items.len(), page.revision, page.more), (0, 0, false));
}

const CONTROL: &str = env!("CARGO_BIN_EXE_bosun-control");

/// A `bosun-control` process, killed on drop.
struct Process(std::process::Child);

impl Drop for Process {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn control(data_dir: &std::path::Path, endpoints: &str) -> Process {
    let log = std::fs::File::create(data_dir.join("control.log")).expect("log");
    let child = std::process::Command::new(CONTROL)
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--secure-port", "0", "--etcd-prefix", "/cli"])
        .args(["--etcd-endpoints", endpoints])
        .stdout(std::process::Stdio::null())
        .stderr(log)
        .spawn()
        .expect("spawn bosun-control");
    Process(child)
}

/// `--etcd-endpoints` (all three members, comma-separated) replaces the embedded store: the
/// server starts and writes its kubeconfig, and no `state.db` appears in its data dir.
#[test]
fn bosun_control_starts_on_the_etcd_cluster_it_is_given() {
    let backend = etcd();
    let dir = tempfile::tempdir().unwrap();
    let _control = control(dir.path(), &backend.cluster.endpoints().join(","));
    let deadline = Instant::now() + Duration::from_secs(20);
    while !dir.path().join("admin.kubeconfig").exists() {
        let log = std::fs::read_to_string(dir.path().join("control.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "not serving after 20 s:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!dir.path().join("state.db").exists());
}

/// With no etcd member reachable, `bosun-control` exits within its request timeout with an
/// error naming the endpoints, instead of hanging or falling back to the embedded store.
#[test]
fn bosun_control_refuses_to_start_without_its_etcd() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    drop(listener);
    let dir = tempfile::tempdir().unwrap();
    let mut control = control(dir.path(), &endpoint);
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = control.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "still running after 30 s");
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(dir.path().join("control.log")).unwrap();
    assert!(!status.success(), "{log}");
    assert!(
        log.contains("opening the store") && log.contains(&endpoint),
        "{log}"
    );
    assert!(!dir.path().join("state.db").exists());
}
