//! The store: etcd's data model behind one small trait, [`Store`], with an embedded SQLite
//! backend ([`SqliteStore`], the default) and an etcd v3 one ([`EtcdStore`]) — the same semantics on both,
//! checked by one shared test suite (`control/tests/store_suite`).
//!
//! The model: keys are strings, values are bytes. Every successful write (create, update,
//! delete) gets the next global revision. A key carries the revision that created it
//! (`create_revision`) and the one that last changed it (`mod_revision`); updates and deletes
//! compare-and-swap on `mod_revision`. Lists read a consistent snapshot at one revision, so
//! every page of a paginated list sees the same state. Watches deliver every change after a
//! revision, in revision order, without gaps or duplicates. Compaction forgets history older
//! than a revision; asking for it afterwards gives [`Error::Compacted`].
//!
//! The store knows nothing of Kubernetes: the API layer chooses the keys
//! (`/registry/<group>/<plural>/<namespace>/<name>`, see `kinds`) and encodes the values.

mod choice;
mod compactor;
mod encrypted;
mod error;
pub mod etcd;
mod fanout;
mod input;
pub mod sqlite;
mod timed;
mod watch_keys;
mod watch_stream;

use async_trait::async_trait;
use bytes::Bytes;

pub use choice::StoreArgs;
pub use compactor::{Compactor, CompactorConfig};
pub use encrypted::{EncryptedStore, EncryptionKey};
pub use error::{Error, Op, Result};
pub use etcd::{EtcdConfig, EtcdStore};
pub use input::{prefix_end, Limits};
pub use sqlite::{SqliteConfig, SqliteStore, Synchronous};
pub use timed::{storage_metrics, StorageMetrics, TimedStore};
use watch_keys::WatchKeys;
pub use watch_stream::WatchStream;

/// One key's value at one revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyValue {
    pub key: String,
    pub value: Bytes,
    /// The revision of the write that created the key (a delete and a create start anew).
    pub create_revision: i64,
    /// The revision of the write that last changed the key.
    pub mod_revision: i64,
}

/// What `list` asks for beyond the prefix.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListOptions {
    /// Only keys after this one (the last key of the previous page).
    pub after_key: Option<String>,
    /// At most this many items; 0 means no limit.
    pub limit: usize,
    /// Read the state at this revision (the first page's revision, for the next pages);
    /// `None` reads the newest state.
    pub revision: Option<i64>,
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListPage {
    /// Keys in byte order, each with its value at `revision`.
    pub items: Vec<KeyValue>,
    /// The revision the page was read at: pass it as `ListOptions::revision` for the next
    /// pages, and to `watch` to follow changes after the list.
    pub revision: i64,
    /// More keys follow the last item.
    pub more: bool,
}

/// The result of a delete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Deleted {
    /// The key's value just before the delete.
    pub prev: KeyValue,
    /// The revision of the delete.
    pub revision: i64,
}

/// What a watch event did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// The key was created or updated.
    Put,
    /// The key was deleted.
    Delete,
}

/// One change seen by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    pub kind: EventKind,
    /// `Put`: the new value. `Delete`: the key's last value, with `mod_revision` set to the
    /// revision of the delete (what a Kubernetes DELETED event carries).
    pub kv: KeyValue,
    /// The value before this change: `None` for a `Put` that created the key.
    pub prev: Option<KeyValue>,
}

impl Event {
    /// The revision of the change.
    pub fn revision(&self) -> i64 {
        self.kv.mod_revision
    }

    /// A `Put` creating `key` (value `v`) at `revision`, for unit tests.
    #[cfg(test)]
    pub(crate) fn created(key: &str, revision: i64) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_owned(),
                value: Bytes::from_static(b"v"),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }
}

/// One member a store stands on, as `kubectl get componentstatuses` lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MemberHealth {
    /// `etcd-0`, `etcd-1`, … (kube-apiserver's names, by `--etcd-endpoints` order), or
    /// `embedded-store`.
    pub name: String,
    /// Why it does not answer; `None` when it does.
    pub error: Option<String>,
}

/// A key-value store with etcd's model. Cheap to share as `Arc<dyn Store>`; every method may
/// be called from any tokio runtime concurrently. Backends never block the calling runtime's
/// threads.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// The limits this store enforces.
    fn limits(&self) -> &Limits;

    /// The newest revision (0 for a store that was never written).
    async fn revision(&self) -> Result<i64>;

    /// The newest value of `key`, or `None` if it does not exist.
    async fn get(&self, key: &str) -> Result<Option<KeyValue>>;

    /// The keys starting with `prefix` (empty: every key), in byte order, at one revision.
    /// `Error::Compacted` if `options.revision` is compacted, `Error::FutureRevision` if it is
    /// newer than the store.
    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage>;

    /// How many keys start with `prefix`, now.
    async fn count(&self, prefix: &str) -> Result<u64>;

    /// Creates `key`; `Error::AlreadyExists` if it exists.
    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue>;

    /// Replaces `key`'s value if its `mod_revision` is still `expected_mod_revision`:
    /// `Error::Conflict` (with the current revision) if not, `Error::NotFound` if the key
    /// does not exist.
    async fn update(&self, key: &str, value: Bytes, expected_mod_revision: i64)
        -> Result<KeyValue>;

    /// Deletes `key`, if given only while its `mod_revision` is `expected_mod_revision`.
    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<Deleted>;

    /// Every change to keys starting with `prefix` with a revision after `after_revision`,
    /// first the past ones, then live ones as they are committed. `Error::Compacted` if
    /// `after_revision` is older than the compacted revision. A future `after_revision` is
    /// fine: the watch waits for it.
    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream>;

    /// [`Store::watch`] of only the keys under `prefix` whose last segment is `name`: the
    /// objects named `name` in every namespace. The backends' hubs then wake the watch for
    /// those keys alone; this default takes the prefix's events and skips the others.
    async fn watch_named(
        &self,
        prefix: &str,
        name: &str,
        after_revision: i64,
    ) -> Result<WatchStream> {
        let keys = WatchKeys::named(prefix, name);
        let events = self.watch(prefix, after_revision).await?;
        Ok(events.filter_events(move |event| keys.contains(&event.kv.key)))
    }

    /// Forgets the history before `revision` (the state at `revision` stays readable).
    /// Compacting at or below the current compacted revision does nothing. Returns the
    /// compacted revision after the call.
    async fn compact(&self, revision: i64) -> Result<i64>;

    /// The members this store stands on and whether each answers. By default the store is
    /// its own one member (`embedded-store`), healthy when it reads its revision.
    async fn members_health(&self) -> Vec<MemberHealth> {
        vec![MemberHealth {
            name: "embedded-store".to_owned(),
            error: self.revision().await.err().map(|e| e.to_string()),
        }]
    }
}
