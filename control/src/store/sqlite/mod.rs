//! The embedded backend: one SQLite file, `<data-dir>/state.db`, in WAL mode, with kine's
//! append-only layout ([`schema`]). One writer thread serialises and group-commits the writes
//! ([`writer`]); reads run concurrently on a pool of read-only connections on tokio's blocking
//! threads ([`reader`]); watches replay the table and then follow the writer's in-process
//! broadcast ([`hub`]). No SQLite call ever runs on an async runtime thread.
//!
//! One process owns a data directory at a time (an exclusive lock on `<data-dir>/state.lock`).
//! Dropping the store waits for the writer to finish the batch it is committing.

mod hub;
mod reader;
mod schema;
mod writer;

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;

use async_trait::async_trait;
use bytes::Bytes;
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::input::check_revision;
use super::watch_keys::WatchKeys;
use super::{
    Deleted, Error, KeyValue, Limits, ListOptions, ListPage, Op, Result, Store, WatchStream,
};
use hub::{Hub, HubWatch, Phase};
use reader::ReadPool;
use schema::Bounds;
use writer::{Command, WriteOp, Writer, Written};

/// How durable a commit is before the write returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Synchronous {
    /// fsync at every commit (etcd's and kine's behaviour): a power loss loses nothing that
    /// was acknowledged.
    #[default]
    Full,
    /// fsync only at WAL checkpoints: a process crash loses nothing, a power loss may lose
    /// the last commits (never corrupts).
    Normal,
}

/// Configuration of the embedded store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// The directory holding `state.db` (created if missing).
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub synchronous: Synchronous,
    /// Most writes committed in one transaction.
    pub max_write_batch: usize,
}

impl SqliteConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> SqliteConfig {
        SqliteConfig {
            data_dir: data_dir.into(),
            limits: Limits::default(),
            synchronous: Synchronous::default(),
            max_write_batch: 256,
        }
    }
}

/// The embedded store.
#[derive(Debug)]
pub struct SqliteStore {
    commands: Option<mpsc::Sender<Command>>,
    writer: Option<JoinHandle<()>>,
    reader: Arc<ReadPool>,
    hub: Arc<Hub>,
    limits: Limits,
}

impl SqliteStore {
    /// Opens (creating if needed) the store in `config.data_dir`. Blocking: call it at start-up
    /// or from a blocking thread.
    pub fn open(config: SqliteConfig) -> Result<SqliteStore> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir).map_err(|source| Error::Io {
            path: dir.clone(),
            source,
        })?;
        let lock = lock_data_dir(&dir.join("state.lock"))?;
        let path = dir.join("state.db");
        let path_text = path.display().to_string();
        let sqlite = Error::sqlite(Op::Open, &path_text);
        let conn = Connection::open(&path).map_err(&sqlite)?;
        let synchronous = match config.synchronous {
            Synchronous::Full => "FULL",
            Synchronous::Normal => "NORMAL",
        };
        schema::configure(&conn, synchronous).map_err(&sqlite)?;
        conn.execute_batch(schema::CREATE).map_err(&sqlite)?;
        let revision = schema::read_revision(&conn, schema::CURRENT_REVISION).map_err(&sqlite)?;
        let compacted =
            schema::read_revision(&conn, schema::COMPACTED_REVISION).map_err(&sqlite)?;

        let hub = Arc::new(Hub::new(revision, compacted, config.limits.watch_window));
        let writer = Writer {
            conn,
            hub: Arc::clone(&hub),
            revision,
            compacted,
            max_batch: config.max_write_batch.max(1),
            lock,
        };
        let (commands, queue) = mpsc::channel();
        let writer = std::thread::Builder::new()
            .name("bosun-store-writer".into())
            .spawn(move || writer.run(queue))
            .map_err(|source| Error::Io {
                path: path.clone(),
                source,
            })?;
        Ok(SqliteStore {
            commands: Some(commands),
            writer: Some(writer),
            reader: Arc::new(ReadPool::new(path)),
            hub,
            limits: config.limits,
        })
    }

    async fn write(&self, op: WriteOp) -> Result<Written> {
        let (what, key) = match &op {
            WriteOp::Create { key, .. } => (Op::Create, key.clone()),
            WriteOp::Update { key, .. } => (Op::Update, key.clone()),
            WriteOp::Delete { key, .. } => (Op::Delete, key.clone()),
        };
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::Write(op, reply)).is_ok());
        if !sent {
            return Err(Error::Closed { op: what, key });
        }
        answer.await.unwrap_or(Err(Error::Closed { op: what, key }))
    }

    async fn compact_step(&self, target: i64) -> Result<i64> {
        let closed = || Error::Closed {
            op: Op::Compact,
            key: String::new(),
        };
        let (reply, answer) = oneshot::channel();
        let sent = self
            .commands
            .as_ref()
            .is_some_and(|commands| commands.send(Command::CompactStep(target, reply)).is_ok());
        if !sent {
            return Err(closed());
        }
        answer.await.unwrap_or_else(|_| Err(closed()))
    }
}

