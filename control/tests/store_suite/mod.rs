//! The store's shared test suite: every case is a function generic over a [`Backend`] (how to
//! open a store), so each backend — SQLite now, etcd next — runs exactly the same cases. A
//! backend's test file implements [`Backend`] and expands [`store_cases!`], which makes one
//! `#[tokio::test]` per case.
//!
//! Cases compare revisions relatively (later is greater), never to absolute numbers, so a
//! backend whose revision counter is shared (one etcd cluster, one key prefix per case) passes
//! too. Every wait is bounded and waits for something to happen, never for time to pass.

#![allow(dead_code)] // Each backend's test crate may leave helpers unused.

pub mod basics;
pub mod history;
pub mod list;
pub mod watch;

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bosun_control::store::{
    Deleted, Event, EventKind, KeyValue, Limits, ListOptions, Store, WatchStream,
};
use bytes::Bytes;

/// How to open the store under test.
pub trait Backend: Send + Sync + 'static {
    /// Opens the store of test case `case` with `limits`. Opening a case again after every
    /// handle to it was dropped reopens the same state; a case never opened starts empty.
    fn open(&self, case: &str, limits: Limits) -> impl Future<Output = Arc<dyn Store>> + Send;
}

/// One `#[tokio::test]` per case of the suite, each opening its stores from `$backend`
/// (an expression evaluated once per test).
macro_rules! store_cases {
    ($backend:expr) => {
        $crate::store_suite::store_cases!(@cases $backend;
            basics::crud_and_revisions,
            basics::compare_and_swap_refuses_stale_revisions,
            basics::concurrent_updaters_with_retry_lose_no_update,
            basics::bad_input_is_refused_with_clear_errors,
            list::prefixes_cover_exactly_their_keys,
            list::list_pages_are_one_snapshot_while_writes_go_on,
            list::limits_and_after_key_page_through_everything,
            watch::watch_events_carry_previous_values,
            watch::watch_replays_history_then_streams_live_writes,
            watch::watch_started_during_writes_has_no_gap_or_duplicate,
            watch::watch_from_a_future_revision_waits_for_it,
            watch::slow_watcher_is_cut_off_and_writers_go_on,
            watch::named_watch_sees_only_its_name_and_is_not_held_up_by_others,
            history::compaction_forgets_history_before_the_revision,
            history::compactor_keeps_the_newest_revisions,
            history::store_reopens_with_the_same_keys_and_revision,
        );
    };
    (@cases $backend:expr; $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                let backend = $backend;
                $crate::store_suite::$module::$case(&backend).await;
            }
        )*
    };
}
pub(crate) use store_cases;

/// The longest any single wait of the suite may take before the case fails.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Awaits `future`, failing the case if it takes longer than [`PATIENCE`].
pub async fn within<T>(what: &str, future: impl Future<Output = T>) -> T {
    match tokio::time::timeout(PATIENCE, future).await {
        Ok(value) => value,
        Err(_) => panic!("waited {PATIENCE:?} for {what}"),
    }
}

pub fn bytes(text: &str) -> Bytes {
    Bytes::copy_from_slice(text.as_bytes())
}

/// The next event of `stream`, failing the case on an error or the end.
pub async fn next_event(stream: &mut WatchStream) -> Event {
    match within("a watch event", stream.next()).await {
        Some(Ok(event)) => event,
        other => panic!("expected a watch event, got {other:?}"),
    }
}

/// The next `count` events of `stream`.
pub async fn next_events(stream: &mut WatchStream, count: usize) -> Vec<Event> {
    let mut events = Vec::with_capacity(count);
    for _ in 0..count {
        events.push(next_event(stream).await);
    }
    events
}

/// Writes through the store while recording, as watch events, what each write did and the
/// live state it leaves, so cases can compare watches and lists with what really happened.
pub struct Scribe {
    pub store: Arc<dyn Store>,
    pub prefix: String,
    pub live: BTreeMap<String, KeyValue>,
    pub events: Vec<Event>,
    created: usize,
}

