use super::*;

fn pod(name: &str, ready: bool, owner: Option<(&str, &str)>) -> Arc<Value> {
    let refs = owner.map(|(kind, name)| json!([{"kind": kind, "name": name, "controller": true}]));
    Arc::new(json!({
        "metadata": {"name": name, "namespace": "default", "labels": {"app": "web"},
                     "ownerReferences": refs.unwrap_or(Value::Null)},
        "status": {"conditions": [{"type": "Ready", "status": if ready {"True"} else {"False"}}]},
    }))
}

fn budget(spec: Value) -> Value {
    let mut spec = spec;
    spec["selector"] = json!({"matchLabels": {"app": "web"}});
    json!({"metadata": {"name": "b", "namespace": "default", "generation": 1}, "spec": spec})
}

fn deployment_of_three(kind: &str, _name: &str) -> Option<(String, i64)> {
    (kind == "ReplicaSet").then(|| ("deploy-uid".to_owned(), 3))
}

fn numbers(status: &Value) -> [i64; 4] {
    [
        "expectedPods",
        "desiredHealthy",
        "currentHealthy",
        "disruptionsAllowed",
    ]
    .map(|k| status[k].as_i64().unwrap_or(-1))
}

#[test]
fn min_available_counts_the_selected_pods() {
    let pods = vec![
        pod("a", true, None),
        pod("b", true, None),
        pod("c", false, None),
    ];
    let now = time::OffsetDateTime::now_utc();
    let s = status(
        &budget(json!({"minAvailable": 1})),
        &pods,
        &|_, _| None,
        now,
    );
    assert_eq!(numbers(&s), [3, 1, 2, 1]);
    assert_eq!(s["conditions"][0]["reason"], "SufficientPods");
    let s = status(
        &budget(json!({"minAvailable": 2})),
        &pods,
        &|_, _| None,
        now,
    );
    assert_eq!(numbers(&s), [3, 2, 2, 0]);
    assert_eq!(s["conditions"][0]["status"], "False");
    assert_eq!(s["conditions"][0]["reason"], "InsufficientPods");
}

#[test]
fn max_unavailable_and_percentages_use_the_controllers_replicas() {
    let pods = vec![
        pod("a", true, Some(("ReplicaSet", "web-1"))),
        pod("b", true, Some(("ReplicaSet", "web-1"))),
        pod("c", true, Some(("ReplicaSet", "web-2"))),
    ];
    let now = time::OffsetDateTime::now_utc();
    let s = status(
        &budget(json!({"maxUnavailable": 1})),
        &pods,
        &deployment_of_three,
        now,
    );
    assert_eq!(numbers(&s), [3, 2, 3, 1]);
    let s = status(
        &budget(json!({"minAvailable": "50%"})),
        &pods,
        &deployment_of_three,
        now,
    );
    assert_eq!(numbers(&s), [3, 2, 3, 1], "50% of 3 rounds up to 2");
    let s = status(
        &budget(json!({"maxUnavailable": "34%"})),
        &pods,
        &deployment_of_three,
        now,
    );
    assert_eq!(numbers(&s), [3, 1, 3, 2], "34% of 3 rounds up to 2");
}

#[test]
fn an_unmanaged_pod_fails_a_percentage() {
    let pods = vec![pod("a", true, None)];
    let now = time::OffsetDateTime::now_utc();
    let s = status(
        &budget(json!({"maxUnavailable": 1})),
        &pods,
        &|_, _| None,
        now,
    );
    assert_eq!(s["disruptionsAllowed"], 0);
    assert_eq!(s["conditions"][0]["reason"], "SyncFailed");
    assert_eq!(
        s["conditions"][0]["message"],
        "found no controllers for pod \"a\""
    );
}

#[test]
fn a_just_evicted_pod_is_not_healthy_until_it_goes_or_two_minutes_pass() {
    let pods = vec![pod("a", true, None), pod("b", true, None)];
    let now = time::OffsetDateTime::now_utc();
    let at = |ago: time::Duration| {
        (now - ago)
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let mut b = budget(json!({"minAvailable": 1}));
    b["status"] = json!({"disruptedPods": {"a": at(time::Duration::seconds(5)), "gone": at(time::Duration::seconds(5))}});
    let s = status(&b, &pods, &|_, _| None, now);
    assert_eq!(numbers(&s), [2, 1, 1, 0]);
    assert_eq!(s["disruptedPods"].as_object().map(|m| m.len()), Some(1));
    b["status"]["disruptedPods"]["a"] = json!(at(time::Duration::minutes(3)));
    let s = status(&b, &pods, &|_, _| None, now);
    assert_eq!(numbers(&s), [2, 1, 2, 1]);
    assert!(s["disruptedPods"].is_null());
}

#[test]
fn no_selector_picks_nothing_and_an_empty_one_everything() {
    let pods = vec![pod("a", true, None)];
    let mut b = budget(json!({"minAvailable": 0}));
    b["spec"]["selector"] = Value::Null;
    assert!(selected(&b, &pods).is_empty());
    b["spec"]["selector"] = json!({});
    assert_eq!(selected(&b, &pods).len(), 1);
}
