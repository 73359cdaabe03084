//! Single-key behaviour: create, get, update, delete and their revisions, compare-and-swap
//! under contention, and refusal of bad input.

use std::collections::BTreeSet;
use std::sync::Arc;

use bosun_control::store::{Error, EventKind, Limits, ListOptions, Op, Store};
use bytes::Bytes;

use super::{bytes, next_events, within, Backend};

pub async fn crud_and_revisions(backend: &impl Backend) {
    let store = backend.open("crud", Limits::default()).await;
    let a = "/registry/configmaps/default/a";
    let b = "/registry/configmaps/default/b";
    let start = store.revision().await.unwrap();
    assert_eq!(store.get(a).await.unwrap(), None);

    let a1 = store.create(a, bytes("one")).await.unwrap();
    assert_eq!(a1.key, a);
    assert_eq!(a1.value, bytes("one"));
    assert!(a1.mod_revision > start);
    assert_eq!(a1.create_revision, a1.mod_revision);
    assert_eq!(store.revision().await.unwrap(), a1.mod_revision);
    assert_eq!(store.get(a).await.unwrap(), Some(a1.clone()));

    let a2 = store
        .update(a, bytes("two"), a1.mod_revision)
        .await
        .unwrap();
    assert!(a2.mod_revision > a1.mod_revision);
    assert_eq!(a2.create_revision, a1.create_revision);
    assert_eq!(store.get(a).await.unwrap(), Some(a2.clone()));

    let b1 = store.create(b, Bytes::new()).await.unwrap();
    assert!(b1.mod_revision > a2.mod_revision);
    assert_eq!(store.get(b).await.unwrap().unwrap().value, Bytes::new());

    match store.create(a, bytes("again")).await {
        Err(error @ Error::AlreadyExists { .. }) => {
            assert_eq!(error.op(), Some(Op::Create));
            assert!(error.to_string().contains(a), "{error}");
        }
        other => panic!("create of an existing key: {other:?}"),
    }
    assert_eq!(store.get(a).await.unwrap(), Some(a2.clone()));

    let deleted = store.delete(a, Some(a2.mod_revision)).await.unwrap();
    assert_eq!(deleted.prev, a2);
    assert!(deleted.revision > b1.mod_revision);
    assert_eq!(store.revision().await.unwrap(), deleted.revision);
    assert_eq!(store.get(a).await.unwrap(), None);
    assert!(matches!(
        store.update(a, bytes("x"), deleted.revision).await,
        Err(Error::NotFound { op: Op::Update, .. })
    ));
    assert!(matches!(
        store.delete(a, None).await,
        Err(Error::NotFound { op: Op::Delete, .. })
    ));

    // A key created again starts a new life.
    let a3 = store.create(a, bytes("three")).await.unwrap();
    assert!(a3.mod_revision > deleted.revision);
    assert_eq!(a3.create_revision, a3.mod_revision);

    let page = store
        .list("/registry/configmaps/", &ListOptions::default())
        .await
        .unwrap();
    assert_eq!(page.items, vec![a3.clone(), b1.clone()]);
    assert_eq!(page.revision, a3.mod_revision);
    assert!(!page.more);
    assert_eq!(store.count("/registry/configmaps/").await.unwrap(), 2);
    assert_eq!(store.count(a).await.unwrap(), 1);
    assert_eq!(store.count("/registry/secrets/").await.unwrap(), 0);

    // An unconditional delete.
    let gone = store.delete(b, None).await.unwrap();
    assert_eq!(gone.prev, b1);
    assert_eq!(store.count("/registry/configmaps/").await.unwrap(), 1);
}

pub async fn compare_and_swap_refuses_stale_revisions(backend: &impl Backend) {
    let store = backend.open("cas", Limits::default()).await;
    let key = "/registry/deployments/default/web";
    let k1 = store.create(key, bytes("1")).await.unwrap();
    let k2 = store
        .update(key, bytes("2"), k1.mod_revision)
        .await
        .unwrap();
    let before = store.revision().await.unwrap();

    match store.update(key, bytes("3"), k1.mod_revision).await {
        Err(Error::Conflict {
            op: Op::Update,
            key: named,
            expected,
            current,
        }) => {
            assert_eq!(named, key);
            assert_eq!(expected, k1.mod_revision);
            assert_eq!(current, k2.mod_revision);
        }
        other => panic!("stale update: {other:?}"),
    }
    match store.delete(key, Some(k1.mod_revision)).await {
        Err(Error::Conflict { op, current, .. }) => {
            assert_eq!(op, Op::Delete);
            assert_eq!(current, k2.mod_revision);
        }
        other => panic!("stale delete: {other:?}"),
    }
    // A future revision is as stale as an old one.
    assert!(matches!(
        store.update(key, bytes("3"), k2.mod_revision + 1000).await,
        Err(Error::Conflict { .. })
    ));
    // Refused writes change nothing, not even the revision.
    assert_eq!(store.get(key).await.unwrap(), Some(k2.clone()));
    assert_eq!(store.revision().await.unwrap(), before);

    let k3 = store
        .update(key, bytes("3"), k2.mod_revision)
        .await
        .unwrap();
    assert_eq!(k3.value, bytes("3"));
}

