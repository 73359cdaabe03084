//! The consumer side of a watch, the same for every backend: a bounded channel of events and
//! a slot for the reason the watch ended. A backend's feeder task holds the [`WatchSender`];
//! when it stops (the watcher fell behind, the store closed, a revision got compacted) it
//! leaves the reason in the slot and drops the sender, so the consumer first drains every
//! event already buffered — a prefix of the event sequence, never with a gap — and then sees
//! the error once. Dropping the [`WatchStream`] stops the feeder.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::error::{Error, Result};
use super::Event;

type EndSlot = Arc<Mutex<Option<Error>>>;

/// The events of one watch, in revision order. Ends with `Some(Err(_))` once when the store
/// ended the watch (then `None`), or with `None` alone.
#[derive(Debug)]
pub struct WatchStream {
    events: mpsc::Receiver<Event>,
    end: EndSlot,
}

/// The producer side of a [`WatchStream`], held by a backend's feeder.
#[derive(Debug)]
pub(crate) struct WatchSender {
    events: mpsc::Sender<Event>,
    end: EndSlot,
}

/// The consumer dropped its [`WatchStream`].
#[derive(Debug)]
pub(crate) struct ConsumerGone;

/// A watch channel buffering up to `buffer` events (at least one).
pub(crate) fn watch_channel(buffer: usize) -> (WatchSender, WatchStream) {
    let (tx, rx) = mpsc::channel(buffer.max(1));
    let end = EndSlot::default();
    (
        WatchSender {
            events: tx,
            end: end.clone(),
        },
        WatchStream { events: rx, end },
    )
}

impl WatchSender {
    /// Waits for room and sends; fails only when the consumer is gone.
    pub(crate) async fn send(&self, event: Event) -> Result<(), ConsumerGone> {
        self.events.send(event).await.map_err(|_| ConsumerGone)
    }

    /// Waits for room for one event; fails only when the consumer is gone. Cancel-safe, so a
    /// feeder can wait for room and for its source at once.
    pub(crate) async fn reserve(&self) -> Result<mpsc::Permit<'_, Event>, ConsumerGone> {
        self.events.reserve().await.map_err(|_| ConsumerGone)
    }

    /// Resolves when the consumer drops its stream.
    pub(crate) async fn consumer_gone(&self) {
        self.events.closed().await
    }

    /// Ends the watch with `error`, seen by the consumer after the buffered events.
    pub(crate) fn finish(self, error: Error) {
        *self.end.lock().unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

impl WatchStream {
    /// The next event, the error that ended the watch, or `None` after the end.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        match self.events.poll_recv(cx) {
            Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
            Poll::Ready(None) => {
                let end = self
                    .end
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take();
                Poll::Ready(end.map(Err))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}
