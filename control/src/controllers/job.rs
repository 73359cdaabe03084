//! The Job controller (batch/v1, NonIndexed), as kube-controller-manager's: runs up to
//! `parallelism` pods from the template until `completions` have succeeded (or, without
//! `completions`, until one has and none is left running); a failed pod is replaced after an
//! exponential backoff (10 s doubling, at most 6 min) until more than `backoffLimit` have failed
//! (Failed, BackoffLimitExceeded); `activeDeadlineSeconds` past `startTime` fails it
//! (DeadlineExceeded); `suspend` deletes its running pods. A finished Job gets
//! `completionTime` (when complete) and its Complete or Failed condition;
//! `ttlSecondsAfterFinished` deletes it afterwards. Counts only
//! grow: a finished pod deleted later still counts.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::client::{revision_of, ClientError, Loopback};
use super::events::{record, EventType};
use super::informer::Informer;
use super::pods::{controller_of, ready_since};
use super::queue::{follow_owned, wait_synced, work, WorkQueue};

const COMPONENT: &str = "job-controller";
const MAX_BACKOFF: Duration = Duration::from_secs(360);

/// Starts the controller over the two caches.
pub fn spawn(
    client: Loopback,
    jobs: Arc<Informer>,
    pods: Arc<Informer>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        client,
        jobs,
        pods,
        queue: WorkQueue::new(),
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    jobs: Arc<Informer>,
    pods: Arc<Informer>,
    queue: Arc<WorkQueue>,
}

fn parse(text: &Value) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(text.as_str()?, &Rfc3339).ok()
}

fn now_text() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

fn finished(job: &Value) -> Option<&'static str> {
    let conditions = job["status"]["conditions"].as_array()?;
    ["Complete", "Failed"].into_iter().find(|kind| {
        conditions
            .iter()
            .any(|c| c["type"] == *kind && c["status"] == "True")
    })
}

