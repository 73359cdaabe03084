//! The shared store suite against the embedded SQLite backend, plus what only this backend
//! has: its data directory lock, and watches ending when the store is dropped.

mod store_suite;

use std::sync::Arc;

use bosun_control::store::{Error, Limits, SqliteConfig, SqliteStore, Store};
use tempfile::TempDir;

use store_suite::Backend;

/// Each case's store lives in its own directory under one temporary directory.
struct Sqlite {
    root: TempDir,
}

fn sqlite() -> Sqlite {
    Sqlite {
        root: tempfile::tempdir().expect("a temporary directory"),
    }
}

impl Sqlite {
    fn config(&self, case: &str, limits: Limits) -> SqliteConfig {
        SqliteConfig {
            limits,
            ..SqliteConfig::new(self.root.path().join(case))
        }
    }
}

impl Backend for Sqlite {
    async fn open(&self, case: &str, limits: Limits) -> Arc<dyn Store> {
        let config = self.config(case, limits);
        let store = tokio::task::spawn_blocking(move || SqliteStore::open(config))
            .await
            .expect("open")
            .expect("open the store");
        Arc::new(store)
    }
}

store_suite::store_cases!(sqlite());

#[tokio::test]
async fn one_store_per_data_directory() {
    let backend = sqlite();
    let first = backend.open("locked", Limits::default()).await;
    let second = SqliteStore::open(backend.config("locked", Limits::default()));
    match second {
        Err(error @ Error::Locked { .. }) => {
            assert!(error.to_string().contains("state.lock"), "{error}")
        }
        other => panic!("a second store on one directory: {other:?}"),
    }
    drop(first);
    // Dropping the first frees the directory at once.
    SqliteStore::open(backend.config("locked", Limits::default())).expect("reopen");
    assert!(backend.root.path().join("locked/state.db").exists());
}

#[tokio::test]
async fn watches_end_with_closed_when_the_store_is_dropped() {
    let backend = sqlite();
    let store = backend.open("closing", Limits::default()).await;
    let kv = store
        .create("/registry/pods/a", store_suite::bytes("1"))
        .await
        .unwrap();
    let mut watch = store.watch("/registry/pods/", 0).await.unwrap();
    assert_eq!(store_suite::next_event(&mut watch).await.kv, kv);
    drop(store);
    match store_suite::within("the end of the watch", watch.next()).await {
        Some(Err(Error::Closed { .. })) => {}
        other => panic!("expected Closed, got {other:?}"),
    }
}

/// A watcher still replaying history is never "too slow": when the live window overflows
/// while it replays, it replays again from the table and then goes live, losing nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_watch_replaying_history_survives_an_overflowing_window() {
    let limits = Limits {
        watch_buffer: 4,
        watch_window: 16,
        ..Limits::default()
    };
    let backend = sqlite();
    let store = backend.open("replay-overflow", limits).await;
    let prefix = "/registry/pods/";
    let mut scribe = store_suite::Scribe::new(Arc::clone(&store), prefix);
    let start = store.revision().await.unwrap();
    scribe.churn(50, 0).await;
    // The feeder blocks in its replay (50 events, 4 buffered) while 200 more writes overflow
    // the live window many times over.
    let mut watch = store.watch(prefix, start).await.unwrap();
    scribe.churn(200, 50).await;
    let all = store_suite::next_events(&mut watch, 250).await;
    assert_eq!(all, scribe.events);
    scribe.create("marker", "end").await;
    assert_eq!(
        store_suite::next_event(&mut watch).await,
        *scribe.events.last().unwrap()
    );
}
