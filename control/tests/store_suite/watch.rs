//! Watches: event contents, replay of history followed by live events, watches set up while
//! writes race with them, and slow watchers.

use std::sync::Arc;

use bosun_control::store::{Error, EventKind, Limits, Op};

use super::{bytes, next_event, next_events, within, Backend, Scribe};

pub async fn watch_events_carry_previous_values(backend: &impl Backend) {
    let store = backend.open("events", Limits::default()).await;
    let start = store.revision().await.unwrap();
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/services/default/");
    let key = "/registry/services/default/a";
    let v1 = scribe.create("a", "1").await;
    let v2 = scribe.update(key, "2").await;
    // Outside the watched prefix.
    store
        .create("/registry/servicesx/a", bytes("no"))
        .await
        .unwrap();
    let deleted = scribe.delete(key).await;
    let v3 = scribe.create("a", "3").await;

    let mut watch = store.watch("/registry/services/", start).await.unwrap();
    let events = next_events(&mut watch, 4).await;
    assert_eq!(events, scribe.events);
    assert_eq!(events[0].kind, EventKind::Put);
    assert_eq!(events[0].prev, None);
    assert_eq!(events[1].prev.as_ref(), Some(&v1));
    assert_eq!(events[1].kv, v2);
    assert_eq!(events[2].kind, EventKind::Delete);
    assert_eq!(
        events[2].kv.value,
        bytes("2"),
        "a delete carries the last value"
    );
    assert_eq!(events[2].revision(), deleted.revision);
    assert_eq!(events[2].prev.as_ref(), Some(&v2));
    assert_eq!(events[3].kv, v3);
    assert_eq!(
        events[3].prev, None,
        "a create after a delete has no previous value"
    );

    let v4 = scribe.update(key, "4").await;
    let live = next_event(&mut watch).await;
    assert_eq!(live.kv, v4);
    assert_eq!(live.prev, Some(v3));
}

pub async fn watch_replays_history_then_streams_live_writes(backend: &impl Backend) {
    let store = backend.open("replay", Limits::default()).await;
    let start = store.revision().await.unwrap();
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/pods/default/");
    scribe.churn(40, 0).await;
    let mut noise = Scribe::new(Arc::clone(&store), "/registry/podtemplates/default/");
    noise.churn(10, 0).await;

    let mut watch = store.watch("/registry/pods/", start).await.unwrap();
    let writer = tokio::spawn(async move {
        scribe.churn(60, 40).await;
        noise.churn(20, 10).await;
        scribe.churn(20, 100).await;
        scribe
    });
    let events = next_events(&mut watch, 120).await;
    let mut scribe = within("the writer", writer).await.unwrap();
    assert_eq!(
        events, scribe.events,
        "history, then live, in revision order"
    );

    // Nothing else was delivered in between: the next event is the next write.
    scribe.create("marker", "end").await;
    assert_eq!(next_event(&mut watch).await, *scribe.events.last().unwrap());
}

/// Watches started at revisions sampled while a writer runs each see exactly the writes after
/// their revision: the hand-over from replay to live events loses and repeats nothing.
pub async fn watch_started_during_writes_has_no_gap_or_duplicate(backend: &impl Backend) {
    const WATCHES: usize = 6;
    let store = backend.open("racing", Limits::default()).await;
    let start = store.revision().await.unwrap();
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/pods/ns/");
    let mut noise = Scribe::new(Arc::clone(&store), "/registry/endpoints/ns/");
    let writer = tokio::spawn(async move {
        scribe.churn(300, 0).await;
        scribe
    });
    let noisy = tokio::spawn(async move { noise.churn(100, 0).await });

    let mut watches = vec![(start, store.watch("/registry/pods/", start).await.unwrap())];
    for _ in 1..WATCHES {
        // Let the writers get ahead, then watch from wherever the store is now.
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
        let from = store.revision().await.unwrap();
        watches.push((from, store.watch("/registry/pods/", from).await.unwrap()));
    }
    let mut scribe = within("the writer", writer).await.unwrap();
    within("the noise", noisy).await.unwrap();
    scribe.create("marker", "end").await;

    for (from, mut watch) in watches {
        let expected = scribe.events_after(from);
        let seen = next_events(&mut watch, expected.len()).await;
        assert_eq!(seen, expected, "watch from revision {from}");
    }
}

/// A watch from a revision the store has not reached yet delivers only what comes after it.
pub async fn watch_from_a_future_revision_waits_for_it(backend: &impl Backend) {
    let store = backend.open("future-watch", Limits::default()).await;
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/nodes/");
    scribe.churn(3, 0).await;
    let from = store.revision().await.unwrap() + 5;
    let mut watch = store.watch("/registry/nodes/", from).await.unwrap();
    scribe.churn(10, 3).await;
    let expected = scribe.events_after(from);
    assert!(
        !expected.is_empty() && expected.len() < 10,
        "{} events",
        expected.len()
    );
    assert_eq!(next_events(&mut watch, expected.len()).await, expected);
}

