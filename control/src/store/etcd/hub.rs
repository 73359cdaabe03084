//! One etcd watch for the whole store, shared by the store's watches — as kube-apiserver's
//! watch cache shares one etcd watch per resource among its clients. Without it every
//! informer, controller and client watch held its own etcd watch stream, and each write was
//! sent by etcd and decoded here once per stream.
//!
//! The hub watches every key under the store's root prefix, from the revision it starts at,
//! with previous values. Under one lock it appends each event to a history of the newest
//! events (at most `Limits::watch_window` of them and [`HISTORY_BYTES`] of values) and
//! broadcasts it. A watch from revision R subscribes and copies the history's events after R
//! under that same lock, so it sees every event after R exactly once: the copied ones up to
//! the hub's newest, then the broadcast ones. The broadcast hands each event only to the
//! watches of its prefix ([`Fanout`]). A watch from before the history's start gets
//! its own etcd watch (`super::watch`), as before the hub; so does one from before a
//! compaction made through this store, which etcd refuses.
//!
//! No task stands between the hub and a watch's consumer: the consumer's task takes the
//! replayed events, then the live ones from its fanout subscription ([`HubWatch`]). A consumer
//! more than a window of live events behind is cut off with [`Error::WatchTooSlow`] after
//! the events it was handed, as the own-watch feeder does. When the hub's etcd watch ends (a
//! lost member, no leader, a closed stream), every watch on it gets its queued events, then
//! the error; the next watch starts a new hub.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use etcd_client::WatchOptions;
use tokio::task::AbortHandle;

use super::watch::{ended, store_event};
use super::{EtcdStore, Failure};
use crate::store::fanout::{self, Fanout, Missed};
use crate::store::watch_keys::WatchKeys;
use crate::store::watch_stream::EventSource;
use crate::store::{Error, Event, Op, WatchStream};
use std::task::{Context, Poll};

/// The most bytes of values the history keeps (besides its count limit).
const HISTORY_BYTES: usize = 16 << 20;
/// After a hub failed to start, watches get their own etcd watch for this long before the
/// next try: while etcd is unreachable, a watch waits for one timeout, not two.
const RESTART_PAUSE: Duration = Duration::from_secs(1);

/// The store's hub, shared by the store's clones; the hub's task ends with the last clone.
#[derive(Default)]
pub(super) struct HubSlot {
    current: tokio::sync::Mutex<Current>,
}

#[derive(Default)]
struct Current {
    running: Option<(Arc<Hub>, AbortHandle)>,
    failed_at: Option<Instant>,
}

impl Drop for HubSlot {
    fn drop(&mut self) {
        if let Some((_, task)) = self.current.get_mut().running.take() {
            task.abort();
        }
    }
}

impl HubSlot {
    /// A watch of `keys` after `after_revision` fed by the hub (started if it is not
    /// running); `None` when the hub cannot serve it: its history does not reach back to
    /// `after_revision`, or it could not start.
    pub(super) async fn watch(
        &self,
        store: &EtcdStore,
        keys: &WatchKeys,
        after_revision: i64,
    ) -> Option<WatchStream> {
        let hub = self.hub(store).await?;
        let subscription = hub.subscribe(keys, after_revision)?;
        Some(WatchStream::direct(HubWatch {
            hub,
            keys: keys.clone(),
            after: after_revision,
            last_sent: after_revision,
            replay: subscription.replay,
            live: subscription.live,
            window: store.config.limits.watch_window,
            ended: false,
        }))
    }

    /// The store was compacted at `revision`: a watch from before it is refused (by etcd), as
    /// on a store without the hub, rather than served from the history.
    pub(super) async fn compacted(&self, revision: i64) {
        if let Some((hub, _)) = &self.current.lock().await.running {
            hub.forget_through(revision);
        }
    }

    /// Starts the hub (if none runs) now, so that lists made from here on are within reach
    /// of its history.
    pub(super) async fn start(&self, store: &EtcdStore) {
        let _ = self.hub(store).await;
    }

