//! The SQLite backend's only writer: a dedicated thread that owns the read-write connection,
//! the data directory's lock and the current revision. It takes the writes queued since its
//! last commit and applies them in one transaction (group commit: one fsync for many writes),
//! each checked against the key's newest row, so compare-and-swap needs no retry inside the
//! store. After the commit it publishes the batch's events to the hub, then answers the
//! callers, so a caller that saw its write succeed finds it in every later read and watch.
//!
//! If SQLite fails a batch, each write of it is retried alone, so one bad write cannot fail its
//! neighbours. Compaction runs here too, a bounded step per command, between write batches.

use std::fs::File;
use std::sync::mpsc;
use std::sync::Arc;

use bytes::Bytes;
use nix::fcntl::Flock;
use rusqlite::{params, Connection, Transaction, TransactionBehavior};
use tokio::sync::oneshot;

use super::hub::Hub;
use super::reader::latest;
use super::schema;
use crate::store::{Deleted, Error, Event, EventKind, KeyValue, Op, Result};

/// Most revisions one compaction step forgets, so a step never holds the writer for long.
pub(super) const COMPACT_STEP: i64 = 1000;

/// A write asked of the writer.
#[derive(Debug)]
pub(super) enum WriteOp {
    Create {
        key: String,
        value: Bytes,
    },
    Update {
        key: String,
        value: Bytes,
        expected: i64,
    },
    Delete {
        key: String,
        expected: Option<i64>,
    },
}

/// What a successful write did.
#[derive(Debug)]
pub(super) enum Written {
    Put(KeyValue),
    Deleted(Deleted),
}

#[derive(Debug)]
pub(super) enum Command {
    Write(WriteOp, oneshot::Sender<Result<Written>>),
    /// Compacts up to the revision, at most `COMPACT_STEP` past the current compacted one;
    /// answers the compacted revision after the step.
    CompactStep(i64, oneshot::Sender<Result<i64>>),
}

pub(super) struct Writer {
    pub conn: Connection,
    pub hub: Arc<Hub>,
    pub revision: i64,
    pub compacted: i64,
    pub max_batch: usize,
    /// Held while the writer runs: one process per data directory.
    pub lock: Flock<File>,
}

type Reply = oneshot::Sender<Result<Written>>;

impl Writer {
    /// Serves commands until every sender is dropped.
    pub fn run(mut self, commands: mpsc::Receiver<Command>) {
        while let Ok(first) = commands.recv() {
            let mut writes: Vec<(WriteOp, Reply)> = Vec::new();
            let mut next = Some(first);
            while let Some(command) = next.take() {
                match command {
                    Command::Write(op, reply) => writes.push((op, reply)),
                    Command::CompactStep(target, reply) => {
                        self.write_batch(std::mem::take(&mut writes));
                        // The caller may be gone; the step is done anyway.
                        let _ = reply.send(self.compact_step(target));
                    }
                }
                if writes.len() < self.max_batch {
                    next = commands.try_recv().ok();
                }
            }
            self.write_batch(writes);
        }
        drop(self.lock);
    }

    fn write_batch(&mut self, writes: Vec<(WriteOp, Reply)>) {
        if writes.is_empty() {
            return;
        }
        let (ops, replies): (Vec<WriteOp>, Vec<Reply>) = writes.into_iter().unzip();
        match self.try_batch(&ops) {
            Ok(results) => {
                for (reply, result) in replies.into_iter().zip(results) {
                    let _ = reply.send(result);
                }
            }
            Err(source) if ops.len() == 1 => {
                if let (Some(op), Some(reply)) = (ops.first(), replies.into_iter().next()) {
                    let _ = reply.send(Err(Error::Sqlite {
                        op: op.op(),
                        key: op.key().to_owned(),
                        source,
                    }));
                }
            }
            Err(_) => {
                for (op, reply) in ops.into_iter().zip(replies) {
                    self.write_batch(vec![(op, reply)]);
                }
            }
        }
    }

