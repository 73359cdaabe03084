//! The CronJob controller through the real kubectl: a CronJob running every minute creates
//! its Job at the next minute (named `<cronjob>-<minutes since the epoch>`, owned by it, with
//! the scheduled time annotated) and records it in `status.active` and `lastScheduleTime`;
//! `kubectl create job --from=cronjob/…` runs it by hand (not adopted as active: a Warning
//! UnexpectedJob, as kube's); a suspended CronJob creates nothing
//! while the running one does; a schedule that does not parse is refused with the field.

mod common;

use std::time::{Duration, Instant};

use common::{ok, stderr, Control};
use serde_json::Value;

fn get(control: &Control, what: &str) -> Value {
    serde_json::from_str(&ok(control.kubectl(&["get", what, "-o", "json"]))).expect("JSON")
}

#[test]
fn a_cronjob_runs_on_its_schedule() {
    let control = Control::start();
    ok(control.kubectl(&[
        "create",
        "cronjob",
        "tick",
        "--image=busybox",
        "--schedule=* * * * *",
        "--",
        "true",
    ]));
    ok(control.kubectl(&[
        "create",
        "cronjob",
        "held",
        "--image=busybox",
        "--schedule=* * * * *",
        "--",
        "true",
    ]));
    ok(control.kubectl(&[
        "patch",
        "cronjob",
        "held",
        "--type=merge",
        "-p",
        r#"{"spec":{"suspend":true}}"#,
    ]));
    ok(control.kubectl(&["create", "job", "by-hand", "--from=cronjob/tick"]));
    let manual = get(&control, "job/by-hand");
    assert_eq!(
        manual["spec"]["template"]["spec"]["containers"][0]["image"],
        "busybox"
    );

    // The first scheduled time is the next minute boundary.
    let deadline = Instant::now() + Duration::from_secs(75);
    let job = loop {
        let jobs = get(&control, "jobs");
        let found = jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|j| {
                // `create job --from` names the CronJob as owner too; scheduled ones are tick-<n>.
                j["metadata"]["ownerReferences"][0]["name"] == "tick"
                    && j["metadata"]["name"]
                        .as_str()
                        .is_some_and(|n| n.starts_with("tick-"))
            })
            .cloned();
        if let Some(job) = found {
            break job;
        }
        assert!(
            Instant::now() < deadline,
            "no Job within 75 s\n{}",
            control.log()
        );
        std::thread::sleep(Duration::from_millis(500));
    };
    let name = job["metadata"]["name"].as_str().unwrap_or("");
    let minutes: i64 = name
        .strip_prefix("tick-")
        .and_then(|m| m.parse().ok())
        .unwrap_or_else(|| panic!("tick-<minutes>: {job:#}"));
    let scheduled = job["metadata"]["annotations"]
        ["batch.kubernetes.io/cronjob-scheduled-timestamp"]
        .as_str()
        .unwrap_or("");
    let at = time::OffsetDateTime::from_unix_timestamp(minutes * 60).expect("a time");
    assert_eq!(
        scheduled,
        at.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let cj = get(&control, "cronjob/tick");
        let active = cj["status"]["active"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if active.iter().any(|a| a["name"] == name) && cj["status"]["lastScheduleTime"] == scheduled
        {
            break;
        }
        assert!(Instant::now() < deadline, "status not updated: {cj:#}");
        std::thread::sleep(Duration::from_millis(200));
    }
    // The Job made by hand is not adopted: not active, and kube's warning says so.
    let cj = get(&control, "cronjob/tick");
    let active = cj["status"]["active"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert!(!active.iter().any(|a| a["name"] == "by-hand"), "{cj:#}");
    let events = ok(control.kubectl(&["get", "events", "-o", "json"]));
    assert!(
        events.contains("Saw a job that the controller did not create or forgot: by-hand"),
        "{events}"
    );
    let jobs = get(&control, "jobs");
    assert!(
        !jobs["items"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|j| j["metadata"]["ownerReferences"][0]["name"] == "held"),
        "a suspended CronJob created a Job"
    );
    let bad = control.kubectl(&[
        "create",
        "cronjob",
        "bad",
        "--image=busybox",
        "--schedule=61 * * * *",
    ]);
    assert!(stderr(&bad).contains("spec.schedule"), "{}", stderr(&bad));
}