    async fn hub(&self, store: &EtcdStore) -> Option<Arc<Hub>> {
        let mut current = self.current.lock().await;
        if let Some((hub, _)) = &current.running {
            if hub.running() {
                return Some(Arc::clone(hub));
            }
        }
        if current
            .failed_at
            .is_some_and(|at| at.elapsed() < RESTART_PAUSE)
        {
            return None;
        }
        match Hub::start(store).await {
            Ok((hub, task)) => {
                current.running = Some((Arc::clone(&hub), task));
                current.failed_at = None;
                Some(hub)
            }
            Err(failure) => {
                let error = store.error(Op::Watch, "", failure);
                tracing::debug!(%error, "the etcd watch hub did not start");
                current.failed_at = Some(Instant::now());
                None
            }
        }
    }
}

struct Hub {
    /// The store's root prefix, taken off etcd's keys.
    root: String,
    /// The cluster's endpoints, as errors name them.
    endpoints: String,
    state: Mutex<State>,
}

struct State {
    /// The history holds every event after this revision.
    floor: i64,
    history: VecDeque<Arc<Event>>,
    history_bytes: usize,
    capacity: usize,
    /// `None` once the hub's etcd watch ended: receivers then drain and see it closed.
    live: Option<Fanout>,
    /// Why the etcd watch ended.
    end: Option<String>,
}

/// What a new watch takes from the hub.
struct Subscription {
    live: fanout::Subscription,
    /// The history's events of the watch's keys after its revision.
    replay: VecDeque<Arc<Event>>,
}

fn value_bytes(event: &Event) -> usize {
    event.kv.value.len() + event.prev.as_ref().map_or(0, |prev| prev.value.len())
}

impl Hub {
    /// Opens the etcd watch over every store key from the cluster's revision now, and spawns
    /// the task publishing its events.
    async fn start(store: &EtcdStore) -> Result<(Arc<Hub>, AbortHandle), Failure> {
        let revision = store.header_revision().await?;
        let (start, end) = store.bounds("");
        let options = WatchOptions::new()
            .with_range(end)
            .with_start_revision(revision + 1)
            .with_prev_key();
        let mut stream = store
            .call(&store.watcher, |mut client| {
                let (start, options) = (start.clone(), options.clone());
                async move { client.watch(start, Some(options)).await }
            })
            .await?;
        let created = tokio::time::timeout(store.config.request_timeout, stream.message())
            .await
            .map_err(|_| Failure::Timeout)??;
        match created {
            Some(response) if response.created() && !response.canceled() => {}
            other => return Err(ended(other.as_ref())),
        }
        let hub = Arc::new(Hub::new(
            &store.config.prefix,
            &store.endpoints,
            revision,
            store.config.limits.watch_window,
        ));
        let task = tokio::spawn(Arc::clone(&hub).run(stream)).abort_handle();
        Ok((hub, task))
    }

