//! Watches on the SQLite backend: the hub where the writer publishes committed events, and the
//! feeder task that turns a window of the past (read from the table) plus the live events (from
//! the hub) into one gap-free, duplicate-free [`WatchStream`].
//!
//! The race between replay and subscription is closed by one lock: the writer publishes a
//! committed batch and advances `published` under it, and a watcher subscribes and reads
//! `published` under it. So every event after `published` reaches the subscription, and every
//! event up to it is already in the table. The feeder replays `(after, published]` from the
//! table, then forwards live events, skipping any at or below what it has already delivered.
//!
//! Memory stays bounded however slow a consumer is: the hub hands each live event only to the
//! subscriptions of its prefix ([`Fanout`]), each holding at most `watch_window` of them
//! (writers never wait for readers), and each watcher buffers at most `watch_buffer`. A watch
//! of one name ([`WatchKeys`]) is handed only that name's events, and replays only them. A
//! feeder that falls a window behind while replaying just replays again from the table; one
//! that falls behind while live — its consumer is more than a window behind — ends the watch
//! with [`Error::WatchTooSlow`].

use std::sync::{Arc, Mutex, PoisonError, Weak};

use super::reader::ReadPool;
use super::schema::Bounds;
use crate::store::fanout::{Fanout, Missed, Subscription};
use crate::store::watch_keys::WatchKeys;
use crate::store::watch_stream::WatchSender;
use crate::store::{Error, Event, Op};

/// Events read from the table per replay query, and values (bytes) beyond the first event.
const REPLAY_PAGE: usize = 256;
const REPLAY_PAGE_BYTES: usize = 4 << 20;

/// Where the writer publishes what it committed.
#[derive(Debug)]
pub(super) struct Hub {
    marks: Mutex<Marks>,
}

/// The revisions every reader of the hub needs to agree on, and the subscriptions fed.
#[derive(Debug)]
struct Marks {
    /// Every event up to here has been published (and committed).
    published: i64,
    /// The table keeps no history before this revision.
    compacted: i64,
    live: Fanout,
}

impl Hub {
    pub fn new(revision: i64, compacted: i64, window: usize) -> Hub {
        Hub {
            marks: Mutex::new(Marks {
                published: revision,
                compacted,
                live: Fanout::new(window),
            }),
        }
    }

    fn marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Publishes committed events (in revision order) and the revision they bring the store to.
    pub fn publish(&self, events: Vec<Event>, revision: i64) {
        let mut marks = self.marks();
        for event in events {
            marks.live.send(&Arc::new(event));
        }
        marks.published = revision;
    }

    pub fn set_compacted(&self, compacted: i64) {
        self.marks().compacted = compacted;
    }

    pub fn revision(&self) -> i64 {
        self.marks().published
    }

    pub fn compacted(&self) -> i64 {
        self.marks().compacted
    }

    /// A subscription to every event of `keys` after the returned revision.
    pub fn subscribe(&self, keys: &WatchKeys) -> (Subscription, i64) {
        let mut marks = self.marks();
        (marks.live.subscribe(keys.clone()), marks.published)
    }
}

/// One watch being fed.
pub(super) struct Feeder {
    pub keys: WatchKeys,
    pub bounds: Bounds,
    /// Every matching event up to here has been delivered.
    pub cursor: i64,
    pub window: usize,
    pub reader: Arc<ReadPool>,
    pub hub: Weak<Hub>,
    pub out: WatchSender,
}

/// Why the feeder stopped.
enum Stop {
    /// The consumer dropped its stream: nobody to tell.
    ConsumerGone,
    /// The watch ends with this error.
    End(Error),
}

impl Feeder {
    /// Feeds the watch from `subscription`, made when the store was at `published`.
    pub async fn run(mut self, subscription: Subscription, published: i64) {
        match self.feed(subscription, published).await {
            Stop::ConsumerGone => {}
            Stop::End(error) => self.out.finish(error),
        }
    }

    async fn feed(&mut self, mut subscription: Subscription, mut published: i64) -> Stop {
        loop {
            if let Err(stop) = self.replay(published).await {
                return stop;
            }
            // The events written during the replay are held unless they were a window's
            // worth: then another replay, from the table.
            if subscription.lagged() {
                let Some(hub) = self.hub.upgrade() else {
                    return Stop::End(self.closed());
                };
                (subscription, published) = hub.subscribe(&self.keys);
                continue;
            }
            return self.follow(&mut subscription).await;
        }
    }

    /// Delivers the table's events in `(cursor, upto]`.
    async fn replay(&mut self, upto: i64) -> Result<(), Stop> {
        while self.cursor < upto {
            let (page, complete) = self
                .reader
                .events(
                    &self.keys.prefix,
                    self.bounds.clone(),
                    (self.cursor, upto),
                    REPLAY_PAGE,
                    REPLAY_PAGE_BYTES,
                )
                .await
                .map_err(Stop::End)?;
            for event in page {
                let revision = event.revision();
                if self.keys.contains(&event.kv.key) {
                    self.out.send(event).await.map_err(|_| Stop::ConsumerGone)?;
                }
                self.cursor = revision;
            }
            if complete {
                self.cursor = upto;
            }
        }
        Ok(())
    }

    /// Forwards live events until the watch ends.
    async fn follow(&mut self, subscription: &mut Subscription) -> Stop {
        loop {
            let received = tokio::select! {
                received = subscription.recv() => received,
                () = self.out.consumer_gone() => return Stop::ConsumerGone,
            };
            match received {
                Ok(event) => {
                    if let Err(stop) = self.deliver(&event).await {
                        return stop;
                    }
                }
                Err(Missed::Lagged) => {
                    return Stop::End(Error::WatchTooSlow {
                        op: Op::Watch,
                        key: self.keys.prefix.clone(),
                        window: self.window,
                        last_revision: self.cursor,
                    })
                }
                Err(Missed::Closed) => return Stop::End(self.closed()),
            }
        }
    }

    async fn deliver(&mut self, event: &Event) -> Result<(), Stop> {
        let revision = event.revision();
        if revision <= self.cursor {
            return Ok(());
        }
        if self.keys.contains(&event.kv.key) {
            self.out
                .send(event.clone())
                .await
                .map_err(|_| Stop::ConsumerGone)?;
        }
        self.cursor = revision;
        Ok(())
    }

    fn closed(&self) -> Error {
        Error::Closed {
            op: Op::Watch,
            key: self.keys.prefix.clone(),
        }
    }
}