/// 16 clients increment one counter with read-modify-write and retry on conflict: the counter
/// ends at the number of increments, and the key's history (seen by a watch) is exactly
/// 1, 2, 3, … at strictly increasing revisions — no update was lost or applied twice.
pub async fn concurrent_updaters_with_retry_lose_no_update(backend: &impl Backend) {
    const CLIENTS: usize = 16;
    const INCREMENTS: usize = 10;
    let store = backend.open("contention", Limits::default()).await;
    let key = "/registry/leases/kube-system/counter";
    let start = store.create(key, bytes("0")).await.unwrap();
    let mut watch = store.watch(key, start.mod_revision).await.unwrap();

    let clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { increment(&*store, key, INCREMENTS).await })
        })
        .collect();
    let mut revisions = BTreeSet::new();
    let mut conflicts = 0;
    for client in clients {
        let (mine, retried) = within("the updaters", client).await.unwrap();
        assert!(mine.windows(2).all(|pair| pair[0] < pair[1]));
        conflicts += retried;
        for revision in mine {
            assert!(revisions.insert(revision), "revision {revision} twice");
        }
    }
    let total = CLIENTS * INCREMENTS;
    let last = store.get(key).await.unwrap().unwrap();
    assert_eq!(last.value, bytes(&total.to_string()));
    assert_eq!(revisions.len(), total);
    assert_eq!(revisions.last(), Some(&last.mod_revision));
    eprintln!("{total} increments, {conflicts} conflicts retried");

    let history = next_events(&mut watch, total).await;
    for (n, event) in history.iter().enumerate() {
        assert_eq!(event.kind, EventKind::Put);
        assert_eq!(event.kv.value, bytes(&(n + 1).to_string()));
        let prev = event.prev.as_ref().expect("an update has a previous value");
        assert_eq!(prev.value, bytes(&n.to_string()));
        assert!(revisions.contains(&event.revision()));
    }
    assert!(history
        .windows(2)
        .all(|w| w[0].revision() < w[1].revision()));
}

/// Increments the counter at `key` `times` times; returns the revisions of its successful
/// updates and how many conflicts it retried.
fn refused<T: std::fmt::Debug>(result: Result<T, Error>) -> Error {
    match result {
        Err(error) => error,
        Ok(value) => panic!("accepted: {value:?}"),
    }
}

async fn increment(store: &dyn Store, key: &str, times: usize) -> (Vec<i64>, usize) {
    let mut revisions = Vec::new();
    let mut conflicts = 0;
    for _ in 0..times {
        loop {
            let current = store.get(key).await.unwrap().unwrap();
            let n: usize = std::str::from_utf8(&current.value)
                .unwrap()
                .parse()
                .unwrap();
            let next = bytes(&(n + 1).to_string());
            match store.update(key, next, current.mod_revision).await {
                Ok(kv) => {
                    revisions.push(kv.mod_revision);
                    break;
                }
                Err(Error::Conflict { .. }) => conflicts += 1,
                Err(other) => panic!("update: {other}"),
            }
        }
    }
    (revisions, conflicts)
}

pub async fn bad_input_is_refused_with_clear_errors(backend: &impl Backend) {
    let limits = Limits {
        max_value_bytes: 1024,
        ..Limits::default()
    };
    let store = backend.open("bad-input", limits.clone()).await;
    let key = "/registry/configmaps/default/big";

    let error = refused(store.create("", bytes("x")).await);
    assert!(
        matches!(error, Error::InvalidKey { op: Op::Create, .. }),
        "{error}"
    );
    assert!(error.to_string().contains("empty"), "{error}");
    let error = refused(store.create("/a\0b", bytes("x")).await);
    assert!(matches!(error, Error::InvalidKey { .. }), "{error}");
    let long = format!("/{}", "k".repeat(limits.max_key_bytes));
    assert!(matches!(
        refused(store.create(&long, bytes("x")).await),
        Error::InvalidKey { .. }
    ));
    assert!(matches!(
        refused(store.get("").await),
        Error::InvalidKey { op: Op::Get, .. }
    ));

    let huge = Bytes::from(vec![b'x'; 2048]);
    let error = refused(store.create(key, huge.clone()).await);
    match &error {
        Error::ValueTooLarge {
            op: Op::Create,
            key: named,
            size: 2048,
            limit: 1024,
        } => assert_eq!(named, key),
        other => panic!("huge value: {other:?}"),
    }
    assert!(error.to_string().contains(key), "{error}");
    let at_limit = store
        .create(key, Bytes::from(vec![b'x'; 1024]))
        .await
        .unwrap();
    assert!(matches!(
        refused(store.update(key, huge, at_limit.mod_revision).await),
        Error::ValueTooLarge { op: Op::Update, .. }
    ));

    let current = store.revision().await.unwrap();
    let future = ListOptions {
        revision: Some(current + 10),
        ..ListOptions::default()
    };
    assert!(matches!(
        refused(store.list("/registry/", &future).await),
        Error::FutureRevision { requested, .. } if requested == current + 10
    ));
    let negative = ListOptions {
        revision: Some(-1),
        ..ListOptions::default()
    };
    assert!(matches!(
        refused(store.list("/registry/", &negative).await),
        Error::InvalidRevision { op: Op::List, .. }
    ));
    assert!(matches!(
        refused(store.watch("/registry/", -1).await),
        Error::InvalidRevision { op: Op::Watch, .. }
    ));
    assert!(matches!(
        refused(store.compact(current + 10).await),
        Error::FutureRevision {
            op: Op::Compact,
            ..
        }
    ));

    // The store is unharmed and nothing was written.
    assert_eq!(store.revision().await.unwrap(), current);
    assert_eq!(store.get(key).await.unwrap(), Some(at_limit));
}