    /// A hub at `revision` keeping a history of `window` events.
    fn new(root: &str, endpoints: &str, revision: i64, window: usize) -> Hub {
        let capacity = window.max(1);
        Hub {
            root: root.to_owned(),
            endpoints: endpoints.to_owned(),
            state: Mutex::new(State {
                floor: revision,
                history: VecDeque::new(),
                history_bytes: 0,
                capacity,
                live: Some(Fanout::new(capacity)),
                end: None,
            }),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn running(&self) -> bool {
        self.state().live.is_some()
    }

    /// Publishes etcd's events until its watch ends; then (or when the task is aborted)
    /// closes the hub.
    async fn run(self: Arc<Hub>, mut stream: etcd_client::WatchStream) {
        let closer = Closer(Arc::clone(&self));
        let end = loop {
            match stream.message().await {
                Ok(Some(response)) => {
                    let root = &self.root;
                    self.publish(
                        response
                            .events()
                            .iter()
                            .filter_map(|event| store_event(root, event)),
                    );
                    if response.canceled() || response.compact_revision() > 0 {
                        break failure_text(ended(Some(&response)));
                    }
                }
                Ok(None) => break failure_text(ended(None)),
                Err(error) => break error.to_string(),
            }
        };
        closer.0.close(end);
    }

    fn publish(&self, events: impl IntoIterator<Item = Event>) {
        let mut state = self.state();
        for event in events {
            let event = Arc::new(event);
            state.history_bytes += value_bytes(&event);
            state.history.push_back(Arc::clone(&event));
            while state.history.len() > state.capacity || state.history_bytes > HISTORY_BYTES {
                let Some(oldest) = state.history.pop_front() else {
                    break;
                };
                state.history_bytes -= value_bytes(&oldest);
                state.floor = oldest.revision();
            }
            if let Some(live) = &mut state.live {
                live.send(&event);
            }
        }
    }

    fn forget_through(&self, revision: i64) {
        let mut state = self.state();
        while state
            .history
            .front()
            .is_some_and(|event| event.revision() <= revision)
        {
            if let Some(oldest) = state.history.pop_front() {
                state.history_bytes -= value_bytes(&oldest);
            }
        }
        state.floor = state.floor.max(revision);
    }

    fn close(&self, end: String) {
        let mut state = self.state();
        if state.live.take().is_some() {
            tracing::debug!(reason = %end, "the etcd watch hub ended");
            state.end = Some(end);
        }
    }

    /// A subscription to the events of `keys` after `after_revision`; `None` when the hub
    /// has ended or its history starts after `after_revision`.
    fn subscribe(&self, keys: &WatchKeys, after_revision: i64) -> Option<Subscription> {
        let mut state = self.state();
        if state.live.is_none() || after_revision < state.floor {
            return None;
        }
        let replay = state
            .history
            .iter()
            .filter(|event| event.revision() > after_revision && keys.contains(&event.kv.key))
            .cloned()
            .collect();
        let live = state.live.as_mut()?.subscribe(keys.clone());
        Some(Subscription { live, replay })
    }

    /// The error that ended the hub, for the watch of `prefix`.
    fn end_error(&self, prefix: &str) -> Error {
        let reason = self
            .state()
            .end
            .clone()
            .unwrap_or_else(|| "the etcd watch ended".to_owned());
        Error::Etcd {
            op: Op::Watch,
            key: prefix.to_owned(),
            endpoints: self.endpoints.clone(),
            source: etcd_client::Error::WatchError(reason),
        }
    }
}

/// Closes the hub when its task ends, also when the task is aborted with the store.
struct Closer(Arc<Hub>);

impl Drop for Closer {
    fn drop(&mut self) {
        self.0.close("the store is closed".to_owned());
    }
}

fn failure_text(failure: Failure) -> String {
    match failure {
        Failure::Etcd(etcd_client::Error::WatchError(reason)) => reason,
        Failure::Etcd(error) => error.to_string(),
        Failure::Timeout => "etcd did not answer in time".to_owned(),
    }
}

/// One watch fed by the hub, polled by its consumer's task: the history's events of its
/// keys, then the live ones as the fanout hands them over.
struct HubWatch {
    hub: Arc<Hub>,
    keys: WatchKeys,
    /// The watch's revision: events up to it are not the watch's (a watch from a revision
    /// the hub has not reached yet).
    after: i64,
    /// The revision of the last event handed to the consumer.
    last_sent: i64,
    /// The history's events of the keys after `after`, not taken yet.
    replay: VecDeque<Arc<Event>>,
    /// The live events of the keys, at most a window of them not taken.
    live: fanout::Subscription,
    window: usize,
    ended: bool,
}

impl EventSource for HubWatch {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event, Error>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        if let Some(event) = self.replay.pop_front() {
            return Poll::Ready(Some(Ok(self.hand_over(&event))));
        }
        loop {
            let end = match std::task::ready!(self.live.poll_recv(cx)) {
                // (only the keys' events come)
                Ok(event) if event.revision() <= self.after => continue,
                Ok(event) => return Poll::Ready(Some(Ok(self.hand_over(&event)))),
                // The consumer did not take a window of its keys' live events: cut off
                // after a gap-free prefix of them.
                Err(Missed::Lagged) => Error::WatchTooSlow {
                    op: Op::Watch,
                    key: self.keys.prefix.clone(),
                    window: self.window,
                    last_revision: self.last_sent,
                },
                // Everything the hub delivered before its end was taken: then the end.
                Err(Missed::Closed) => self.hub.end_error(&self.keys.prefix),
            };
            self.ended = true;
            return Poll::Ready(Some(Err(end)));
        }
    }
}

impl HubWatch {
    fn hand_over(&mut self, event: &Event) -> Event {
        self.last_sent = event.revision();
        event.clone()
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::store::{EventKind, KeyValue};

    fn put(key: &str, revision: i64, size: usize) -> Event {
        Event {
            kind: EventKind::Put,
            kv: KeyValue {
                key: key.to_owned(),
                value: Bytes::from(vec![b'x'; size]),
                create_revision: revision,
                mod_revision: revision,
            },
            prev: None,
        }
    }

    fn replayed(hub: &Hub, prefix: &str, after: i64) -> Option<Vec<i64>> {
        let subscription = hub.subscribe(&WatchKeys::under(prefix), after)?;
        Some(subscription.replay.iter().map(|e| e.revision()).collect())
    }

    #[test]
    fn history_serves_its_window_and_refuses_older_revisions() {
        let hub = Hub::new("", "e", 10, 4);
        hub.publish((11..=16).map(|r| put(&format!("/a/{}", r % 2), r, 1)));
        // Four events kept (13..=16): a watch from 12 on is served, from 11 is not.
        assert_eq!(replayed(&hub, "/a/", 12), Some(vec![13, 14, 15, 16]));
        assert_eq!(replayed(&hub, "/a/1", 12), Some(vec![13, 15]));
        assert_eq!(replayed(&hub, "/a/", 16), Some(vec![]));
        assert_eq!(replayed(&hub, "/a/", 20), Some(vec![]), "a future revision");
        assert_eq!(replayed(&hub, "/a/", 11), None);
        let named = hub.subscribe(&WatchKeys::named("/a/", "0"), 12);
        let named: Vec<i64> = named.map_or_else(Vec::new, |s| {
            s.replay.iter().map(|e| e.revision()).collect()
        });
        assert_eq!(named, [14, 16], "a name's replay holds only its keys");
    }

    #[test]
    fn history_keeps_at_most_its_bytes_and_forgets_what_was_compacted() {
        let hub = Hub::new("", "e", 0, 1000);
        let big = HISTORY_BYTES / 3 + 1;
        hub.publish((1..=4).map(|r| put("/b/k", r, big)));
        assert_eq!(replayed(&hub, "/b/", 2), Some(vec![3, 4]));
        assert_eq!(
            replayed(&hub, "/b/", 1),
            None,
            "revision 2 was dropped for room"
        );
        assert!(hub.state().history_bytes <= HISTORY_BYTES);
        hub.forget_through(3);
        assert_eq!(replayed(&hub, "/b/", 2), None);
        assert_eq!(replayed(&hub, "/b/", 3), Some(vec![4]));
        assert_eq!(hub.state().history_bytes, big);
    }

    #[tokio::test]
    async fn a_closed_hub_ends_its_watches_after_their_events_and_serves_no_new_one() {
        let hub = Arc::new(Hub::new("/root", "http://e:2379", 0, 8));
        let keys = WatchKeys::under("/p/");
        let subscription = hub.subscribe(&keys, 0).expect("a running hub");
        let mut events = WatchStream::direct(HubWatch {
            hub: Arc::clone(&hub),
            keys: keys.clone(),
            after: 0,
            last_sent: 0,
            replay: subscription.replay,
            live: subscription.live,
            window: 8,
            ended: false,
        });
        hub.publish([put("/p/a", 1, 1), put("/q/b", 2, 1), put("/p/c", 3, 1)]);
        hub.close("etcd went away".to_owned());
        let mut keys = Vec::new();
        let end = loop {
            match events.next().await {
                Some(Ok(event)) => keys.push(event.kv.key),
                Some(Err(error)) => break error.to_string(),
                None => panic!("the watch ended without its error"),
            }
        };
        assert_eq!(keys, ["/p/a", "/p/c"]);
        assert!(
            end.contains("etcd went away") && end.contains("http://e:2379"),
            "{end}"
        );
        assert!(events.next().await.is_none(), "nothing after the end");
        assert!(hub.subscribe(&WatchKeys::under("/p/"), 3).is_none());
        assert!(!hub.running());
    }
}
