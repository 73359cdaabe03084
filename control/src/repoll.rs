//! [`Repoll`]: polls a future again at once when it woke its own task during the poll, instead
//! of leaving the wake-up to tokio.
//!
//! An HTTP connection's task runs the request's handler inside hyper's dispatcher, so the two
//! wake each other while the task runs: the handler reading the request body wakes the
//! dispatcher that feeds it, the dispatcher closing the body wakes the handler. tokio sees a
//! task notified while it runs and reschedules it as a yield, which also wakes a parked worker
//! thread to steal it — on a small machine that thread preempts etcd or the client for work
//! the running thread was about to do. Measured with a create over etcd: about half the
//! requests paid such a wake-up, a third of the control's context switches.
//!
//! The adapter hands the future a waker of its own. A wake-up during the poll only marks it,
//! and the future is polled again at once, at most [`REPOLLS`] times per poll (a future that
//! keeps waking itself, as one out of tokio's cooperative budget does, is then rescheduled the
//! usual way). A wake-up between polls wakes the task as before.

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};

use futures::task::AtomicWaker;

/// Polls of the inner future per poll of [`Repoll`].
const REPOLLS: usize = 4;

/// `future`, polled again when it woke itself during its poll.
pub struct Repoll<F> {
    inner: Pin<Box<F>>,
    signal: Arc<Signal>,
    waker: Waker,
}

impl<F: Future> Repoll<F> {
    pub fn new(future: F) -> Self {
        let signal = Arc::new(Signal::default());
        Self {
            inner: Box::pin(future),
            waker: Waker::from(Arc::clone(&signal)),
            signal,
        }
    }
}

#[derive(Default)]
struct Signal {
    /// The inner future is being polled.
    polling: AtomicBool,
    /// A wake-up since the current poll began.
    woken: AtomicBool,
    /// The task's own waker, as of the last poll.
    task: AtomicWaker,
}

impl Wake for Signal {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Marked first, then checked: either the poller, clearing `polling` and then reading
        // `woken`, sees the mark and polls again, or this sees the poll over and wakes the
        // task (both at worst: one spare wake-up). Never neither.
        self.woken.store(true, SeqCst);
        if !self.polling.load(SeqCst) {
            self.task.wake();
        }
    }
}

impl<F: Future> Future for Repoll<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.get_mut();
        this.signal.task.register(cx.waker());
        let mut inner_cx = Context::from_waker(&this.waker);
        for _ in 0..REPOLLS {
            this.signal.woken.store(false, SeqCst);
            this.signal.polling.store(true, SeqCst);
            let polled = this.inner.as_mut().poll(&mut inner_cx);
            this.signal.polling.store(false, SeqCst);
            if polled.is_ready() {
                return polled;
            }
            if !this.signal.woken.swap(false, SeqCst) {
                return Poll::Pending;
            }
        }
        // Still waking itself: rescheduled as it asked.
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;
    use std::time::Duration;

    /// A waker counting its wake-ups: the task's own.
    #[derive(Default)]
    struct Counting(AtomicUsize);

    impl Wake for Counting {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, SeqCst);
        }
    }

    /// Wakes itself during each of its first `self_wakes` polls, then is ready; counts polls.
    struct WakesItself {
        self_wakes: usize,
        polls: usize,
    }

    impl Future for WakesItself {
        type Output = usize;

        fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
            self.polls += 1;
            if self.polls > self.self_wakes {
                return Poll::Ready(self.polls);
            }
            cx.waker().wake_by_ref();
            Poll::Pending
        }
    }

    fn poll_once<F: Future>(future: &mut Repoll<F>, task: &Arc<Counting>) -> Poll<F::Output> {
        let waker = Waker::from(Arc::clone(task));
        Pin::new(future).poll(&mut Context::from_waker(&waker))
    }

    #[test]
    fn a_wake_up_during_the_poll_is_polled_through_without_waking_the_task() {
        let task = Arc::new(Counting::default());
        let mut future = Repoll::new(WakesItself {
            self_wakes: 2,
            polls: 0,
        });
        assert_eq!(poll_once(&mut future, &task), Poll::Ready(3));
        assert_eq!(task.0.load(SeqCst), 0);
    }

    #[test]
    fn a_future_that_keeps_waking_itself_is_rescheduled_after_the_repolls() {
        let task = Arc::new(Counting::default());
        let mut future = Repoll::new(WakesItself {
            self_wakes: usize::MAX,
            polls: 0,
        });
        assert!(poll_once(&mut future, &task).is_pending());
        assert_eq!(future.inner.polls, REPOLLS);
        assert_eq!(task.0.load(SeqCst), 1);
    }

    #[test]
    fn a_wake_up_between_polls_wakes_the_task() {
        let task = Arc::new(Counting::default());
        let (send, receive) = futures::channel::oneshot::channel::<u8>();
        let mut future = Repoll::new(receive);
        assert!(poll_once(&mut future, &task).is_pending());
        assert_eq!(task.0.load(SeqCst), 0);
        send.send(7).unwrap();
        assert_eq!(task.0.load(SeqCst), 1);
        assert_eq!(poll_once(&mut future, &task), Poll::Ready(Ok(7)));
    }

    #[test]
    fn no_wake_up_from_another_thread_is_lost() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_time()
            .build()
            .unwrap();
        runtime.block_on(async {
            for round in 0..2000 {
                let (send, receive) = tokio::sync::oneshot::channel::<usize>();
                let waiting = tokio::spawn(Repoll::new(receive));
                // Sends at varying moments: before, while and after the task polls.
                let sender = std::thread::spawn(move || {
                    for _ in 0..(round % 64) * 40 {
                        std::hint::spin_loop();
                    }
                    send.send(round)
                });
                let got = tokio::time::timeout(Duration::from_secs(10), waiting).await;
                assert_eq!(got.expect("a lost wake-up").unwrap(), Ok(round));
                sender.join().unwrap().unwrap();
            }
        });
    }
}
