//! Lists through the resource handler on a real embedded store: a list of more objects than
//! one store read is whole, filtered and one snapshot while writers go on.

mod handler;

use std::sync::Arc;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use handler::api;

/// A list of more objects than the handler reads from the store at a time is whole, in key
/// order, filtered by its selector and one snapshot: objects created after its first read are
/// not in it, and its resourceVersion is that of the first read.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_longer_than_a_store_read_is_one_whole_snapshot() {
    const OBJECTS: usize = 2_345;
    let api = Arc::new(api().await);
    for n in 0..OBJECTS {
        let labels = json!({"parity": if n % 2 == 0 { "even" } else { "odd" }});
        api.create_cm("default", &format!("cm-{n:05}"), labels)
            .await;
    }
    let before: i64 = {
        let (_, list) = api
            .call(
                Method::GET,
                "/api/v1/namespaces/default/configmaps?limit=1",
                Value::Null,
            )
            .await;
        list["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap()
    };
    let writing = Arc::clone(&api);
    let writer = tokio::spawn(async move {
        let api = writing;
        for n in 0..50 {
            api.create_cm(
                "default",
                &format!("late-{n:02}"),
                json!({"parity": "even"}),
            )
            .await;
        }
    });
    let (code, list) = api
        .call(
            Method::GET,
            "/api/v1/namespaces/default/configmaps?labelSelector=parity%3Deven",
            Value::Null,
        )
        .await;
    writer.await.unwrap();
    assert_eq!(code, StatusCode::OK);
    assert_eq!(list["kind"], "ConfigMapList");
    let revision: i64 = list["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(revision >= before);
    let names: Vec<&str> = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["metadata"]["name"].as_str().unwrap())
        .collect();
    let late = names.iter().filter(|n| n.starts_with("late-")).count();
    let expected: Vec<String> = (0..OBJECTS)
        .step_by(2)
        .map(|n| format!("cm-{n:05}"))
        .chain((0..late).map(|n| format!("late-{n:02}")))
        .collect();
    assert_eq!(names, expected, "every even object once, in key order");
    // The late objects in the list are exactly those written by the list's revision.
    for item in list["items"].as_array().unwrap() {
        let rv: i64 = item["metadata"]["resourceVersion"]
            .as_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(rv <= revision, "{item}");
    }
}

/// A list of everything whose revision the compactor passes between two store reads starts
/// again on a newer snapshot: the client gets the whole list, never a 410 it did not ask for.
#[tokio::test(flavor = "multi_thread")]
async fn a_list_outlived_by_its_revision_starts_again() {
    const OBJECTS: usize = 2_345;
    let api = Arc::new(api().await);
    for n in 0..OBJECTS {
        api.create_cm("default", &format!("cm-{n:05}"), json!({}))
            .await;
    }
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (churning, stopped) = (Arc::clone(&api), Arc::clone(&stop));
    let churn = tokio::spawn(async move {
        let store = Arc::clone(&churning.state.store);
        let mut n = 0;
        while !stopped.load(std::sync::atomic::Ordering::Relaxed) {
            churning
                .create_cm("default", &format!("z-{n:06}"), json!({}))
                .await;
            // Like the compactor (every 60 s, keeping 1000 revisions) on a busy store, but
            // every 200 ms and keeping none: it passes most lists in flight at least once.
            if n % 20 == 0 {
                let revision = store.revision().await.unwrap();
                store.compact(revision).await.unwrap();
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            n += 1;
        }
        n
    });
    for _ in 0..20 {
        let (code, list) = api
            .call(
                Method::GET,
                "/api/v1/namespaces/default/configmaps",
                Value::Null,
            )
            .await;
        assert_eq!(code, StatusCode::OK, "{list}");
        let items = list["items"].as_array().unwrap();
        let ours: Vec<&str> = items
            .iter()
            .filter_map(|o| o["metadata"]["name"].as_str())
            .filter(|name| name.starts_with("cm-"))
            .collect();
        assert_eq!(ours.len(), OBJECTS, "the whole list");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let churned = churn.await.unwrap();
    assert!(churned > 0, "the compactor ran during the lists");
}
