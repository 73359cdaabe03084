//! Watches through the in-process resource handler, for what kubectl cannot show within a
//! test's time: bookmarks, timeouts, selector transitions and 410 Gone after compaction.

mod handler;

use std::time::Duration;

use http::{Method, StatusCode};
use serde_json::{json, Value};

use handler::{api, events};

#[tokio::test(flavor = "multi_thread")]
async fn watches_start_with_existing_objects_follow_selectors_and_bookmark() {
    let api = api().await;
    api.create_cm("default", "a", json!({"app": "web"})).await;
    let watch = api
        .send(Method::GET, "/api/v1/namespaces/default/configmaps?watch=1&labelSelector=app%3Dweb&allowWatchBookmarks=true&timeoutSeconds=2", "", Vec::new())
        .await;
    let writer = async {
        tokio::time::sleep(Duration::from_millis(100)).await;
        api.create_cm("default", "b", json!({"app": "db"})).await; // not selected: never seen
        api.create_cm("default", "c", json!({"app": "web"})).await;
    };
    // The stream ends by itself after timeoutSeconds, well before the reader gives up.
    let started = std::time::Instant::now();
    let (seen, ()) = tokio::join!(events(watch, usize::MAX, Duration::from_secs(15)), writer);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the watch outlived its timeout"
    );
    let added: Vec<&str> = seen
        .iter()
        .filter(|e| e["type"] == "ADDED")
        .map(|e| e["object"]["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(added, ["a", "c"], "{seen:#?}");
    assert_eq!(seen[0]["type"], "ADDED", "existing objects come first");
    let c_rv = seen
        .iter()
        .find(|e| e["object"]["metadata"]["name"] == "c")
        .map(|e| e["object"]["metadata"]["resourceVersion"].clone())
        .unwrap();
    let last = seen.last().unwrap();
    assert_eq!(last["type"], "BOOKMARK", "{seen:#?}");
    assert_eq!(last["object"]["metadata"]["resourceVersion"], c_rv);
    assert_eq!(last["object"]["kind"], "ConfigMap");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_object_leaving_a_watchs_selector_is_deleted_for_it() {
    let api = api().await;
    let a = api.create_cm("default", "a", json!({"app": "web"})).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    let (code, _) = api
        .call_typed(
            Method::PATCH,
            "/api/v1/namespaces/default/configmaps/a",
            "application/merge-patch+json",
            br#"{"metadata":{"labels":{"app":"db"}}}"#.to_vec(),
        )
        .await;
    assert_eq!(code, StatusCode::OK);
    let watch = api
        .send(Method::GET, &format!("/api/v1/namespaces/default/configmaps?watch=true&labelSelector=app%3Dweb&resourceVersion={rv}&timeoutSeconds=1"), "", Vec::new())
        .await;
    let seen = events(watch, 1, Duration::from_secs(5)).await;
    assert_eq!(seen.len(), 1, "{seen:#?}");
    assert_eq!(seen[0]["type"], "DELETED");
    assert_eq!(seen[0]["object"]["metadata"]["labels"]["app"], "db");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_resource_version_ends_the_watch_with_410() {
    let api = api().await;
    let a = api.create_cm("default", "a", json!({})).await;
    let rv = a["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .to_owned();
    for i in 0..3 {
        api.create_cm("default", &format!("x{i}"), json!({})).await;
    }
    let now = api.state.store.revision().await.unwrap();
    api.state.store.compact(now).await.unwrap();
    let watch = api
        .send(
            Method::GET,
            &format!("/api/v1/configmaps?watch=1&resourceVersion={rv}"),
            "",
            Vec::new(),
        )
        .await;
    let seen = events(watch, 1, Duration::from_secs(5)).await;
    assert_eq!(seen[0]["type"], "ERROR", "{seen:#?}");
    assert_eq!(seen[0]["object"]["code"], 410);
    assert!(seen[0]["object"]["message"]
        .as_str()
        .unwrap()
        .contains("too old resource version"));
    // A list page at a compacted revision (a stale continue token) is 410 too.
    use base64::Engine;
    let token = json!({"v": "meta.k8s.io/v1", "rv": rv.parse::<i64>().unwrap(), "start": "/registry/core/configmaps/default/a"});
    let token = base64::engine::general_purpose::URL_SAFE.encode(token.to_string());
    let (code, status) = api
        .call(
            Method::GET,
            &format!("/api/v1/configmaps?limit=1&continue={token}"),
            Value::Null,
        )
        .await;
    assert_eq!(code, StatusCode::GONE, "{status}");
}

/// Watches showing an event alike share one rendering of its object: each still gets its own
/// version's shape (an HPA at autoscaling/v1 and at v2), the right event type and
/// resourceVersion.
#[tokio::test(flavor = "multi_thread")]
async fn watches_of_two_versions_each_see_their_version_of_one_write() {
    const WATCHES: usize = 8;
    let api = api().await;
    let base = "/apis/autoscaling/{v}/namespaces/default/horizontalpodautoscalers";
    let open = |version: &'static str| {
        let api = &api;
        async move {
            let uri = format!("{}?watch=1&timeoutSeconds=2", base.replace("{v}", version));
            api.send(Method::GET, &uri, "", Vec::new()).await
        }
    };
    let mut watches = Vec::new();
    for i in 0..WATCHES {
        watches.push(open(if i % 2 == 0 { "v1" } else { "v2" }).await);
    }
    let hpa = json!({
        "apiVersion": "autoscaling/v1",
        "kind": "HorizontalPodAutoscaler",
        "metadata": {"name": "web"},
        "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "minReplicas": 1,
            "maxReplicas": 4,
            "targetCPUUtilizationPercentage": 60
        }
    });
    let (code, created) = api
        .call(Method::POST, &base.replace("{v}", "v1"), hpa)
        .await;
    assert_eq!(code, StatusCode::CREATED, "{created}");
    let rv = created["metadata"]["resourceVersion"].clone();
    let seen = futures::future::join_all(
        watches
            .into_iter()
            .map(|watch| events(watch, 1, Duration::from_secs(10))),
    )
    .await;
    for (i, seen) in seen.iter().enumerate() {
        let event = &seen[0];
        assert_eq!(event["type"], "ADDED", "{event}");
        let object = &event["object"];
        assert_eq!(object["metadata"]["resourceVersion"], rv);
        if i % 2 == 0 {
            assert_eq!(object["apiVersion"], "autoscaling/v1", "{object}");
            assert_eq!(object["spec"]["targetCPUUtilizationPercentage"], 60);
        } else {
            assert_eq!(object["apiVersion"], "autoscaling/v2", "{object}");
            let target = &object["spec"]["metrics"][0]["resource"]["target"];
            assert_eq!(target["averageUtilization"], 60, "{object}");
        }
    }
}