    /// Applies `ops` in one transaction; an `Err` means SQLite failed and nothing was written.
    fn try_batch(&mut self, ops: &[WriteOp]) -> rusqlite::Result<Vec<Result<Written>>> {
        let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
        let mut revision = self.revision;
        let mut results = Vec::with_capacity(ops.len());
        let mut events = Vec::new();
        for op in ops {
            match apply(&tx, op, revision + 1)? {
                Ok((written, event)) => {
                    revision += 1;
                    results.push(Ok(written));
                    events.push(event);
                }
                Err(refused) => results.push(Err(refused)),
            }
        }
        tx.commit()?;
        self.revision = revision;
        self.hub.publish(events, revision);
        Ok(results)
    }

    fn compact_step(&mut self, target: i64) -> Result<i64> {
        if target > self.revision {
            return Err(Error::FutureRevision {
                op: Op::Compact,
                key: String::new(),
                requested: target,
                current: self.revision,
            });
        }
        if target <= self.compacted {
            return Ok(self.compacted);
        }
        let upto = target.min(self.compacted.saturating_add(COMPACT_STEP));
        let step = || -> rusqlite::Result<()> {
            let tx = Transaction::new_unchecked(&self.conn, TransactionBehavior::Immediate)?;
            tx.prepare_cached(schema::COMPACT)?
                .execute(params![self.compacted, upto])?;
            tx.prepare_cached(schema::SET_COMPACTED_REVISION)?
                .execute([upto])?;
            tx.commit()
        };
        step().map_err(Error::sqlite(Op::Compact, ""))?;
        self.compacted = upto;
        self.hub.set_compacted(upto);
        Ok(upto)
    }
}

impl WriteOp {
    fn op(&self) -> Op {
        match self {
            WriteOp::Create { .. } => Op::Create,
            WriteOp::Update { .. } => Op::Update,
            WriteOp::Delete { .. } => Op::Delete,
        }
    }

    fn key(&self) -> &str {
        match self {
            WriteOp::Create { key, .. }
            | WriteOp::Update { key, .. }
            | WriteOp::Delete { key, .. } => key,
        }
    }
}

/// A row to append.
struct NewRow<'a> {
    revision: i64,
    key: &'a str,
    created: bool,
    deleted: bool,
    create_revision: i64,
    prev_revision: i64,
    value: Option<&'a [u8]>,
    old_value: Option<&'a [u8]>,
}

fn insert(tx: &Transaction<'_>, row: &NewRow<'_>) -> rusqlite::Result<()> {
    tx.prepare_cached(schema::INSERT)?.execute(params![
        row.revision,
        row.key,
        i64::from(row.created),
        i64::from(row.deleted),
        row.create_revision,
        row.prev_revision,
        row.value,
        row.old_value,
    ])?;
    Ok(())
}

