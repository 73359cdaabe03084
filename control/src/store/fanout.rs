//! The live events of a store routed to the watches whose keys hold them ([`WatchKeys`]: a
//! prefix, perhaps narrowed to one name) — as kube-apiserver's watch cache dispatches each
//! event to the watchers it concerns. A write wakes only the watches of its key: with one
//! shared broadcast, every write woke every watch of the process (each informer, mirror, the
//! garbage collector, every client watch), each to drop what was not its.
//!
//! Each subscription holds at most a window of events not yet taken: one that falls that far
//! behind is dropped from the fanout and, once it has taken what it holds, sees
//! [`Missed::Lagged`] — writers never wait for readers. Dropping the fanout ends every
//! subscription once it has taken what it holds. Not locked itself: the hubs keep it under
//! the lock that orders their events.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc::{self, error::TrySendError};

use super::watch_keys::WatchKeys;
use super::Event;

/// The subscriptions of a hub, by keys.
#[derive(Debug)]
pub(crate) struct Fanout {
    subscribers: Vec<Subscriber>,
    window: usize,
}

#[derive(Debug)]
struct Subscriber {
    keys: WatchKeys,
    sender: mpsc::Sender<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

/// The live events of one watch's keys, in revision order.
#[derive(Debug)]
pub(crate) struct Subscription {
    events: mpsc::Receiver<Arc<Event>>,
    lagged: Arc<AtomicBool>,
}

/// Why a subscription has no more events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Missed {
    /// It fell a window behind: events after the ones it took are missing.
    Lagged,
    /// The fanout is gone (its hub ended): nothing more comes.
    Closed,
}

impl Subscription {
    /// The next event, once one comes.
    #[cfg(test)]
    pub async fn recv(&mut self) -> Result<Arc<Event>, Missed> {
        self.events.recv().await.ok_or_else(|| self.missed())
    }

    /// The next event if one is there, else `Pending` with `cx` woken when one comes.
    pub fn poll_recv(
        &mut self,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<Arc<Event>, Missed>> {
        self.events
            .poll_recv(cx)
            .map(|event| event.ok_or_else(|| self.missed()))
    }

    /// Whether it fell a window behind (it may still hold events before the gap).
    pub fn lagged(&self) -> bool {
        self.lagged.load(Ordering::Acquire)
    }

    fn missed(&self) -> Missed {
        match self.lagged() {
            true => Missed::Lagged,
            false => Missed::Closed,
        }
    }
}

impl Fanout {
    /// A fanout whose subscriptions each hold at most `window` events.
    pub fn new(window: usize) -> Fanout {
        Fanout {
            subscribers: Vec::new(),
            window: window.max(1),
        }
    }

    /// The events sent from now on whose key `keys` holds.
    pub fn subscribe(&mut self, keys: WatchKeys) -> Subscription {
        let (sender, events) = mpsc::channel(self.window);
        let lagged = Arc::new(AtomicBool::new(false));
        self.subscribers.push(Subscriber {
            keys,
            sender,
            lagged: Arc::clone(&lagged),
        });
        Subscription { events, lagged }
    }

    /// Hands `event` to each subscription of its key; forgets the ones gone or a window
    /// behind.
    pub fn send(&mut self, event: &Arc<Event>) {
        let key = &event.kv.key;
        self.subscribers.retain(|subscriber| {
            if !subscriber.keys.contains(key) {
                return !subscriber.sender.is_closed();
            }
            match subscriber.sender.try_send(Arc::clone(event)) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    subscriber.lagged.store(true, Ordering::Release);
                    false
                }
                Err(TrySendError::Closed(_)) => false,
            }
        });
    }

    /// Subscriptions still fed.
    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.subscribers.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(key: &str, revision: i64) -> Arc<Event> {
        Arc::new(Event::created(key, revision))
    }

    #[tokio::test]
    async fn each_subscription_gets_only_its_prefix_in_order() {
        let mut fanout = Fanout::new(8);
        let mut pods = fanout.subscribe(WatchKeys::under("/registry/pods/"));
        let mut everything = fanout.subscribe(WatchKeys::under("/registry/"));
        for (key, revision) in [
            ("/registry/pods/a/p1", 2),
            ("/registry/configmaps/a/c", 3),
            ("/registry/pods/b/p2", 4),
        ] {
            fanout.send(&event(key, revision));
        }
        drop(fanout);
        let mut got = Vec::new();
        while let Ok(event) = pods.recv().await {
            got.push(event.revision());
        }
        assert_eq!(got, [2, 4]);
        assert_eq!(pods.recv().await.err(), Some(Missed::Closed));
        let mut all = Vec::new();
        while let Ok(event) = everything.recv().await {
            all.push(event.revision());
        }
        assert_eq!(all, [2, 3, 4]);
        assert!(!everything.lagged());
    }

    #[tokio::test]
    async fn a_named_subscription_holds_only_that_name_and_never_lags_on_others() {
        let mut fanout = Fanout::new(2);
        let mut named = fanout.subscribe(WatchKeys::named("/registry/configmaps/", "root"));
        // Many more writes of other names than its window: none is queued for it.
        for revision in 1..=10 {
            fanout.send(&event(
                &format!("/registry/configmaps/a/cm-{revision}"),
                revision,
            ));
        }
        fanout.send(&event("/registry/configmaps/a/root", 11));
        fanout.send(&event("/registry/secrets/a/root", 12));
        fanout.send(&event("/registry/configmaps/b/root", 13));
        assert_eq!(fanout.len(), 1);
        drop(fanout);
        let mut got = Vec::new();
        while let Ok(event) = named.recv().await {
            got.push(event.revision());
        }
        assert_eq!(got, [11, 13]);
        assert!(!named.lagged());
    }

    #[tokio::test]
    async fn a_subscription_a_window_behind_is_dropped_after_what_it_holds() {
        let mut fanout = Fanout::new(2);
        let mut slow = fanout.subscribe(WatchKeys::under("/k"));
        let other = fanout.subscribe(WatchKeys::under("/other"));
        for revision in 1..=3 {
            fanout.send(&event("/k", revision));
        }
        assert_eq!(fanout.len(), 1, "the slow one is gone, the other stays");
        assert!(slow.lagged() && !other.lagged());
        assert_eq!(slow.recv().await.map(|e| e.revision()), Ok(1));
        assert_eq!(slow.recv().await.map(|e| e.revision()), Ok(2));
        assert_eq!(slow.recv().await.err(), Some(Missed::Lagged));
        // A dropped subscription is forgotten at the next event, whatever its key.
        drop(other);
        fanout.send(&event("/k", 4));
        assert_eq!(fanout.len(), 0);
    }
}
