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
//! Each watch's feeder keeps the events of its prefix the consumer has no room for in a queue
//! and cuts off a consumer more than a window of live events behind with
//! [`Error::WatchTooSlow`], as the own-watch feeder does. When the hub's etcd watch ends (a
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
use crate::store::watch_stream::{watch_channel, WatchSender};
use crate::store::{Error, Event, Op, WatchStream};

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
    /// A watch of `prefix` after `after_revision` fed by the hub (started if it is not
    /// running); `None` when the hub cannot serve it: its history does not reach back to
    /// `after_revision`, or it could not start.
    pub(super) async fn watch(
        &self,
        store: &EtcdStore,
        prefix: &str,
        after_revision: i64,
    ) -> Option<WatchStream> {
        let hub = self.hub(store).await?;
        let subscription = hub.subscribe(prefix, after_revision)?;
        let (sender, events) = watch_channel(store.config.limits.watch_buffer);
        let feeder = Feeder {
            hub,
            prefix: prefix.to_owned(),
            after: after_revision,
            last_sent: after_revision,
            replay_until: subscription.published,
            queue: subscription.replay,
            window: store.config.limits.watch_window,
        };
        tokio::spawn(feeder.run(subscription.live, sender));
        Some(events)
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
    /// Every event up to here has been added to the history and broadcast.
    published: i64,
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
    /// The history's events of the watch's prefix after its revision.
    replay: VecDeque<Arc<Event>>,
    published: i64,
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
                published: revision,
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
            state.published = event.revision();
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

    /// A subscription to the events of `prefix` after `after_revision`; `None` when the hub
    /// has ended or its history starts after `after_revision`.
    fn subscribe(&self, prefix: &str, after_revision: i64) -> Option<Subscription> {
        let mut state = self.state();
        if state.live.is_none() || after_revision < state.floor {
            return None;
        }
        let replay = state
            .history
            .iter()
            .filter(|event| event.revision() > after_revision && event.kv.key.starts_with(prefix))
            .cloned()
            .collect();
        let published = state.published;
        let live = state.live.as_mut()?.subscribe(prefix);
        Some(Subscription {
            live,
            replay,
            published,
        })
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

/// One watch fed by the hub.
struct Feeder {
    hub: Arc<Hub>,
    prefix: String,
    /// The watch's revision: events up to it are not the watch's (a watch from a revision
    /// the hub has not reached yet).
    after: i64,
    /// The revision of the last event handed to the consumer.
    last_sent: i64,
    /// The hub's newest revision when the watch started: events up to it are history.
    replay_until: i64,
    /// Events of the prefix the consumer has no room for yet.
    queue: VecDeque<Arc<Event>>,
    window: usize,
}

impl Feeder {
    async fn run(mut self, mut live: fanout::Subscription, sender: WatchSender) {
        let end = loop {
            let behind = self.queue.len() > self.window;
            let is_live = self
                .queue
                .front()
                .is_some_and(|event| event.revision() > self.replay_until);
            if behind && is_live {
                break self.too_slow();
            }
            tokio::select! {
                permit = sender.reserve(), if !self.queue.is_empty() => {
                    let Ok(permit) = permit else { return };
                    if let Some(event) = self.queue.pop_front() {
                        self.last_sent = event.revision();
                        permit.send(Event::clone(&event));
                    }
                }
                () = sender.consumer_gone(), if self.queue.is_empty() => return,
                received = live.recv() => match received {
                    // (only the prefix's events come)
                    Ok(event) => {
                        if event.revision() > self.after {
                            self.queue.push_back(event);
                        }
                    }
                    // This feeder was not scheduled for a window of its prefix's writes.
                    Err(Missed::Lagged) => break self.too_slow(),
                    Err(Missed::Closed) => {
                        // Everything the hub delivered before its end, then the end.
                        for event in std::mem::take(&mut self.queue) {
                            if sender.send(Event::clone(&event)).await.is_err() {
                                return;
                            }
                        }
                        break self.hub.end_error(&self.prefix);
                    }
                },
            }
        };
        sender.finish(end);
    }

    /// Cut off without the queue: the consumer sees a gap-free prefix, then this.
    fn too_slow(&self) -> Error {
        Error::WatchTooSlow {
            op: Op::Watch,
            key: self.prefix.clone(),
            window: self.window,
            last_revision: self.last_sent,
        }
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
        let subscription = hub.subscribe(prefix, after)?;
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
        assert_eq!(hub.subscribe("/a/", 12).map(|s| s.published), Some(16));
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
        let subscription = hub.subscribe("/p/", 0).expect("a running hub");
        let (sender, mut events) = watch_channel(4);
        let feeder = Feeder {
            hub: Arc::clone(&hub),
            prefix: "/p/".to_owned(),
            after: 0,
            last_sent: 0,
            replay_until: subscription.published,
            queue: subscription.replay,
            window: 8,
        };
        let task = tokio::spawn(feeder.run(subscription.live, sender));
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
        task.await.expect("the feeder");
        assert!(hub.subscribe("/p/", 3).is_none());
        assert!(!hub.running());
    }
}