/// Applies one write at `revision`: `Ok(Err(_))` when the store refuses it (exists, missing,
/// conflict), `Err(_)` when SQLite fails.
fn apply(
    tx: &Transaction<'_>,
    op: &WriteOp,
    revision: i64,
) -> rusqlite::Result<Result<(Written, Event)>> {
    let key = op.key();
    let newest = latest(tx, key)?;
    let live = newest.as_ref().filter(|row| !row.deleted);
    let refuse = |error: Error| Ok(Err(error));
    match (op, live) {
        (WriteOp::Create { .. }, Some(_)) => refuse(Error::AlreadyExists {
            op: Op::Create,
            key: key.to_owned(),
        }),
        (WriteOp::Create { value, .. }, None) => {
            insert(
                tx,
                &NewRow {
                    revision,
                    key,
                    created: true,
                    deleted: false,
                    create_revision: revision,
                    prev_revision: newest.map_or(0, |row| row.id),
                    value: Some(value),
                    old_value: None,
                },
            )?;
            let kv = KeyValue {
                key: key.to_owned(),
                value: value.clone(),
                create_revision: revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: None,
            };
            Ok(Ok((Written::Put(kv), event)))
        }
        (WriteOp::Update { .. } | WriteOp::Delete { .. }, None) => refuse(Error::NotFound {
            op: op.op(),
            key: key.to_owned(),
        }),
        (WriteOp::Update { expected, .. }, Some(current))
        | (
            WriteOp::Delete {
                expected: Some(expected),
                ..
            },
            Some(current),
        ) if current.id != *expected => refuse(Error::Conflict {
            op: op.op(),
            key: key.to_owned(),
            expected: *expected,
            current: current.id,
        }),
        (WriteOp::Update { value, .. }, Some(current)) => {
            insert(
                tx,
                &NewRow {
                    revision,
                    key,
                    created: false,
                    deleted: false,
                    create_revision: current.create_revision,
                    prev_revision: current.id,
                    value: Some(value),
                    old_value: current.value.as_deref(),
                },
            )?;
            let kv = KeyValue {
                key: key.to_owned(),
                value: value.clone(),
                create_revision: current.create_revision,
                mod_revision: revision,
            };
            let event = Event {
                kind: EventKind::Put,
                kv: kv.clone(),
                prev: Some(current.clone().into_key_value()),
            };
            Ok(Ok((Written::Put(kv), event)))
        }
        (WriteOp::Delete { .. }, Some(current)) => {
            insert(
                tx,
                &NewRow {
                    revision,
                    key,
                    created: false,
                    deleted: true,
                    create_revision: current.create_revision,
                    prev_revision: current.id,
                    value: None,
                    old_value: current.value.as_deref(),
                },
            )?;
            let prev = current.clone().into_key_value();
            let event = Event {
                kind: EventKind::Delete,
                kv: KeyValue {
                    mod_revision: revision,
                    ..prev.clone()
                },
                prev: Some(prev.clone()),
            };
            Ok(Ok((Written::Deleted(Deleted { prev, revision }), event)))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A write that SQLite fails is answered with its own error, and the writes batched with
    /// it are committed anyway, at consecutive revisions.
    #[test]
    fn one_failing_write_does_not_fail_its_batch() {
        let dir = tempfile::tempdir().unwrap();
        let conn = Connection::open(dir.path().join("state.db")).unwrap();
        schema::configure(&conn, "FULL").unwrap();
        conn.execute_batch(schema::CREATE).unwrap();
        conn.execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON kine WHEN NEW.name = '/poison'
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
        let lock = File::create(dir.path().join("state.lock")).unwrap();
        let lock = Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive).unwrap();
        let hub = Arc::new(Hub::new(0, 0, 16));
        let (commands, queue) = mpsc::channel();
        // Queued before the writer starts, so they form one batch.
        let answers = ["/a", "/poison", "/b"].map(|key| {
            let (reply, answer) = oneshot::channel();
            let op = WriteOp::Create {
                key: key.to_owned(),
                value: Bytes::from_static(b"v"),
            };
            commands.send(Command::Write(op, reply)).unwrap();
            answer
        });
        drop(commands);
        let writer = Writer {
            conn,
            hub: Arc::clone(&hub),
            revision: 0,
            compacted: 0,
            max_batch: 16,
            lock,
        };
        writer.run(queue);

        let [a, poison, b] = answers.map(|answer| answer.blocking_recv().unwrap());
        assert!(
            matches!(
                a,
                Ok(Written::Put(KeyValue {
                    mod_revision: 1,
                    ..
                }))
            ),
            "{a:?}"
        );
        match poison {
            Err(Error::Sqlite {
                op: Op::Create,
                key,
                source,
            }) => {
                assert_eq!(key, "/poison");
                assert!(source.to_string().contains("poisoned"), "{source}");
            }
            other => panic!("{other:?}"),
        }
        assert!(
            matches!(
                b,
                Ok(Written::Put(KeyValue {
                    mod_revision: 2,
                    ..
                }))
            ),
            "{b:?}"
        );
        assert_eq!(hub.revision(), 2);
    }
}
