//! The CronJob controller, as kube-controller-manager's (v2): at each time of `spec.schedule`
//! (UTC) it creates a Job from `jobTemplate`, named `<cronjob>-<minutes since the epoch>` and
//! owned by the CronJob, unless `suspend` is set, the time is older than
//! `startingDeadlineSeconds`, or `concurrencyPolicy: Forbid` finds a Job still running
//! (`Replace` deletes the running ones first). Missed times collapse into the most recent one.
//! `status.active`, `lastScheduleTime` and `lastSuccessfulTime` follow the Jobs; finished Jobs
//! beyond `successfulJobsHistoryLimit` (3) and `failedJobsHistoryLimit` (1) are deleted oldest
//! first. It wakes at the next scheduled time and on every change of its Jobs. A Job made by
//! hand from the CronJob (`kubectl create job --from=cronjob/NAME`) is owned by it but, as in
//! kube, not active: a Warning `UnexpectedJob` says so while it runs; it counts for the
//! history limits once finished.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use super::client::{ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::pods::controller_of;
use super::queue::{follow_owned, wait_synced, work, WorkQueue};
use crate::schedule::Schedule;

const COMPONENT: &str = "cronjob-controller";
/// The annotation of the Jobs this controller makes: the time they were scheduled for.
const SCHEDULED_AT: &str = "batch.kubernetes.io/cronjob-scheduled-timestamp";
/// How many missed times are walked before giving up on catching up (Kubernetes' 100).
const MAX_MISSED: usize = 100;

/// Starts the controller over the two caches.
pub fn spawn(
    client: Loopback,
    cronjobs: Arc<Informer>,
    jobs: Arc<Informer>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        client,
        cronjobs,
        jobs,
        queue: WorkQueue::new(),
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    cronjobs: Arc<Informer>,
    jobs: Arc<Informer>,
    queue: Arc<WorkQueue>,
}

fn parse(text: &Value) -> Option<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text.as_str()?)
        .ok()
        .map(|t| t.with_timezone(&Utc))
}