impl Controller {
    async fn feed(self: Arc<Self>) {
        follow_owned(&self.jobs, &self.pods, &self.queue).await
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [&self.jobs, &self.pods];
        wait_synced(&caches).await;
        work(queue, "job", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<Option<Duration>, ClientError> {
        let Some(job) = self.jobs.get(key) else {
            return Ok(None);
        };
        if !job["metadata"]["deletionTimestamp"].is_null() {
            return Ok(None);
        }
        let namespace = job["metadata"]["namespace"].as_str().unwrap_or("default");
        let uid = &job["metadata"]["uid"];
        let mine: Vec<Arc<Value>> = self.pods.list(|p| {
            p["metadata"]["namespace"] == namespace
                && controller_of(p).is_some_and(|o| o["uid"] == *uid)
        });
        let phase = |p: &Value| p["status"]["phase"].as_str().unwrap_or("").to_owned();
        let active: Vec<&Arc<Value>> = mine
            .iter()
            .filter(|p| {
                !matches!(phase(p).as_str(), "Succeeded" | "Failed")
                    && p["metadata"]["deletionTimestamp"].is_null()
            })
            .collect();
        let succeeded = (mine.iter().filter(|p| phase(p) == "Succeeded").count() as i64)
            .max(job["status"]["succeeded"].as_i64().unwrap_or(0));
        let failed_pods: Vec<&Arc<Value>> = mine.iter().filter(|p| phase(p) == "Failed").collect();
        let failed = (failed_pods.len() as i64).max(job["status"]["failed"].as_i64().unwrap_or(0));
        let ready = active.iter().filter(|p| ready_since(p).is_some()).count() as i64;
        let spec = &job["spec"];
        let now = OffsetDateTime::now_utc();
        let mut status = json!({"active": active.len(), "succeeded": succeeded, "failed": failed, "ready": ready});
        let suspended = spec["suspend"] == true;
        let start = parse(&job["status"]["startTime"]);
        if start.is_none() && !suspended {
            status["startTime"] = json!(now_text());
        } else if let Some(s) = start {
            status["startTime"] = json!(s.format(&Rfc3339).unwrap_or_default());
        }

        if let Some(kind) = finished(&job) {
            self.delete_pods(&job, &active).await?;
            return self.after_finished(&job, kind).await;
        }
        let completions = spec["completions"].as_i64();
        let parallelism = spec["parallelism"].as_i64().unwrap_or(1).max(0);
        let backoff_limit = spec["backoffLimit"].as_i64().unwrap_or(6);
        let deadline_passed = match (spec["activeDeadlineSeconds"].as_i64(), start) {
            (Some(limit), Some(s)) => (now - s).whole_seconds() >= limit,
            _ => false,
        };
        let outcome = if completions.is_some_and(|c| succeeded >= c)
            || (completions.is_none() && succeeded > 0 && active.is_empty())
        {
            Some((
                "Complete",
                "CompletionsReached",
                "Reached expected number of succeeded pods",
            ))
        } else if failed > backoff_limit {
            Some((
                "Failed",
                "BackoffLimitExceeded",
                "Job has reached the specified backoff limit",
            ))
        } else if deadline_passed {
            Some((
                "Failed",
                "DeadlineExceeded",
                "Job was active longer than specified deadline",
            ))
        } else {
            None
        };
        if let Some((kind, reason, message)) = outcome {
            self.delete_pods(&job, &active).await?;
            let mut conditions = job["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            conditions.push(
                json!({"type": kind, "status": "True", "reason": reason, "message": message,
                "lastProbeTime": now_text(), "lastTransitionTime": now_text()}),
            );
            status["conditions"] = json!(conditions);
            status["active"] = json!(0);
            status["ready"] = json!(0);
            if kind == "Complete" {
                status["completionTime"] = json!(now_text());
            }
            self.write_status(&job, status).await?;
            let event = if kind == "Complete" {
                (EventType::Normal, "Completed")
            } else {
                (EventType::Warning, reason)
            };
            record(
                &self.client,
                COMPONENT,
                &job,
                event.0,
                event.1,
                if kind == "Complete" {
                    "Job completed"
                } else {
                    message
                },
            )
            .await;
            return Ok(Some(Duration::from_millis(100)));
        }

        let mut again = None;
        if suspended {
            self.delete_pods(&job, &active).await?;
            status["active"] = json!(0);
            let mut conditions = job["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if !conditions
                .iter()
                .any(|c| c["type"] == "Suspended" && c["status"] == "True")
            {
                conditions.retain(|c| c["type"] != "Suspended");
                conditions.push(json!({"type": "Suspended", "status": "True", "reason": "JobSuspended",
                    "message": "Job suspended", "lastProbeTime": now_text(), "lastTransitionTime": now_text()}));
                status["conditions"] = json!(conditions);
            }
        } else {
            let remaining = completions.map_or(parallelism, |c| (c - succeeded).min(parallelism));
            let want = if completions.is_none() && succeeded > 0 {
                0
            } else {
                remaining.max(0)
            };
            let missing = want - active.len() as i64;
            if missing > 0 {
                // After failures, new pods wait for the backoff since the last one failed.
                let last_failure = failed_pods.iter().filter_map(|p| finished_at(p)).max();
                let wait = if failed > 0 {
                    let backoff = Duration::from_secs(10)
                        .saturating_mul(1 << (failed - 1).clamp(0, 6) as u32)
                        .min(MAX_BACKOFF);
                    last_failure
                        .map(|t| backoff.saturating_sub((now - t).unsigned_abs()))
                        .unwrap_or_default()
                } else {
                    Duration::ZERO
                };
                if wait.is_zero() {
                    let mut written = 0;
                    for _ in 0..missing.min(500) {
                        written = written.max(self.create_pod(&job).await?);
                    }
                    status["active"] = json!(active.len() as i64 + missing.min(500));
                    self.pods.wait_for(written, Duration::from_secs(5)).await;
                } else {
                    again = Some(wait);
                }
            } else if missing < 0 {
                let extra: Vec<&Arc<Value>> = active
                    .iter()
                    .rev()
                    .take((-missing) as usize)
                    .copied()
                    .collect();
                self.delete_pods(&job, &extra).await?;
            }
            if let Some(limit) = spec["activeDeadlineSeconds"].as_i64() {
                let elapsed = start.map_or(0, |s| (now - s).whole_seconds());
                let left = Duration::from_secs((limit - elapsed).max(0) as u64 + 1);
                again = Some(again.map_or(left, |a: Duration| a.min(left)));
            }
            let mut conditions = job["status"]["conditions"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            if conditions
                .iter()
                .any(|c| c["type"] == "Suspended" && c["status"] == "True")
            {
                conditions.retain(|c| c["type"] != "Suspended");
                conditions.push(json!({"type": "Suspended", "status": "False", "reason": "JobResumed",
                    "message": "Job resumed", "lastProbeTime": now_text(), "lastTransitionTime": now_text()}));
                status["conditions"] = json!(conditions);
            }
        }
        self.write_status(&job, status).await?;
        Ok(again)
    }

    async fn create_pod(&self, job: &Value) -> Result<i64, ClientError> {
        let name = job["metadata"]["name"].as_str().unwrap_or("");
        let namespace = job["metadata"]["namespace"].as_str();
        let template = &job["spec"]["template"];
        let mut metadata = json!({"generateName": format!("{name}-"),
            "ownerReferences": [{"apiVersion": "batch/v1", "kind": "Job", "name": name, "uid": job["metadata"]["uid"],
                                 "controller": true, "blockOwnerDeletion": true}]});
        for field in ["labels", "annotations"] {
            if !template["metadata"][field].is_null() {
                metadata[field] = template["metadata"][field].clone();
            }
        }
        let pod = json!({"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]});
        match self
            .client
            .create(self.pods.resource, namespace, &pod)
            .await
        {
            Ok(created) => {
                let message = format!(
                    "Created pod: {}",
                    created["metadata"]["name"].as_str().unwrap_or("")
                );
                record(
                    &self.client,
                    COMPONENT,
                    job,
                    EventType::Normal,
                    "SuccessfulCreate",
                    &message,
                )
                .await;
                Ok(revision_of(&created))
            }
            Err(e) => {
                record(
                    &self.client,
                    COMPONENT,
                    job,
                    EventType::Warning,
                    "FailedCreate",
                    &format!("Error creating: {}", e.message),
                )
                .await;
                Err(e)
            }
        }
    }

    async fn delete_pods(&self, job: &Value, pods: &[&Arc<Value>]) -> Result<(), ClientError> {
        for pod in pods {
            let name = pod["metadata"]["name"].as_str().unwrap_or("");
            let options = json!({"preconditions": {"uid": pod["metadata"]["uid"]}});
            match self
                .client
                .delete(
                    self.pods.resource,
                    pod["metadata"]["namespace"].as_str(),
                    name,
                    &options,
                )
                .await
            {
                Ok(_) => {
                    record(
                        &self.client,
                        COMPONENT,
                        job,
                        EventType::Normal,
                        "SuccessfulDelete",
                        &format!("Deleted pod: {name}"),
                    )
                    .await
                }
                Err(e) if e.is_transient() => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// `ttlSecondsAfterFinished`: the Job goes (with its pods) once the time is up.
    async fn after_finished(
        &self,
        job: &Value,
        kind: &str,
    ) -> Result<Option<Duration>, ClientError> {
        let Some(ttl) = job["spec"]["ttlSecondsAfterFinished"].as_i64() else {
            return Ok(None);
        };
        let at = job["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["type"] == kind)
            .and_then(|c| parse(&c["lastTransitionTime"]))
            .unwrap_or_else(OffsetDateTime::now_utc);
        let left = ttl - (OffsetDateTime::now_utc() - at).whole_seconds();
        if left > 0 {
            return Ok(Some(Duration::from_secs(left as u64)));
        }
        let options = json!({"propagationPolicy": "Foreground", "preconditions": {"uid": job["metadata"]["uid"]}});
        match self
            .client
            .delete(
                self.jobs.resource,
                job["metadata"]["namespace"].as_str(),
                job["metadata"]["name"].as_str().unwrap_or(""),
                &options,
            )
            .await
        {
            Err(e) if !e.is_transient() => Err(e),
            _ => Ok(None),
        }
    }

    async fn write_status(&self, job: &Value, mut status: Value) -> Result<(), ClientError> {
        for field in ["active", "succeeded", "failed"] {
            if status[field] == 0 {
                status[field] = Value::Null; // omitempty, as Kubernetes writes them
            }
        }
        let current = &job["status"];
        let changed = status
            .as_object()
            .into_iter()
            .flatten()
            .any(|(k, v)| k != "startTime" && current.get(k).unwrap_or(&Value::Null) != v)
            || (current["startTime"].is_null() && !status["startTime"].is_null());
        if !changed {
            return Ok(());
        }
        self.client
            .merge_patch_status(
                self.jobs.resource,
                job["metadata"]["namespace"].as_str(),
                job["metadata"]["name"].as_str().unwrap_or(""),
                &json!({"status": status}),
            )
            .await
            .map(drop)
    }
}

/// When a failed pod's containers finished.
fn finished_at(pod: &Value) -> Option<OffsetDateTime> {
    pod["status"]["containerStatuses"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| parse(&c["state"]["terminated"]["finishedAt"]))
        .max()
        .or_else(|| parse(&pod["metadata"]["creationTimestamp"]))
}
