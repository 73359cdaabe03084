//! Lists: what a prefix covers, pagination, and pages forming one snapshot while writes go on.

use std::sync::Arc;

use bosun_control::store::{Limits, ListOptions};

use super::{bytes, list_all, state_at, within, Backend, Scribe};

pub async fn prefixes_cover_exactly_their_keys(backend: &impl Backend) {
    let store = backend.open("prefixes", Limits::default()).await;
    // Neighbours in byte order, SQL LIKE wildcards, and characters beyond ASCII.
    let keys = [
        "/a",
        "/a/",
        "/a/x",
        "/a/x/y",
        "/a0",
        "/ab",
        "/x%/1",
        "/x_/2",
        "/xy/3",
        "/é/1",
        "/\u{10ffff}/1",
    ];
    for key in keys {
        store.create(key, bytes(key)).await.unwrap();
    }
    let names = |prefix: &'static str| {
        let store = Arc::clone(&store);
        async move {
            let page = store.list(prefix, &ListOptions::default()).await.unwrap();
            let count = store.count(prefix).await.unwrap();
            let names: Vec<String> = page.items.into_iter().map(|kv| kv.key).collect();
            assert_eq!(count, names.len() as u64, "count of {prefix:?}");
            names
        }
    };
    assert_eq!(names("/a/").await, ["/a/", "/a/x", "/a/x/y"]);
    assert_eq!(names("/a/x").await, ["/a/x", "/a/x/y"]);
    assert_eq!(names("/x%").await, ["/x%/1"]);
    assert_eq!(names("/x_").await, ["/x_/2"]);
    assert_eq!(names("/é").await, ["/é/1"]);
    assert_eq!(names("/\u{10ffff}").await, ["/\u{10ffff}/1"]);
    assert!(names("/b").await.is_empty());
    let mut sorted = keys.to_vec();
    sorted.sort();
    assert_eq!(
        names("").await,
        sorted,
        "the empty prefix lists every key in byte order"
    );
    assert_eq!(names("/").await, sorted);
}

pub async fn limits_and_after_key_page_through_everything(backend: &impl Backend) {
    let store = backend.open("pages", Limits::default()).await;
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/pods/default/");
    for n in 0..25 {
        scribe.create(&format!("p{n:02}"), "x").await;
    }
    let expected: Vec<_> = scribe.live.values().cloned().collect();
    for limit in [0, 1, 7, 25, 26, 100] {
        let (items, _) = list_all(&*store, "/registry/pods/", limit).await;
        assert_eq!(items, expected, "pages of {limit}");
    }
    let first = store
        .list(
            "/registry/pods/",
            &ListOptions {
                limit: 25,
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(!first.more, "an exact last page has no more");
    let beyond = store
        .list(
            "/registry/pods/",
            &ListOptions {
                after_key: Some("/registry/pods/default/p24".into()),
                ..ListOptions::default()
            },
        )
        .await
        .unwrap();
    assert!(beyond.items.is_empty() && !beyond.more);
}

/// A paginated list reads every page at the first page's revision, while keys in the listed
/// range are created, changed and deleted between the pages and by a concurrent writer.
pub async fn list_pages_are_one_snapshot_while_writes_go_on(backend: &impl Backend) {
    const LIMIT: usize = 7;
    let store = backend.open("snapshot", Limits::default()).await;
    let prefix = "/registry/configmaps/";
    let mut scribe = Scribe::new(Arc::clone(&store), "/registry/configmaps/default/");
    for n in 0..60 {
        scribe.create(&format!("m{n:03}"), "v0").await;
    }

    let mut concurrent = Scribe::new(Arc::clone(&store), "/registry/configmaps/other/");
    let writer = tokio::spawn(async move {
        concurrent.churn(150, 0).await;
        concurrent
    });

    let mut options = ListOptions {
        limit: LIMIT,
        ..ListOptions::default()
    };
    let mut items = Vec::new();
    let mut snapshot = None;
    let mut pages = 0;
    loop {
        let page = store.list(prefix, &options).await.unwrap();
        pages += 1;
        assert_eq!(*snapshot.get_or_insert(page.revision), page.revision);
        assert!(page.items.len() <= LIMIT);
        items.extend(page.items.iter().cloned());
        if !page.more {
            break;
        }
        let last = page.items.last().unwrap().key.clone();
        // Change what the next pages will cover, and what this one covered.
        let ahead: Vec<String> = scribe
            .live
            .range(last.clone()..)
            .map(|(k, _)| k.clone())
            .collect();
        if let Some(next) = ahead.get(1) {
            scribe.update(next, &format!("after page {pages}")).await;
        }
        if let Some(later) = ahead.get(3) {
            scribe.delete(later).await;
        }
        scribe.create(&format!("m{:03}x", 60 + pages), "new").await;
        if scribe.live.contains_key(&last) {
            scribe.update(&last, "changed behind the list").await;
        }
        options.after_key = Some(last);
        options.revision = Some(page.revision);
    }
    let snapshot = snapshot.unwrap();
    let concurrent = within("the concurrent writer", writer).await.unwrap();

    let mut history = scribe.events.clone();
    history.extend(concurrent.events.iter().cloned());
    history.sort_by_key(|event| event.revision());
    let expected: Vec<_> = state_at(&history, snapshot).into_values().collect();
    assert_eq!(
        items, expected,
        "the pages are the state at revision {snapshot}"
    );
    assert!(pages > 60 / LIMIT, "the list took {pages} pages");
    assert!(
        scribe.events.last().unwrap().revision() > snapshot,
        "writes went on during the list"
    );
}
