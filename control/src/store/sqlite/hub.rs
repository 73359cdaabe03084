//! Watches on the SQLite backend: the hub where the writer publishes committed events, and the
//! watch ([`HubWatch`]) that turns a window of the past (read from the table) plus the live
//! events (from the hub) into one gap-free, duplicate-free [`WatchStream`](crate::store::WatchStream). No task stands
//! between the hub and a watch's consumer: the consumer's own task reads the table's pages and
//! takes the live events from its subscription, as the etcd hub's watches do.
//!
//! The race between replay and subscription is closed by one lock: the writer publishes a
//! committed batch and advances `published` under it, and a watcher subscribes and reads
//! `published` under it. So every event after `published` reaches the subscription, and every
//! event up to it is already in the table. The watch replays `(after, published]` from the
//! table, then hands over live events, skipping any at or below what it has already handed
//! over.
//!
//! Memory stays bounded however slow a consumer is: the hub hands each live event only to the
//! subscriptions of its prefix ([`Fanout`]), each holding at most `watch_window` of them
//! (writers never wait for readers), and a replay holds one page of the table. A watch of one
//! name ([`WatchKeys`]) is handed only that name's events, and replays only them. A watch
//! that falls a window behind while replaying just replays again from the table; one that
//! falls behind while live — its consumer is more than a window behind — ends with
//! [`Error::WatchTooSlow`].

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::task::{Context, Poll};

use super::reader::ReadPool;
use super::schema::Bounds;
use crate::store::fanout::{Fanout, Missed, Subscription};
use crate::store::watch_keys::WatchKeys;
use crate::store::watch_stream::EventSource;
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

/// One watch, polled by its consumer's task: the table's events after its revision, then
/// the hub's live ones.
pub(super) struct HubWatch {
    pub keys: WatchKeys,
    pub bounds: Bounds,
    /// Every event of the keys up to here has been handed over.
    pub cursor: i64,
    pub window: usize,
    pub reader: Arc<ReadPool>,
    pub hub: Weak<Hub>,
    pub phase: Phase,
}

/// Where a [`HubWatch`] is.
pub(super) enum Phase {
    /// Handing over the table's events up to `upto` (the hub's revision when `live` was
    /// subscribed), a page at a time.
    Replay {
        upto: i64,
        live: Subscription,
        page: VecDeque<Event>,
        /// The page's read exhausted the range: once it is handed over, the replay is done.
        complete: bool,
        reading: Option<PageRead>,
    },
    /// Handing over the live events.
    Live(Subscription),
    /// The end was told.
    Ended,
}

type PageRead = Pin<Box<dyn Future<Output = Result<(Vec<Event>, bool), Error>> + Send>>;

impl Phase {
    /// For a watch whose events up to `cursor` were handed over: replaying up to `upto`, `live`
    /// holding what comes after — or live at once when there is nothing to replay.
    pub fn replay(live: Subscription, cursor: i64, upto: i64) -> Phase {
        if cursor >= upto {
            return Phase::Live(live);
        }
        Phase::Replay {
            upto,
            live,
            page: VecDeque::new(),
            complete: false,
            reading: None,
        }
    }
}

impl EventSource for HubWatch {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        let next = self.poll_next(cx);
        if let Poll::Ready(Some(Err(_))) = &next {
            self.phase = Phase::Ended;
        }
        next
    }
}

impl HubWatch {
    fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        loop {
            match &mut self.phase {
                Phase::Ended => return Poll::Ready(None),
                Phase::Replay {
                    upto,
                    live,
                    page,
                    complete,
                    reading,
                } => {
                    if let Some(event) = page.pop_front() {
                        self.cursor = event.revision();
                        if !self.keys.contains(&event.kv.key) {
                            continue;
                        }
                        // Live as soon as the last of the replay is handed over (not at the
                        // next poll): a consumer a window behind from here on is cut off.
                        if page.is_empty() && *complete && !live.lagged() {
                            self.cursor = self.cursor.max(*upto);
                            self.go_live();
                        }
                        return Poll::Ready(Some(Ok(event)));
                    }
                    if *complete {
                        self.cursor = self.cursor.max(*upto);
                        *complete = false;
                    }
                    if self.cursor >= *upto {
                        // The events written during the replay are held unless they were a
                        // window's worth: then another replay, from the table.
                        if live.lagged() {
                            let Some(hub) = self.hub.upgrade() else {
                                return Poll::Ready(Some(Err(self.closed())));
                            };
                            let (subscription, published) = hub.subscribe(&self.keys);
                            self.phase = Phase::replay(subscription, self.cursor, published);
                            continue;
                        }
                        self.go_live();
                        continue;
                    }
                    let read = reading.get_or_insert_with(|| {
                        let (reader, prefix) = (Arc::clone(&self.reader), self.keys.prefix.clone());
                        let (bounds, range) = (self.bounds.clone(), (self.cursor, *upto));
                        Box::pin(async move {
                            reader
                                .events(&prefix, bounds, range, REPLAY_PAGE, REPLAY_PAGE_BYTES)
                                .await
                        })
                    });
                    let read = std::task::ready!(read.as_mut().poll(cx));
                    *reading = None;
                    match read {
                        Ok((events, exhausted)) => {
                            *page = events.into();
                            *complete = exhausted;
                        }
                        Err(error) => return Poll::Ready(Some(Err(error))),
                    }
                }
                Phase::Live(live) => {
                    let end = match std::task::ready!(live.poll_recv(cx)) {
                        Ok(event) if event.revision() <= self.cursor => continue,
                        Ok(event) => {
                            self.cursor = event.revision();
                            return Poll::Ready(Some(Ok(Event::clone(&event))));
                        }
                        // The consumer is more than a window behind.
                        Err(Missed::Lagged) => Error::WatchTooSlow {
                            op: Op::Watch,
                            key: self.keys.prefix.clone(),
                            window: self.window,
                            last_revision: self.cursor,
                        },
                        Err(Missed::Closed) => self.closed(),
                    };
                    return Poll::Ready(Some(Err(end)));
                }
            }
        }
    }

    /// From the replay to the live events.
    fn go_live(&mut self) {
        if let Phase::Replay { live, .. } = std::mem::replace(&mut self.phase, Phase::Ended) {
            self.phase = Phase::Live(live);
        }
    }

    fn closed(&self) -> Error {
        Error::Closed {
            op: Op::Watch,
            key: self.keys.prefix.clone(),
        }
    }
}