/// A watcher whose consumer stops reading is closed with an error it sees after the events it
/// was already given (a gap-free prefix), while the writers never wait for it; watching again
/// from its last revision delivers the rest.
pub async fn slow_watcher_is_cut_off_and_writers_go_on(backend: &impl Backend) {
    const WRITES: usize = 100;
    let limits = Limits {
        watch_buffer: 4,
        watch_window: 16,
        ..Limits::default()
    };
    let store = backend.open("slow-watcher", limits).await;
    let prefix = "/registry/events/default/";
    let mut scribe = Scribe::new(Arc::clone(&store), prefix);
    let start = store.revision().await.unwrap();
    let mut watch = store.watch(prefix, start).await.unwrap();
    // One event read: the watch is live.
    scribe.create("first", "1").await;
    assert_eq!(next_event(&mut watch).await, scribe.events[0]);

    // The consumer reads nothing while the writers go on; every write completes.
    for step in 0..WRITES {
        scribe.create(&format!("e{step:03}"), "x").await;
    }
    assert_eq!(scribe.events.len(), WRITES + 1);

    let mut delivered = Vec::new();
    let error = loop {
        match within("the slow watcher's end", watch.next()).await {
            Some(Ok(event)) => delivered.push(event),
            Some(Err(error)) => break error,
            None => panic!("the watch ended without an error"),
        }
    };
    match &error {
        Error::WatchTooSlow {
            op: Op::Watch,
            key,
            last_revision,
            ..
        } => {
            assert_eq!(key, prefix);
            let last = delivered.last().unwrap_or(&scribe.events[0]).revision();
            assert_eq!(*last_revision, last);
        }
        other => panic!("expected WatchTooSlow, got {other}"),
    }
    assert!(delivered.len() < WRITES, "the watcher was cut off early");
    assert_eq!(
        delivered,
        scribe.events[1..=delivered.len()],
        "no gap before the cut"
    );
    assert!(within("the end of the watch", watch.next()).await.is_none());

    // The client watches again from what it has and gets the rest.
    let resume = delivered.last().unwrap_or(&scribe.events[0]).revision();
    let mut again = store.watch(prefix, resume).await.unwrap();
    let expected = scribe.events_after(resume);
    assert_eq!(next_events(&mut again, expected.len()).await, expected);
}

/// A watch of one name sees that name's writes in every namespace, past then live, and none
/// of the others under its prefix: they are not even queued for it, so many more of them
/// than its window, unread, do not cut it off as they cut off a watch of the whole prefix.
pub async fn named_watch_sees_only_its_name_and_is_not_held_up_by_others(backend: &impl Backend) {
    const OTHERS: usize = 60;
    let limits = Limits {
        watch_buffer: 4,
        watch_window: 16,
        ..Limits::default()
    };
    let store = backend.open("named-watch", limits).await;
    let prefix = "/registry/configmaps/";
    let start = store.revision().await.unwrap();
    let mut a = Scribe::new(Arc::clone(&store), "/registry/configmaps/a/");
    let mut b = Scribe::new(Arc::clone(&store), "/registry/configmaps/b/");
    let mut not_it = Scribe::new(Arc::clone(&store), "/registry/configmaps/a/");
    let mut other_kind = Scribe::new(Arc::clone(&store), "/registry/secrets/a/");
    a.create("root", "1").await;
    not_it.create("root-2", "x").await;
    not_it.create("pre-root", "x").await;
    other_kind.create("root", "x").await;
    b.create("root", "1").await;
    a.update("/registry/configmaps/a/root", "2").await;

    let mut named = store.watch_named(prefix, "root", start).await.unwrap();
    let mut whole = store.watch(prefix, start).await.unwrap();
    let mut past = a.events[..1].to_vec();
    past.push(b.events[0].clone());
    past.push(a.events[1].clone());
    assert_eq!(
        next_events(&mut named, 3).await,
        past,
        "the history of the name"
    );
    // The whole prefix's watch took its history too: both are live.
    assert_eq!(next_events(&mut whole, 5).await.len(), 5);

    // Unread, both watches meet many more writes of other names than their window.
    for step in 0..OTHERS {
        not_it.create(&format!("cm-{step:03}"), "x").await;
    }
    let deleted = b.delete("/registry/configmaps/b/root").await;
    assert_eq!(
        next_event(&mut named).await,
        super::delete_event(&deleted),
        "the live delete of the name, with nothing between"
    );
    a.create("other", "x").await;
    let again = b.create("root", "3").await;
    assert_eq!(next_event(&mut named).await.kv, again);

    // The watch of the whole prefix held every write for its consumer, and was cut off.
    let error = loop {
        match within("the whole prefix's watch", whole.next()).await {
            Some(Ok(_)) => {}
            Some(Err(error)) => break error,
            None => panic!("the watch ended without an error"),
        }
    };
    assert!(
        matches!(error, Error::WatchTooSlow { .. }),
        "the whole prefix's watch: {error}"
    );
}
