//! The consumer side of a watch, the same for every backend: a bounded channel of events and
//! a slot for the reason the watch ended. A backend's feeder task holds the [`WatchSender`];
//! when it stops (the watcher fell behind, the store closed, a revision got compacted) it
//! leaves the reason in the slot and drops the sender, so the consumer first drains every
//! event already buffered — a prefix of the event sequence, never with a gap — and then sees
//! the error once. Dropping the [`WatchStream`] stops the feeder.
//!
//! A backend that can hand events over without a task of its own between it and the
//! consumer gives the stream an [`EventSource`] polled by the consumer's task itself (both
//! hubs' watches; the channel stays for etcd watches of their own), and a wrapping store changes events as they are taken
//! ([`WatchStream::map_events`]) rather than through another task: each task between a write
//! and its watcher is one more thread wake-up per event and watch.

use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::mpsc;

use super::error::{Error, Result};
use super::Event;

type EndSlot = Arc<Mutex<Option<Error>>>;

/// The events of one watch, in revision order. Ends with `Some(Err(_))` once when the store
/// ended the watch (then `None`), or with `None` alone.
pub struct WatchStream {
    source: Source,
}

enum Source {
    /// Fed by a backend's task through [`WatchSender`].
    Channel {
        events: mpsc::Receiver<Event>,
        end: EndSlot,
    },
    /// Polled directly.
    Direct(Box<dyn EventSource>),
}

impl std::fmt::Debug for WatchStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let kind = match self.source {
            Source::Channel { .. } => "channel",
            Source::Direct(_) => "direct",
        };
        f.debug_struct("WatchStream")
            .field("source", &kind)
            .finish()
    }
}

/// Events polled by the consumer's own task, with a [`WatchStream`]'s contract: in revision
/// order, then at most one error, then `None` for good.
pub(crate) trait EventSource: Send {
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>>;
}

/// A stream's events changed by a function as they are taken; its first error ends it.
struct Mapped<F> {
    inner: WatchStream,
    map: F,
    ended: bool,
}

impl<F> EventSource for Mapped<F>
where
    F: FnMut(Event) -> Result<Event> + Send,
{
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        if self.ended {
            return Poll::Ready(None);
        }
        let next = match std::task::ready!(self.inner.poll_event(cx)) {
            Some(Ok(event)) => (self.map)(event),
            Some(Err(error)) => Err(error),
            None => return Poll::Ready(None),
        };
        self.ended = next.is_err();
        Poll::Ready(Some(next))
    }
}

/// A stream's events that `keep` keeps; the others are skipped as they are taken.
struct Filtered<F> {
    inner: WatchStream,
    keep: F,
}

impl<F> EventSource for Filtered<F>
where
    F: FnMut(&Event) -> bool + Send,
{
    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        loop {
            match std::task::ready!(self.inner.poll_event(cx)) {
                Some(Ok(event)) if !(self.keep)(&event) => continue,
                other => return Poll::Ready(other),
            }
        }
    }
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
        WatchStream {
            source: Source::Channel { events: rx, end },
        },
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
    /// A stream of `source`'s events, polled by the consumer.
    pub(crate) fn direct(source: impl EventSource + 'static) -> WatchStream {
        WatchStream {
            source: Source::Direct(Box::new(source)),
        }
    }

    /// This stream with each event passed through `map` when taken; an error from `map` ends
    /// the watch with it.
    pub(crate) fn map_events<F>(self, map: F) -> WatchStream
    where
        F: FnMut(Event) -> Result<Event> + Send + 'static,
    {
        WatchStream::direct(Mapped {
            inner: self,
            map,
            ended: false,
        })
    }

    /// This stream without the events `keep` refuses (its errors all pass).
    pub(crate) fn filter_events<F>(self, keep: F) -> WatchStream
    where
        F: FnMut(&Event) -> bool + Send + 'static,
    {
        WatchStream::direct(Filtered { inner: self, keep })
    }

    /// The next event, the error that ended the watch, or `None` after the end.
    pub async fn next(&mut self) -> Option<Result<Event>> {
        std::future::poll_fn(|cx| self.poll_event(cx)).await
    }

    fn poll_event(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<Event>>> {
        match &mut self.source {
            Source::Direct(source) => source.poll_event(cx),
            Source::Channel { events, end } => match events.poll_recv(cx) {
                Poll::Ready(Some(event)) => Poll::Ready(Some(Ok(event))),
                Poll::Ready(None) => {
                    let end = end.lock().unwrap_or_else(PoisonError::into_inner).take();
                    Poll::Ready(end.map(Err))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}

impl futures::Stream for WatchStream {
    type Item = Result<Event>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.get_mut().poll_event(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Op;

    #[tokio::test]
    async fn a_filtered_stream_skips_refused_events_and_keeps_the_end() {
        let (sender, stream) = watch_channel(8);
        for (key, revision) in [("/a/x", 1), ("/a/y", 2), ("/a/x", 3), ("/a/z", 4)] {
            sender.send(Event::created(key, revision)).await.unwrap();
        }
        sender.finish(Error::Closed {
            op: Op::Watch,
            key: "/a/".to_owned(),
        });
        let mut filtered = stream.filter_events(|event| event.kv.key != "/a/y");
        let mut revisions = Vec::new();
        let end = loop {
            match filtered.next().await {
                Some(Ok(event)) => revisions.push(event.revision()),
                Some(Err(error)) => break error,
                None => panic!("the end's error was lost"),
            }
        };
        assert_eq!(revisions, [1, 3, 4]);
        assert!(matches!(end, Error::Closed { .. }), "{end}");
        assert!(filtered.next().await.is_none());
    }
}
