//! Reads on the SQLite backend: a small pool of read-only connections used from tokio's
//! blocking threads, so reads run concurrently with each other and with the writer (WAL) and
//! never block the async runtime. Each read that needs more than one query runs in one read
//! transaction, i.e. one snapshot of the table.
//!
//! At most [`MAX_READERS`] reads run at once; the others wait their turn without a thread.
//! Unbounded, a burst of a thousand requests opened hundreds of connections, each filling a
//! page cache of its own (the cluster bench's control process reached 1.5 GB).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{params, Connection, OpenFlags};
use tokio::sync::Semaphore;

use super::schema::{self, Bounds, Revision};
use crate::store::{Error, Event, KeyValue, ListPage, Op, Result};

/// Reads running at once, each on its own connection, all kept open when idle: more gains
/// nothing on a machine of a few cores (a read is CPU and page-cache work).
const MAX_READERS: usize = 8;

/// Read-only connections to the store's file.
#[derive(Debug)]
pub(super) struct ReadPool {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    turns: Arc<Semaphore>,
}

impl ReadPool {
    pub fn new(path: PathBuf) -> ReadPool {
        ReadPool {
            path,
            idle: Mutex::new(Vec::new()),
            turns: Arc::new(Semaphore::new(MAX_READERS)),
        }
    }

    fn take(&self) -> rusqlite::Result<Connection> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        if let Some(conn) = idle {
            return Ok(conn);
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(&self.path, flags)?;
        conn.busy_timeout(std::time::Duration::from_secs(30))?;
        Ok(conn)
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(PoisonError::into_inner);
        if idle.len() < MAX_READERS {
            idle.push(conn);
        }
    }

    /// Runs `read` on a pooled connection on a blocking thread.
    async fn run<T, F>(self: &Arc<Self>, op: Op, key: &str, read: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let pool = Arc::clone(self);
        let owned_key = key.to_owned();
        let Ok(turn) = Arc::clone(&self.turns).acquire_owned().await else {
            return Err(Error::Closed { op, key: owned_key });
        };
        let task = tokio::task::spawn_blocking(move || {
            let conn = pool.take().map_err(Error::sqlite(op, &owned_key))?;
            let result = read(&conn);
            pool.put(conn);
            drop(turn);
            result
        });
        match task.await {
            Ok(result) => result,
            Err(join) if join.is_panic() => std::panic::resume_unwind(join.into_panic()),
            Err(_) => Err(Error::Closed {
                op,
                key: key.to_owned(),
            }),
        }
    }

    /// The newest live value of `key`.
    pub async fn get(self: &Arc<Self>, key: &str) -> Result<Option<KeyValue>> {
        let owned = key.to_owned();
        self.run(Op::Get, key, move |conn| {
            let latest = latest(conn, &owned).map_err(Error::sqlite(Op::Get, &owned))?;
            Ok(latest
                .filter(|row| !row.deleted)
                .map(Revision::into_key_value))
        })
        .await
    }

    /// One page of the live keys in `bounds` after `after_key`, at `revision` (or the newest).
    pub async fn list(
        self: &Arc<Self>,
        prefix: &str,
        after_key: Option<String>,
        limit: usize,
        revision: Option<i64>,
    ) -> Result<ListPage> {
        let prefix = prefix.to_owned();
        let key = prefix.clone();
        self.run(Op::List, &key, move |conn| {
            let sqlite = Error::sqlite(Op::List, &prefix);
            list(conn, &prefix, after_key, limit, revision).map_err(|error| match error {
                ListError::Sqlite(source) => sqlite(source),
                ListError::Store(error) => error,
            })
        })
        .await
    }

    /// How many live keys are in `bounds` now.
    pub async fn count(self: &Arc<Self>, prefix: &str) -> Result<u64> {
        let bounds = Bounds::of_prefix(prefix);
        let owned = prefix.to_owned();
        self.run(Op::Count, prefix, move |conn| {
            let count: i64 = conn
                .prepare_cached(schema::COUNT)
                .and_then(|mut stmt| {
                    stmt.query_row(params![bounds.start, bounds.end], |row| row.get(0))
                })
                .map_err(Error::sqlite(Op::Count, &owned))?;
            Ok(u64::try_from(count).unwrap_or(0))
        })
        .await
    }

