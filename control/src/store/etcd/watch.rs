//! Watches on etcd, and finding etcd's compacted revision.
//!
//! A watch is fed by the store's hub (`super::hub`: one etcd watch shared by all) when the
//! hub's history reaches back to its revision. Otherwise it gets its own etcd watch: it checks first that `after_revision` is still readable (a read at it fails exactly
//! when it is compacted), then opens an etcd watch from `after_revision + 1` with previous
//! values and waits for etcd to confirm it. A feeder task moves etcd's events into the
//! [`WatchStream`]: events the consumer has no room for wait in a queue, and a consumer more
//! than `Limits::watch_window` live events behind is cut off with [`Error::WatchTooSlow`] —
//! etcd itself never drops a slow watcher, it only buffers. History (events up to the
//! revision the watch started at) never makes a watcher too slow: while the queue is full of
//! it, the feeder stops reading etcd until the consumer catches up. Any other end (compaction, a canceled
//! watch, a lost member) delivers the queued events first, then the error.
//!
//! etcd has no request that reports its compacted revision, except a watch from a compacted
//! revision, whose answer carries it: [`compacted_revision`] opens one on a key no store key
//! can be.

use std::collections::VecDeque;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchResponse};

use super::{revision_refusal, store_kv, EtcdStore, Failure, RevisionRefusal};
use crate::store::input::check_revision;
use crate::store::watch_keys::WatchKeys;
use crate::store::watch_stream::{watch_channel, WatchSender};
use crate::store::{Error, Event, EventKind, Op, Result, WatchStream};

/// How long [`compacted_revision`] waits for etcd's answer (etcd checks unsynced watchers
/// every 100 ms). No answer means nothing past revision 1 is compacted.
const PROBE_WAIT: Duration = Duration::from_secs(2);

pub(super) async fn watch(
    store: &EtcdStore,
    keys: &WatchKeys,
    after_revision: i64,
) -> Result<WatchStream> {
    let prefix = keys.prefix.as_str();
    store.config.limits.check_prefix(Op::Watch, prefix)?;
    check_revision(Op::Watch, prefix, after_revision)?;
    if let Some(events) = store.hub.watch(store, keys, after_revision).await {
        return Ok(events);
    }
    let events = own_watch(store, prefix, after_revision).await?;
    Ok(match keys.name {
        None => events,
        Some(_) => {
            let keys = keys.clone();
            events.filter_events(move |event| keys.contains(&event.kv.key))
        }
    })
}

/// A watch of `prefix` on an etcd watch of its own.
async fn own_watch(store: &EtcdStore, prefix: &str, after_revision: i64) -> Result<WatchStream> {
    if after_revision > 0 {
        let options = GetOptions::new()
            .with_count_only()
            .with_revision(after_revision);
        let read = store.range(store.full("\0"), options).await;
        if let Err(failure) = read {
            // A future revision is fine: the watch waits for it.
            if revision_refusal(&failure) != Some(RevisionRefusal::Future) {
                return Err(store
                    .revision_error(Op::Watch, prefix, after_revision, failure)
                    .await);
            }
        }
    }
    let (start, end) = store.bounds(prefix);
    let options = WatchOptions::new()
        .with_range(end)
        .with_start_revision(after_revision + 1)
        .with_prev_key();
    let fail = |failure| store.error(Op::Watch, prefix, failure);
    let mut stream = store
        .call(&store.watcher, |mut client| {
            let (start, options) = (start.clone(), options.clone());
            async move { client.watch(start, Some(options)).await }
        })
        .await
        .map_err(fail)?;
    // etcd's first answer confirms the watch (or refuses it).
    let created = tokio::time::timeout(store.config.request_timeout, stream.message())
        .await
        .map_err(|_| fail(Failure::Timeout))?
        .map_err(|error| fail(Failure::Etcd(error)))?;
    let replay_until = match created {
        Some(response) if response.created() && !response.canceled() => {
            response.header().map_or(0, |header| header.revision())
        }
        Some(response) if response.compact_revision() > 0 => {
            return Err(Error::Compacted {
                op: Op::Watch,
                key: prefix.to_owned(),
                requested: after_revision,
                compacted_revision: response.compact_revision(),
            })
        }
        other => return Err(fail(ended(other.as_ref()))),
    };
    let (sender, events) = watch_channel(store.config.limits.watch_buffer);
    let feeder = Feeder {
        store: store.clone(),
        prefix: prefix.to_owned(),
        last_sent: after_revision,
        replay_until,
        queue: VecDeque::new(),
    };
    tokio::spawn(feeder.run(stream, sender));
    Ok(events)
}