fn lock_data_dir(path: &Path) -> Result<Flock<File>> {
    let io = |source| Error::Io {
        path: path.to_owned(),
        source,
    };
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(io)?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        Errno::EWOULDBLOCK => Error::Locked {
            path: path.to_owned(),
        },
        other => io(std::io::Error::from(other)),
    })
}

impl Drop for SqliteStore {
    fn drop(&mut self) {
        // The writer ends when its queue closes; wait so the data directory is free again.
        drop(self.commands.take());
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl SqliteStore {
    /// A watch of `keys`: the table's events after `after_revision`, then the hub's.
    fn watch_keys(&self, keys: WatchKeys, after_revision: i64) -> Result<WatchStream> {
        let prefix = keys.prefix.as_str();
        self.limits.check_prefix(Op::Watch, prefix)?;
        check_revision(Op::Watch, prefix, after_revision)?;
        let (subscription, published) = self.hub.subscribe(&keys);
        let compacted = self.hub.compacted();
        if after_revision < compacted {
            return Err(Error::Compacted {
                op: Op::Watch,
                key: prefix.to_owned(),
                requested: after_revision,
                compacted_revision: compacted,
            });
        }
        Ok(WatchStream::direct(HubWatch {
            bounds: Bounds::of_prefix(prefix),
            keys: keys.clone(),
            cursor: after_revision,
            window: self.limits.watch_window,
            reader: Arc::clone(&self.reader),
            hub: Arc::downgrade(&self.hub),
            phase: Phase::replay(subscription, after_revision, published),
        }))
    }
}

#[async_trait]
impl Store for SqliteStore {
    fn limits(&self) -> &Limits {
        &self.limits
    }

    async fn revision(&self) -> Result<i64> {
        Ok(self.hub.revision())
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.limits.check_key(Op::Get, key)?;
        self.reader.get(key).await
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        self.limits.check_prefix(Op::List, prefix)?;
        if let Some(revision) = options.revision {
            check_revision(Op::List, prefix, revision)?;
        }
        self.reader
            .list(
                prefix,
                options.after_key.clone(),
                options.limit,
                options.revision,
            )
            .await
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.limits.check_prefix(Op::Count, prefix)?;
        self.reader.count(prefix).await
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.limits.check_write(Op::Create, key, &value)?;
        let key = key.to_owned();
        match self.write(WriteOp::Create { key, value }).await? {
            Written::Put(kv) => Ok(kv),
            Written::Deleted(_) => unreachable!("a create answers with a put"),
        }
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        self.limits.check_write(Op::Update, key, &value)?;
        let key = key.to_owned();
        let expected = expected_mod_revision;
        match self
            .write(WriteOp::Update {
                key,
                value,
                expected,
            })
            .await?
        {
            Written::Put(kv) => Ok(kv),
            Written::Deleted(_) => unreachable!("an update answers with a put"),
        }
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<Deleted> {
        self.limits.check_key(Op::Delete, key)?;
        let key = key.to_owned();
        let expected = expected_mod_revision;
        match self.write(WriteOp::Delete { key, expected }).await? {
            Written::Deleted(deleted) => Ok(deleted),
            Written::Put(_) => unreachable!("a delete answers with a delete"),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        self.watch_keys(WatchKeys::under(prefix), after_revision)
    }

    async fn watch_named(
        &self,
        prefix: &str,
        name: &str,
        after_revision: i64,
    ) -> Result<WatchStream> {
        self.watch_keys(WatchKeys::named(prefix, name), after_revision)
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        check_revision(Op::Compact, "", revision)?;
        loop {
            let compacted = self.compact_step(revision).await?;
            if compacted >= revision {
                return Ok(compacted);
            }
            // Other writes get their turn between steps.
        }
    }
}