    /// The events of keys in `bounds` with revisions in `(after, upto]`, oldest first: at most
    /// `page` of them and, past the first, at most `page_bytes` of values; `Error::Compacted`
    /// if part of that range is compacted. The flag tells whether the range is exhausted.
    pub async fn events(
        self: &Arc<Self>,
        prefix: &str,
        bounds: Bounds,
        range: (i64, i64),
        page: usize,
        page_bytes: usize,
    ) -> Result<(Vec<Event>, bool)> {
        let (after, upto) = range;
        let owned = prefix.to_owned();
        self.run(Op::Watch, prefix, move |conn| {
            let sqlite = Error::sqlite(Op::Watch, &owned);
            let tx = conn.unchecked_transaction().map_err(&sqlite)?;
            let compacted =
                schema::read_revision(&tx, schema::COMPACTED_REVISION).map_err(&sqlite)?;
            if after < compacted {
                return Err(Error::Compacted {
                    op: Op::Watch,
                    key: owned.clone(),
                    requested: after,
                    compacted_revision: compacted,
                });
            }
            let mut stmt = tx.prepare_cached(schema::EVENTS).map_err(&sqlite)?;
            let mut rows = stmt
                .query(params![bounds.start, bounds.end, after, upto])
                .map_err(&sqlite)?;
            let mut events = Vec::new();
            let mut bytes = 0;
            while events.len() < page && (events.is_empty() || bytes < page_bytes) {
                let Some(row) = rows.next().map_err(&sqlite)? else {
                    return Ok((events, true));
                };
                let row = Revision::from_row(row).map_err(&sqlite)?;
                bytes += row.value.as_ref().map_or(0, Vec::len)
                    + row.old_value.as_ref().map_or(0, Vec::len);
                events.push(row.into_event());
            }
            Ok((events, false))
        })
        .await
    }
}

/// The newest row of `key`, live or a tombstone.
pub(super) fn latest(conn: &Connection, key: &str) -> rusqlite::Result<Option<Revision>> {
    use rusqlite::OptionalExtension;
    conn.prepare_cached(schema::LATEST)?
        .query_row([key], Revision::from_row)
        .optional()
}

enum ListError {
    Sqlite(rusqlite::Error),
    Store(Error),
}

impl From<rusqlite::Error> for ListError {
    fn from(error: rusqlite::Error) -> Self {
        ListError::Sqlite(error)
    }
}

fn list(
    conn: &Connection,
    prefix: &str,
    after_key: Option<String>,
    limit: usize,
    revision: Option<i64>,
) -> Result<ListPage, ListError> {
    let tx = conn.unchecked_transaction()?;
    let current = schema::read_revision(&tx, schema::CURRENT_REVISION)?;
    let compacted = schema::read_revision(&tx, schema::COMPACTED_REVISION)?;
    let revision = revision.unwrap_or(current);
    if revision > current {
        return Err(ListError::Store(Error::FutureRevision {
            op: Op::List,
            key: prefix.to_owned(),
            requested: revision,
            current,
        }));
    }
    if revision < compacted {
        return Err(ListError::Store(Error::Compacted {
            op: Op::List,
            key: prefix.to_owned(),
            requested: revision,
            compacted_revision: compacted,
        }));
    }
    let bounds = Bounds::of_prefix(prefix);
    // One more than asked tells whether more follow; SQLite's LIMIT -1 is no limit.
    let fetch = match limit {
        0 => -1,
        n => i64::try_from(n).unwrap_or(i64::MAX - 1) + 1,
    };
    let mut stmt = tx.prepare_cached(schema::LIST)?;
    let mut items = stmt
        .query_map(
            params![
                bounds.start,
                bounds.end,
                after_key.unwrap_or_default(),
                revision,
                fetch
            ],
            Revision::from_row,
        )?
        .map(|row| row.map(Revision::into_key_value))
        .collect::<rusqlite::Result<Vec<_>>>()?;
    let more = limit != 0 && items.len() > limit;
    items.truncate(if limit == 0 { items.len() } else { limit });
    Ok(ListPage {
        items,
        revision,
        more,
    })
}
