//! The SQLite layout, after kine: one append-only table `kine` where every write is a row and
//! the row id is the global revision; `(name, prev_revision)` is unique, so two writes can
//! never both succeed on the same previous row (compare-and-swap). A row records what the
//! write did (`created`, `deleted`), the key's `create_revision`, the row it replaced
//! (`prev_revision`) and the replaced value (`old_value`), which is all a watch event needs.
//! Deletes store no `value` (the last value is in `old_value`). `lease` is kept for kine's
//! layout and is always 0. The compacted revision lives in the small table `bosun_meta`.
//!
//! This module owns the SQL text shared by the reader and the writer and the mapping from rows
//! to [`KeyValue`]s and [`Event`]s; it runs nothing but the schema setup.

use bytes::Bytes;
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, Row};

use crate::store::{prefix_end, Event, EventKind, KeyValue};

/// Creates the tables and indexes if they are missing.
pub(super) const CREATE: &str = "
CREATE TABLE IF NOT EXISTS kine (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    name TEXT NOT NULL,
    created INTEGER NOT NULL,
    deleted INTEGER NOT NULL,
    create_revision INTEGER NOT NULL,
    prev_revision INTEGER NOT NULL,
    lease INTEGER NOT NULL,
    value BLOB,
    old_value BLOB
);
CREATE INDEX IF NOT EXISTS kine_name_index ON kine (name);
CREATE INDEX IF NOT EXISTS kine_name_id_index ON kine (name, id);
CREATE UNIQUE INDEX IF NOT EXISTS kine_name_prev_revision_uindex ON kine (name, prev_revision);
CREATE TABLE IF NOT EXISTS bosun_meta (
    key TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
";

/// The newest revision ever written: AUTOINCREMENT's counter survives compaction of the rows.
pub(super) const CURRENT_REVISION: &str = "SELECT seq FROM sqlite_sequence WHERE name = 'kine'";

/// The compacted revision.
pub(super) const COMPACTED_REVISION: &str =
    "SELECT value FROM bosun_meta WHERE key = 'compacted_revision'";

pub(super) const SET_COMPACTED_REVISION: &str =
    "INSERT INTO bosun_meta (key, value) VALUES ('compacted_revision', ?1)
     ON CONFLICT (key) DO UPDATE SET value = excluded.value";

/// The newest row of one key (live or a tombstone).
pub(super) const LATEST: &str = "
SELECT id, name, created, deleted, create_revision, prev_revision, value, old_value
FROM kine WHERE name = ?1 ORDER BY id DESC LIMIT 1";

pub(super) const INSERT: &str = "
INSERT INTO kine (id, name, created, deleted, create_revision, prev_revision, lease, value, old_value)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, 0, ?7, ?8)";

/// The live keys in `[?1, ?2)` after `?3` at revision `?4`, in key order, at most `?5`: the
/// rows that are their key's newest at `?4` and not tombstones. SQLite walks the name index in
/// order and stops at the limit, so a page costs its own size, not the whole range's. The
/// bounds are plain comparisons so that the index covers just the range; [`Bounds`] binds
/// them (an open upper end is an empty BLOB, greater than any text).
pub(super) const LIST: &str = "
SELECT kv.id, kv.name, kv.created, kv.deleted, kv.create_revision, kv.prev_revision, kv.value, kv.old_value
FROM kine AS kv
WHERE kv.name >= ?1 AND kv.name < ?2 AND kv.name > ?3 AND kv.id <= ?4
    AND kv.id = (SELECT MAX(newest.id) FROM kine AS newest WHERE newest.name = kv.name AND newest.id <= ?4)
    AND kv.deleted = 0
ORDER BY kv.name
LIMIT ?5";

/// How many live keys are in `[?1, ?2)` now.
pub(super) const COUNT: &str = "
SELECT COUNT(*)
FROM (SELECT MAX(id) AS id FROM kine WHERE name >= ?1 AND name < ?2 GROUP BY name) AS newest
JOIN kine AS kv ON kv.id = newest.id
WHERE kv.deleted = 0";

/// The rows of keys in `[?1, ?2)` with revisions in `(?3, ?4]`, oldest first (read as far
/// as needed).
pub(super) const EVENTS: &str = "
SELECT id, name, created, deleted, create_revision, prev_revision, value, old_value
FROM kine
WHERE id > ?3 AND id <= ?4 AND name >= ?1 AND name < ?2
ORDER BY id";

