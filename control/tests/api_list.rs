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