impl Scribe {
    pub fn new(store: Arc<dyn Store>, prefix: &str) -> Scribe {
        Scribe {
            store,
            prefix: prefix.to_owned(),
            live: BTreeMap::new(),
            events: Vec::new(),
            created: 0,
        }
    }

    pub async fn create(&mut self, name: &str, value: &str) -> KeyValue {
        let key = format!("{}{name}", self.prefix);
        let kv = self.store.create(&key, bytes(value)).await.expect("create");
        self.events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: None,
        });
        self.live.insert(key, kv.clone());
        kv
    }

    pub async fn update(&mut self, key: &str, value: &str) -> KeyValue {
        let prev = self.live[key].clone();
        let kv = self
            .store
            .update(key, bytes(value), prev.mod_revision)
            .await
            .expect("update");
        self.events.push(Event {
            kind: EventKind::Put,
            kv: kv.clone(),
            prev: Some(prev),
        });
        self.live.insert(key.to_owned(), kv.clone());
        kv
    }

    pub async fn delete(&mut self, key: &str) -> Deleted {
        let prev = self.live[key].clone();
        let deleted = self
            .store
            .delete(key, Some(prev.mod_revision))
            .await
            .expect("delete");
        assert_eq!(deleted.prev, prev, "delete answers the last value");
        self.events.push(delete_event(&deleted));
        self.live.remove(key);
        deleted
    }

    /// `count` writes mixing creates, updates and deletes, always the same for one `seed`.
    pub async fn churn(&mut self, count: usize, seed: usize) {
        for step in seed..seed + count {
            let keys: Vec<String> = self.live.keys().cloned().collect();
            match step % 4 {
                _ if keys.len() < 3 => self.create_next().await,
                0 => self.create_next().await,
                1 | 2 => {
                    let key = &keys[(step * 7) % keys.len()];
                    self.update(key, &format!("v{step}")).await;
                }
                _ => {
                    self.delete(&keys[(step * 3) % keys.len()]).await;
                }
            }
        }
    }

    async fn create_next(&mut self) {
        self.created += 1;
        let name = format!("k{:05}", self.created);
        self.create(&name, &format!("c{}", self.created)).await;
    }

    /// The recorded events with a revision after `after`.
    pub fn events_after(&self, after: i64) -> Vec<Event> {
        self.events
            .iter()
            .filter(|event| event.revision() > after)
            .cloned()
            .collect()
    }
}

/// The watch event a delete produces.
pub fn delete_event(deleted: &Deleted) -> Event {
    Event {
        kind: EventKind::Delete,
        kv: KeyValue {
            mod_revision: deleted.revision,
            ..deleted.prev.clone()
        },
        prev: Some(deleted.prev.clone()),
    }
}

/// The live keys after applying `events` (in order) up to and including `revision`.
pub fn state_at(events: &[Event], revision: i64) -> BTreeMap<String, KeyValue> {
    let mut state = BTreeMap::new();
    for event in events.iter().filter(|event| event.revision() <= revision) {
        match event.kind {
            EventKind::Put => state.insert(event.kv.key.clone(), event.kv.clone()),
            EventKind::Delete => state.remove(&event.kv.key),
        };
    }
    state
}

/// Every page of a list of `prefix` with pages of `limit`, at one revision; returns the items
/// and that revision, checking every page reports it.
pub async fn list_all(store: &dyn Store, prefix: &str, limit: usize) -> (Vec<KeyValue>, i64) {
    let mut options = ListOptions {
        limit,
        ..ListOptions::default()
    };
    let mut items = Vec::new();
    let mut revision = None;
    loop {
        let page = store.list(prefix, &options).await.expect("list");
        assert_eq!(*revision.get_or_insert(page.revision), page.revision);
        assert!(limit == 0 || page.items.len() <= limit);
        items.extend(page.items.iter().cloned());
        if !page.more {
            return (items, page.revision);
        }
        options.after_key = page.items.last().map(|kv| kv.key.clone());
        options.revision = Some(page.revision);
    }
}
