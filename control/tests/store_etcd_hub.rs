//! The etcd backend's watch hub on a real one-member etcd: the store's watches share one etcd
//! watch (counted by etcd itself), a watch from before the hub's history gets its own and
//! every event, and when the hub's etcd watch ends its watches end with an error, while a
//! watch made once etcd is back works again.

mod etcd_cluster;

use std::future::Future;
use std::time::Duration;

use bosun_control::store::{EtcdConfig, EtcdStore, Event, Limits, Store, WatchStream};
use bytes::Bytes;
use etcd_cluster::Cluster;

const PATIENCE: Duration = Duration::from_secs(20);

async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("waited {PATIENCE:?} for {what}"),
    }
}

async fn next_event(stream: &mut WatchStream) -> Event {
    match within("a watch event", stream.next()).await {
        Some(Ok(event)) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

fn keys(events: &[Event]) -> Vec<&str> {
    events.iter().map(|event| event.kv.key.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watches_share_one_etcd_watch_and_end_with_it() {
    let mut cluster = Cluster::start(1);
    cluster.wait_healthy(0);
    let limits = Limits {
        watch_window: 16,
        ..Limits::default()
    };
    let store = EtcdStore::connect(EtcdConfig {
        limits,
        request_timeout: Duration::from_secs(3),
        ..EtcdConfig::new(cluster.endpoints(), "/hub")
    })
    .await
    .expect("connect");
    let watchers = || cluster.watchers(0).expect("etcd's watcher count");
    let base = watchers();
    assert!(base >= 1, "the hub's own etcd watch");

    // Twenty watches of twenty prefixes, each seeing only its own write.
    let from = store.revision().await.unwrap();
    let mut watches = Vec::new();
    for n in 0..20 {
        watches.push(store.watch(&format!("/w/{n:02}/"), from).await.unwrap());
    }
    for n in 0..20 {
        let value = Bytes::from(format!("value {n}"));
        store.create(&format!("/w/{n:02}/k"), value).await.unwrap();
    }
    for (n, watch) in watches.iter_mut().enumerate() {
        let event = next_event(watch).await;
        assert_eq!(event.kv.key, format!("/w/{n:02}/k"));
        assert_eq!(event.kv.value, format!("value {n}"));
    }
    assert_eq!(watchers(), base, "no etcd watch besides the hub's");

    // Twenty writes are more than the history's window of 16: a watch from before them has
    // its own etcd watch, and sees them all.
    let mut old = store.watch("/w/", from).await.unwrap();
    let mut seen = Vec::new();
    for _ in 0..20 {
        seen.push(next_event(&mut old).await);
    }
    let expected: Vec<String> = (0..20).map(|n| format!("/w/{n:02}/k")).collect();
    assert_eq!(keys(&seen), expected);
    assert_eq!(watchers(), base + 1, "one etcd watch for the old watch");

    // A watch from within the history replays it from the hub.
    let recent = seen[16].revision() - 1;
    let mut replay = store.watch("/w/", recent).await.unwrap();
    let mut replayed = Vec::new();
    for _ in 0..4 {
        replayed.push(next_event(&mut replay).await);
    }
    assert_eq!(keys(&replayed), expected[16..]);
    assert_eq!(watchers(), base + 1, "the replay came from the hub");

    // The member dies: every watch ends with an error.
    cluster.kill(0);
    for (n, mut watch) in watches.into_iter().chain([old, replay]).enumerate() {
        match within("the end of a watch", watch.next()).await {
            Some(Err(error)) => eprintln!("watch {n} ended: {error}"),
            other => panic!("watch {n}: expected its end, got {other:?}"),
        }
    }

    // Back again: a new watch sees a new write.
    cluster.restart(0);
    cluster.wait_healthy(0);
    let mut again = within("a watch after recovery", async {
        loop {
            if let Ok(revision) = store.revision().await {
                if let Ok(watch) = store.watch("/w/", revision).await {
                    break watch;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    store.create("/w/after", Bytes::from("x")).await.unwrap();
    assert_eq!(next_event(&mut again).await.kv.key, "/w/after");
}
