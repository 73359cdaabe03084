//! The store's one error type: every variant names the operation and the key (or, for list,
//! count and watch, the prefix) it was about, so a log line or a Kubernetes `Status` built from
//! it says what failed on what. Backend-specific failures keep their typed source.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// What the store was asked to do when an error happened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Open,
    Revision,
    Get,
    List,
    Count,
    Create,
    Update,
    Delete,
    Watch,
    Compact,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::Revision => "revision",
            Op::Get => "get",
            Op::List => "list",
            Op::Count => "count",
            Op::Create => "create",
            Op::Update => "update",
            Op::Delete => "delete",
            Op::Watch => "watch",
            Op::Compact => "compact",
        })
    }
}

/// A store failure. `key` is the key of a single-key operation and the prefix of list, count
/// and watch; it is empty for whole-store operations (revision, compact).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `create` of a key that exists.
    #[error("{op} {key:?}: the key already exists")]
    AlreadyExists { op: Op, key: String },

    /// `update` or `delete` of a key that does not exist.
    #[error("{op} {key:?}: the key does not exist")]
    NotFound { op: Op, key: String },

    /// Compare-and-swap failed: the key was changed since `expected` was read.
    #[error("{op} {key:?}: expected mod revision {expected}, but the key is at {current}")]
    Conflict {
        op: Op,
        key: String,
        expected: i64,
        current: i64,
    },

    /// The revision asked for is older than the oldest one the store still keeps.
    #[error("{op} {key:?}: revision {requested} is compacted (the store keeps revisions from {compacted_revision} on)")]
    Compacted {
        op: Op,
        key: String,
        requested: i64,
        compacted_revision: i64,
    },

    /// The revision asked for does not exist yet.
    #[error("{op} {key:?}: revision {requested} is newer than the current revision {current}")]
    FutureRevision {
        op: Op,
        key: String,
        requested: i64,
        current: i64,
    },

    /// A negative revision.
    #[error("{op} {key:?}: invalid revision {revision}: revisions are never negative")]
    InvalidRevision { op: Op, key: String, revision: i64 },

    /// A key the store refuses (empty, too long, or containing NUL).
    #[error("{op} {key:?}: invalid key: {reason}")]
    InvalidKey {
        op: Op,
        key: String,
        reason: &'static str,
    },

    /// A value larger than `Limits::max_value_bytes`.
    #[error("{op} {key:?}: the value has {size} bytes, more than the limit of {limit}")]
    ValueTooLarge {
        op: Op,
        key: String,
        size: usize,
        limit: usize,
    },

    /// A watcher that fell too far behind the writers was closed; the client should list
    /// again and watch from the list's revision.
    #[error("{op} {key:?}: the watcher fell more than {window} events behind and was closed at revision {last_revision}")]
    WatchTooSlow {
        op: Op,
        key: String,
        window: usize,
        last_revision: i64,
    },

    /// The store was closed (dropped) while the operation or watch was running.
    #[error("{op} {key:?}: the store is closed")]
    Closed { op: Op, key: String },

    /// Another process holds the data directory.
    #[error("open {path}: the data directory is in use by another process")]
    Locked { path: PathBuf },

    /// A value encrypted at rest could not be encrypted or decrypted (a wrong or lost key,
    /// a damaged value).
    #[error("{op} {key:?}: encryption at rest: {reason}")]
    Encryption { op: Op, key: String, reason: String },

    /// A file-system failure while opening the store.
    #[error("open {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// etcd failed or refused the request.
    #[error("{op} {key:?}: etcd at {endpoints}: {source}")]
    Etcd {
        op: Op,
        key: String,
        /// The cluster's endpoints, comma-separated.
        endpoints: String,
        #[source]
        source: etcd_client::Error,
    },

    /// No etcd member answered in time: the cluster is unreachable or has no quorum.
    #[error("{op} {key:?}: etcd at {endpoints} did not answer within {waited:?} (unreachable, or no quorum)")]
    EtcdUnavailable {
        op: Op,
        key: String,
        endpoints: String,
        waited: Duration,
    },

    /// SQLite failed.
    #[error("{op} {key:?}: sqlite: {source}")]
    Sqlite {
        op: Op,
        key: String,
        #[source]
        source: rusqlite::Error,
    },
}

impl Error {
    /// The operation that failed, where there is one.
    pub fn op(&self) -> Option<Op> {
        match self {
            Error::AlreadyExists { op, .. }
            | Error::NotFound { op, .. }
            | Error::Conflict { op, .. }
            | Error::Compacted { op, .. }
            | Error::FutureRevision { op, .. }
            | Error::InvalidRevision { op, .. }
            | Error::InvalidKey { op, .. }
            | Error::ValueTooLarge { op, .. }
            | Error::WatchTooSlow { op, .. }
            | Error::Closed { op, .. }
            | Error::Etcd { op, .. }
            | Error::EtcdUnavailable { op, .. }
            | Error::Encryption { op, .. }
            | Error::Sqlite { op, .. } => Some(*op),
            Error::Locked { .. } | Error::Io { .. } => Some(Op::Open),
        }
    }

    pub(crate) fn sqlite(op: Op, key: &str) -> impl Fn(rusqlite::Error) -> Error + '_ {
        move |source| Error::Sqlite {
            op,
            key: key.to_owned(),
            source,
        }
    }
}

/// The store's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