/// Compaction of the revisions `(?1, ?2]`: the rows that a row in that range replaced, and
/// the tombstones in it. The rows before `?1` were handled by earlier compactions.
pub(super) const COMPACT: &str = "
DELETE FROM kine WHERE id IN (
    SELECT prev_revision FROM kine WHERE prev_revision != 0 AND id > ?1 AND id <= ?2
    UNION
    SELECT id FROM kine WHERE deleted != 0 AND id > ?1 AND id <= ?2
)";

/// The key range of a prefix as SQL values: `?1` (inclusive) and `?2` (exclusive).
#[derive(Debug, Clone)]
pub(super) struct Bounds {
    pub start: Value,
    pub end: Value,
}

impl Bounds {
    pub fn of_prefix(prefix: &str) -> Bounds {
        Bounds {
            start: Value::Text(prefix.to_owned()),
            // SQLite orders every TEXT before every BLOB.
            end: prefix_end(prefix).map_or(Value::Blob(Vec::new()), Value::Text),
        }
    }
}

/// Sets the connection up: WAL, the given durability, a busy timeout.
pub(super) fn configure(conn: &Connection, synchronous: &str) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(30))?;
    // journal_mode answers with a row; read it rather than execute.
    let _mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    conn.execute_batch(&format!("PRAGMA synchronous = {synchronous};"))
}

/// Reads an optional integer from a one-column query; absent means 0.
pub(super) fn read_revision(conn: &Connection, sql: &str) -> rusqlite::Result<i64> {
    Ok(conn
        .prepare_cached(sql)?
        .query_row([], |row| row.get::<_, i64>(0))
        .optional()?
        .unwrap_or(0))
}

/// One row of `kine`.
#[derive(Debug, Clone)]
pub(super) struct Revision {
    pub id: i64,
    pub name: String,
    pub created: bool,
    pub deleted: bool,
    pub create_revision: i64,
    pub prev_revision: i64,
    pub value: Option<Vec<u8>>,
    pub old_value: Option<Vec<u8>>,
}

impl Revision {
    /// Reads the eight columns in the order every query above selects them.
    pub fn from_row(row: &Row<'_>) -> rusqlite::Result<Revision> {
        Ok(Revision {
            id: row.get(0)?,
            name: row.get(1)?,
            created: row.get::<_, i64>(2)? != 0,
            deleted: row.get::<_, i64>(3)? != 0,
            create_revision: row.get(4)?,
            prev_revision: row.get(5)?,
            value: row.get(6)?,
            old_value: row.get(7)?,
        })
    }

    /// The key's value as this row left it (meaningless for a tombstone).
    pub fn into_key_value(self) -> KeyValue {
        KeyValue {
            key: self.name,
            value: Bytes::from(self.value.unwrap_or_default()),
            create_revision: self.create_revision,
            mod_revision: self.id,
        }
    }

    /// The watch event this row records.
    pub fn into_event(self) -> Event {
        let prev = (!self.created).then(|| KeyValue {
            key: self.name.clone(),
            value: Bytes::from(self.old_value.clone().unwrap_or_default()),
            create_revision: self.create_revision,
            mod_revision: self.prev_revision,
        });
        if self.deleted {
            let last = Bytes::from(self.old_value.unwrap_or_default());
            Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    key: self.name,
                    value: last,
                    create_revision: self.create_revision,
                    mod_revision: self.id,
                },
                prev,
            }
        } else {
            Event {
                kind: EventKind::Put,
                kv: self.into_key_value(),
                prev,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lists page through the name index in order and stop at the limit: no sort of the
    /// whole range, no scan outside it.
    #[test]
    fn list_walks_the_name_index_without_sorting() {
        let conn = Connection::open_in_memory().unwrap();
        conn.execute_batch(CREATE).unwrap();
        let bounds = Bounds::of_prefix("/registry/pods/");
        let mut stmt = conn.prepare(&format!("EXPLAIN QUERY PLAN {LIST}")).unwrap();
        let plan: Vec<String> = stmt
            .query_map(
                rusqlite::params![bounds.start, bounds.end, "", 10, 11],
                |row| row.get(3),
            )
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        assert!(
            plan.iter().all(|step| !step.contains("TEMP B-TREE")),
            "{plan:?}"
        );
        assert!(
            plan[0].contains("INDEX") && plan[0].contains("name>? AND name<?"),
            "{plan:?}"
        );
    }
}
