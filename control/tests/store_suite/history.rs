//! History: compaction (by hand and by the background compactor), and reopening a store.

use std::sync::Arc;
use std::time::Duration;

use bosun_control::store::{Compactor, CompactorConfig, Error, Limits, ListOptions, Op, Store};

use super::{list_all, next_events, state_at, within, Backend, Scribe};

fn at(revision: i64) -> ListOptions {
    ListOptions {
        revision: Some(revision),
        ..ListOptions::default()
    }
}

async fn keys_at(store: &dyn Store, prefix: &str, revision: i64) -> Vec<(String, String)> {
    let page = store.list(prefix, &at(revision)).await.unwrap();
    assert_eq!(page.revision, revision);
    page.items
        .into_iter()
        .map(|kv| (kv.key, String::from_utf8(kv.value.to_vec()).unwrap()))
        .collect()
}

fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
    items
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

pub async fn compaction_forgets_history_before_the_revision(backend: &impl Backend) {
    let store = backend.open("compaction", Limits::default()).await;
    let prefix = "/registry/secrets/ns/";
    let (k, j, l) = (
        "/registry/secrets/ns/k",
        "/registry/secrets/ns/j",
        "/registry/secrets/ns/l",
    );
    let mut scribe = Scribe::new(Arc::clone(&store), prefix);
    let r1 = scribe.create("k", "1").await.mod_revision;
    let r2 = scribe.update(k, "2").await.mod_revision;
    let r3 = scribe.update(k, "3").await.mod_revision;
    scribe.create("j", "j").await;
    let r5 = scribe.delete(j).await.revision;
    let r6 = scribe.create("l", "l").await.mod_revision;

    assert_eq!(store.compact(r3).await.unwrap(), r3);
    match store.list(prefix, &at(r2)).await {
        Err(Error::Compacted {
            op: Op::List,
            requested,
            compacted_revision,
            ..
        }) => assert_eq!((requested, compacted_revision), (r2, r3)),
        other => panic!("list at a compacted revision: {other:?}"),
    }
    assert_eq!(keys_at(&*store, prefix, r3).await, pairs(&[(k, "3")]));
    assert_eq!(keys_at(&*store, prefix, r5).await, pairs(&[(k, "3")]));
    assert_eq!(
        keys_at(&*store, prefix, r6).await,
        pairs(&[(k, "3"), (l, "l")])
    );
    match store.watch(prefix, r2).await {
        Err(Error::Compacted {
            op: Op::Watch,
            compacted_revision,
            ..
        }) => assert_eq!(compacted_revision, r3),
        other => panic!("watch from a compacted revision: {other:?}"),
    }
    let mut watch = store.watch(prefix, r3).await.unwrap();
    let expected = scribe.events_after(r3);
    assert_eq!(next_events(&mut watch, expected.len()).await, expected);

    // Compacting again below the compacted revision changes nothing.
    assert_eq!(store.compact(r1).await.unwrap(), r3);
    assert_eq!(keys_at(&*store, prefix, r3).await, pairs(&[(k, "3")]));

    // Compacting past a delete forgets the deleted key entirely; it can be created anew.
    assert_eq!(store.compact(r6).await.unwrap(), r6);
    assert!(matches!(
        store.list(prefix, &at(r5)).await,
        Err(Error::Compacted { .. })
    ));
    assert_eq!(
        keys_at(&*store, prefix, r6).await,
        pairs(&[(k, "3"), (l, "l")])
    );
    assert_eq!(store.get(j).await.unwrap(), None);
    let j2 = scribe.create("j", "again").await;
    assert_eq!(j2.create_revision, j2.mod_revision);
    assert_eq!(store.count(prefix).await.unwrap(), 3);

    // A paginated list whose revision is compacted between two pages fails, it never mixes.
    let first = store
        .list(
            prefix,
            &ListOptions {
                limit: 1,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(first.more);
    let newer = scribe.update(k, "4").await.mod_revision;
    store.compact(newer).await.unwrap();
    let next = ListOptions {
        after_key: first.items.last().map(|kv| kv.key.clone()),
        limit: 1,
        revision: Some(first.revision),
    };
    assert!(matches!(
        store.list(prefix, &next).await,
        Err(Error::Compacted { .. })
    ));
}

pub async fn compactor_keeps_the_newest_revisions(backend: &impl Backend) {
    const KEEP: i64 = 5;
    let store = backend.open("compactor", Limits::default()).await;
    let compactor = Compactor::spawn(
        Arc::downgrade(&store),
        CompactorConfig {
            keep_revisions: KEEP,
            interval: Duration::from_millis(20),
        },
    );
    let prefix = "/registry/leases/ns/";
    let mut scribe = Scribe::new(Arc::clone(&store), prefix);
    scribe.churn(30, 0).await;
    let newest = store.revision().await.unwrap();

    // Wait for the compactor to catch up with the last write.
    within("the compactor", async {
        while !matches!(
            store.list(prefix, &at(newest - KEEP - 1)).await,
            Err(Error::Compacted { .. })
        ) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    let kept = store.list(prefix, &at(newest - KEEP)).await.unwrap();
    let expected: Vec<_> = state_at(&scribe.events, newest - KEEP)
        .into_values()
        .collect();
    assert_eq!(kept.items, expected);
    drop(compactor);
}

pub async fn store_reopens_with_the_same_keys_and_revision(backend: &impl Backend) {
    let prefix = "/registry/namespaces/";
    let (live, events, compacted, newest) = {
        let store = backend.open("reopen", Limits::default()).await;
        let mut scribe = Scribe::new(Arc::clone(&store), prefix);
        scribe.churn(40, 0).await;
        let compacted = scribe.events[20].revision();
        store.compact(compacted).await.unwrap();
        scribe.churn(10, 40).await;
        let newest = store.revision().await.unwrap();
        (
            scribe.live.clone(),
            scribe.events.clone(),
            compacted,
            newest,
        )
    };

    let store = backend.open("reopen", Limits::default()).await;
    assert_eq!(store.revision().await.unwrap(), newest);
    let (items, revision) = list_all(&*store, prefix, 7).await;
    assert_eq!(revision, newest);
    assert_eq!(items, live.into_values().collect::<Vec<_>>());
    assert!(matches!(
        store.list(prefix, &at(compacted - 1)).await,
        Err(Error::Compacted { .. })
    ));
    let then: Vec<_> = state_at(&events, compacted).into_values().collect();
    assert_eq!(
        store.list(prefix, &at(compacted)).await.unwrap().items,
        then
    );
    let mut watch = store.watch(prefix, compacted).await.unwrap();
    let history: Vec<_> = events
        .iter()
        .filter(|event| event.revision() > compacted)
        .cloned()
        .collect();
    assert_eq!(next_events(&mut watch, history.len()).await, history);

    let kv = store
        .create("/registry/namespaces/after-reopen", super::bytes("x"))
        .await
        .unwrap();
    assert!(kv.mod_revision > newest);
    assert_eq!(next_events(&mut watch, 1).await[0].kv, kv);
}