/// The failure of a watch etcd canceled or closed.
pub(super) fn ended(response: Option<&WatchResponse>) -> Failure {
    let reason = match response {
        Some(response) if !response.cancel_reason().is_empty() => {
            format!("etcd canceled the watch: {}", response.cancel_reason())
        }
        Some(_) => "etcd canceled the watch".to_owned(),
        None => "etcd closed the watch stream".to_owned(),
    };
    Failure::Etcd(etcd_client::Error::WatchError(reason))
}

struct Feeder {
    store: EtcdStore,
    prefix: String,
    /// The revision of the last event handed to the consumer.
    last_sent: i64,
    /// The cluster's revision when the watch started: events up to it are history.
    replay_until: i64,
    /// Events from etcd the consumer has no room for yet.
    queue: VecDeque<Event>,
}

impl Feeder {
    async fn run(mut self, mut stream: etcd_client::WatchStream, sender: WatchSender) {
        let window = self.store.config.limits.watch_window;
        let end = loop {
            let behind = self.queue.len() > window;
            let live = self
                .queue
                .front()
                .is_some_and(|event| event.revision() > self.replay_until);
            if behind && live {
                // Cut off without the queue: the consumer sees a gap-free prefix, then this.
                sender.finish(Error::WatchTooSlow {
                    op: Op::Watch,
                    key: self.prefix.clone(),
                    window,
                    last_revision: self.last_sent,
                });
                return;
            }
            tokio::select! {
                permit = sender.reserve(), if !self.queue.is_empty() => {
                    let Ok(permit) = permit else { return };
                    if let Some(event) = self.queue.pop_front() {
                        self.last_sent = event.revision();
                        permit.send(event);
                    }
                }
                () = sender.consumer_gone(), if self.queue.is_empty() => return,
                message = stream.message(), if !behind => match message {
                    Ok(Some(response)) => {
                        if let Some(end) = self.take(&response) {
                            break end;
                        }
                    }
                    Ok(None) => break self.error(ended(None)),
                    Err(source) => break self.error(Failure::Etcd(source)),
                },
            }
        };
        // Everything etcd delivered before the end, then the end.
        for event in std::mem::take(&mut self.queue) {
            if sender.send(event).await.is_err() {
                return;
            }
        }
        sender.finish(end);
    }

    fn error(&self, failure: Failure) -> Error {
        self.store.error(Op::Watch, &self.prefix, failure)
    }

    /// Queues the events of one answer; the error that ends the watch, if it does.
    fn take(&mut self, response: &WatchResponse) -> Option<Error> {
        for event in response.events() {
            if let Some(event) = self.event(event) {
                self.queue.push_back(event);
            }
        }
        if response.compact_revision() > 0 {
            let requested = self.queue.back().map_or(self.last_sent, Event::revision);
            return Some(Error::Compacted {
                op: Op::Watch,
                key: self.prefix.clone(),
                requested,
                compacted_revision: response.compact_revision(),
            });
        }
        response
            .canceled()
            .then(|| self.error(ended(Some(response))))
    }

    fn event(&self, event: &etcd_client::Event) -> Option<Event> {
        store_event(&self.store.config.prefix, event)
    }
}

/// A store event from an etcd one, the store's root prefix `root` taken off its keys.
pub(super) fn store_event(root: &str, event: &etcd_client::Event) -> Option<Event> {
    let kv = event.kv()?;
    let prev = event.prev_kv().map(|prev| store_kv(root, prev));
    Some(match event.event_type() {
        EventType::Put => Event {
            kind: EventKind::Put,
            kv: store_kv(root, kv),
            prev,
        },
        EventType::Delete => {
            // The key's last value, at the revision of the delete.
            let mut last = prev.clone().unwrap_or_else(|| store_kv(root, kv));
            last.mod_revision = kv.mod_revision();
            Event {
                kind: EventKind::Delete,
                kv: last,
                prev,
            }
        }
    })
}

/// etcd's compacted revision (0 when nothing past revision 1 is compacted, or when etcd does
/// not answer): a watch from revision 1 on a key no store key can be is refused at once with
/// the compacted revision when there is one.
pub(super) async fn compacted_revision(store: &EtcdStore) -> i64 {
    let probe = async {
        let mut client = store.watcher.clone();
        let options = WatchOptions::new().with_start_revision(1);
        let mut stream = client.watch(store.full("\0"), Some(options)).await.ok()?;
        loop {
            let response = stream.message().await.ok()??;
            if response.compact_revision() > 0 {
                return Some(response.compact_revision());
            }
        }
    };
    tokio::time::timeout(PROBE_WAIT, probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}