fn format(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// The Job's Complete or Failed condition, if finished.
fn outcome(job: &Value) -> Option<(&'static str, Option<DateTime<Utc>>)> {
    let conditions = job["status"]["conditions"].as_array()?;
    ["Complete", "Failed"].into_iter().find_map(|kind| {
        conditions
            .iter()
            .find(|c| c["type"] == kind && c["status"] == "True")
            .map(|c| (kind, parse(&c["lastTransitionTime"])))
    })
}

/// The most recent scheduled time in (`since`, `now`], and the next one after `now`.
pub fn due(
    schedule: &Schedule,
    since: DateTime<Utc>,
    now: DateTime<Utc>,
) -> (Option<DateTime<Utc>>, Option<DateTime<Utc>>) {
    let mut last = None;
    let mut at = since;
    for _ in 0..MAX_MISSED {
        match schedule.next_after(at) {
            Some(t) if t <= now => {
                last = Some(t);
                at = t;
            }
            next => return (last, next),
        }
    }
    // Too many missed: only the newest counts, as Kubernetes does after warning.
    let newest = schedule
        .next_after(now - chrono::Duration::minutes(1))
        .filter(|t| *t <= now);
    (newest.or(last), schedule.next_after(now))
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        follow_owned(&self.cronjobs, &self.jobs, &self.queue).await
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [&self.cronjobs, &self.jobs];
        wait_synced(&caches).await;
        work(queue, "cronjob", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(cj) = self.cronjobs.get(key) else {
            return Ok(None);
        };
        if !cj["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None);
        }
        let Ok(schedule) = Schedule::parse(cj["spec"]["schedule"].as_str().unwrap_or("")) else {
            return Ok(None); // validation refuses these
        };
        let namespace = cj["metadata"]["namespace"].as_str().unwrap_or("default");
        let uid = &cj["metadata"]["uid"];
        let mut mine: Vec<Arc<Value>> = self.jobs.list(|j| {
            j["metadata"]["namespace"] == namespace
                && controller_of(j).is_some_and(|o| o["uid"] == *uid)
        });
        mine.sort_by_key(|j| {
            j["metadata"]["creationTimestamp"]
                .as_str()
                .unwrap_or("")
                .to_owned()
        });
        let now = Utc::now();
        // Active: the running Jobs this controller made (by their scheduled time) or already
        // lists. A running Job someone else made from the CronJob is not adopted (kube's
        // UnexpectedJob): it neither shows as active nor holds back a Forbid schedule.
        let listed: Vec<&Value> = (cj["status"]["active"].as_array().into_iter().flatten())
            .map(|r| &r["uid"])
            .collect();
        let (mut active, unexpected): (Vec<&Arc<Value>>, Vec<&Arc<Value>>) = mine
            .iter()
            .filter(|j| outcome(j).is_none() && j["metadata"]["deletionTimestamp"].is_null())
            .partition(|j| {
                !j["metadata"]["annotations"][SCHEDULED_AT].is_null()
                    || listed.contains(&&j["metadata"]["uid"])
            });
        for job in unexpected {
            let name = job["metadata"]["name"].as_str().unwrap_or("");
            let message = format!("Saw a job that the controller did not create or forgot: {name}");
            record(
                &self.client,
                COMPONENT,
                &cj,
                EventType::Warning,
                "UnexpectedJob",
                &message,
            )
            .await;
        }
        let last_success = mine
            .iter()
            .filter_map(|j| match outcome(j) {
                Some(("Complete", at)) => at,
                _ => None,
            })
            .max()
            .or_else(|| parse(&cj["status"]["lastSuccessfulTime"]));

        let since = parse(&cj["status"]["lastScheduleTime"])
            .or_else(|| parse(&cj["metadata"]["creationTimestamp"]))
            .unwrap_or(now);
        let (scheduled, next) = due(&schedule, since, now);
        let mut last_schedule = parse(&cj["status"]["lastScheduleTime"]);
        let mut created = None;
        if let (Some(at), false) = (scheduled, cj["spec"]["suspend"] == true) {
            let too_late = cj["spec"]["startingDeadlineSeconds"]
                .as_i64()
                .is_some_and(|d| (now - at).num_seconds() > d);
            let policy = cj["spec"]["concurrencyPolicy"].as_str().unwrap_or("Allow");
            if too_late {
                record(
                    &self.client,
                    COMPONENT,
                    &cj,
                    EventType::Warning,
                    "MissSchedule",
                    &format!("Missed scheduled time to start a job: {}", format(at)),
                )
                .await;
                last_schedule = Some(at);
            } else if policy == "Forbid" && !active.is_empty() {
                record(&self.client, COMPONENT, &cj, EventType::Normal, "JobAlreadyActive",
                    "Not starting job because prior execution is running and concurrency policy is Forbid").await;
            } else {
                if policy == "Replace" {
                    for job in active.drain(..) {
                        self.delete_job(&cj, job, "SuccessfulDelete").await?;
                    }
                }
                let job = self.create_job(&cj, at).await?;
                last_schedule = Some(at);
                created = Some(job);
            }
        }
        self.cleanup(&cj, &mine).await?;
        let mut refs: Vec<Value> = active.iter().map(|j| job_ref(j)).collect();
        if let Some(job) = &created {
            refs.push(job_ref(job));
        }
        let status = json!({
            "active": if refs.is_empty() { Value::Null } else { json!(refs) },
            "lastScheduleTime": last_schedule.map(format),
            "lastSuccessfulTime": last_success.map(format),
        });
        if status
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| cj["status"].get(k).unwrap_or(&Value::Null) != v)
        {
            self.client
                .merge_patch_status(
                    self.cronjobs.resource,
                    Some(namespace),
                    cj["metadata"]["name"].as_str().unwrap_or(""),
                    &json!({"status": status}),
                )
                .await?;
        }
        Ok(next.map(|t| (t - now).to_std().unwrap_or_default() + Duration::from_millis(100)))
    }

    async fn create_job(&self, cj: &Value, at: DateTime<Utc>) -> Result<Value, ClientError> {
        let name = format!(
            "{}-{}",
            cj["metadata"]["name"].as_str().unwrap_or(""),
            at.timestamp() / 60
        );
        let template = &cj["spec"]["jobTemplate"];
        let mut metadata = json!({"name": name,
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "CronJob", "name": cj["metadata"]["name"],
                "uid": cj["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]});
        if !template["metadata"]["labels"].is_null() {
            metadata["labels"] = template["metadata"]["labels"].clone();
        }
        let mut annotations = template["metadata"]["annotations"].clone();
        annotations[SCHEDULED_AT] = json!(format(at));
        metadata["annotations"] = annotations;
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": metadata, "spec": template["spec"]});
        let namespace = cj["metadata"]["namespace"].as_str();
        match self
            .client
            .create(self.jobs.resource, namespace, &job)
            .await
        {
            Ok(created) => {
                record(
                    &self.client,
                    COMPONENT,
                    cj,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &format!("Created job {name}"),
                )
                .await;
                Ok(created)
            }
            Err(e) if e.is_already_exists() => {
                self.client.get(self.jobs.resource, namespace, &name).await
            }
            Err(e) => {
                record(
                    &self.client,
                    COMPONENT,
                    cj,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating job: {}", e.message),
                )
                .await;
                Err(e)
            }
        }
    }

    async fn delete_job(&self, cj: &Value, job: &Value, reason: &str) -> Result<(), ClientError> {
        let name = job["metadata"]["name"].as_str().unwrap_or("");
        let options = json!({"propagationPolicy": "Background", "preconditions": {"uid": job["metadata"]["uid"]}});
        match self
            .client
            .delete(
                self.jobs.resource,
                job["metadata"]["namespace"].as_str(),
                name,
                &options,
            )
            .await
        {
            Ok(_) => {
                record(
                    &self.client,
                    COMPONENT,
                    cj,
                    EventType::Normal,
                    reason,
                    &format!("Deleted job {name}"),
                )
                .await;
                Ok(())
            }
            Err(e) if e.is_transient() => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Deletes finished Jobs beyond the history limits, oldest first.
    async fn cleanup(&self, cj: &Value, jobs: &[Arc<Value>]) -> Result<(), ClientError> {
        for (kind, field, default) in [
            ("Complete", "successfulJobsHistoryLimit", 3),
            ("Failed", "failedJobsHistoryLimit", 1),
        ] {
            let limit = cj["spec"][field].as_i64().unwrap_or(default).max(0) as usize;
            let finished: Vec<&Arc<Value>> = jobs
                .iter()
                .filter(|j| outcome(j).is_some_and(|(k, _)| k == kind))
                .collect();
            if finished.len() > limit {
                for job in &finished[..finished.len() - limit] {
                    self.delete_job(cj, job, "SuccessfulDelete").await?;
                }
            }
        }
        Ok(())
    }
}

fn job_ref(job: &Value) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
           "namespace": job["metadata"]["namespace"], "uid": job["metadata"]["uid"],
           "resourceVersion": job["metadata"]["resourceVersion"]})
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn missed_times_collapse_into_the_newest_and_the_next_is_known() {
        let every_minute = Schedule::parse("* * * * *").unwrap();
        let since = Utc.with_ymd_and_hms(2026, 12, 2, 9, 0, 30).unwrap();
        let now = Utc.with_ymd_and_hms(2026, 12, 2, 9, 5, 10).unwrap();
        let (due_at, next) = due(&every_minute, since, now);
        assert_eq!(
            due_at,
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 9, 5, 0).unwrap())
        );
        assert_eq!(
            next,
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 9, 6, 0).unwrap())
        );
        let (nothing, next) = due(&every_minute, now, now);
        assert!(nothing.is_none());
        assert_eq!(
            next,
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 9, 6, 0).unwrap())
        );
        // Far behind: only the newest time runs.
        let long_ago = Utc.with_ymd_and_hms(2026, 11, 1, 0, 0, 0).unwrap();
        assert_eq!(
            due(&every_minute, long_ago, now).0,
            Some(Utc.with_ymd_and_hms(2026, 12, 2, 9, 5, 0).unwrap())
        );
    }
}
