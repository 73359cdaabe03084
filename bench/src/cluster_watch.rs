//! Following a Deployment's pods through the API as a controller would: a list, then a watch
//! from its resourceVersion (listed and watched again if the watch ends), over the admin's
//! HTTPS connection ([`super::control_client`]). [`PodTally`] keeps each pod's phase and
//! Ready condition; [`follow`] returns when each count reached its target, or at the
//! deadline with how far it got.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::Value;
use tokio::time::timeout_at;

use super::control_client::Tls;

/// What is known of one live pod.
#[derive(Debug, Default, Clone, Copy)]
struct PodState {
    scheduled: bool,
    running: bool,
    ready: bool,
}

/// Each live pod (not being deleted) by name.
#[derive(Debug, Default)]
pub struct PodTally {
    pods: BTreeMap<String, PodState>,
}

impl PodTally {
    /// Takes in one pod object (from a list, or an ADDED/MODIFIED event).
    pub fn update(&mut self, pod: &Value) {
        let Some(name) = pod["metadata"]["name"].as_str() else {
            return;
        };
        if !pod["metadata"]["deletionTimestamp"].is_null() {
            self.pods.remove(name);
            return;
        }
        let running = pod["status"]["phase"] == "Running";
        let ready = pod["status"]["conditions"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|c| c["type"] == "Ready" && c["status"] == "True");
        let scheduled = pod["spec"]["nodeName"]
            .as_str()
            .is_some_and(|n| !n.is_empty());
        let state = PodState {
            scheduled,
            running,
            ready,
        };
        self.pods.insert(name.to_owned(), state);
    }

    /// Takes in one watch event line (`{"type": ..., "object": ...}`).
    pub fn event(&mut self, line: &[u8]) {
        let Ok(event) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        match event["type"].as_str() {
            Some("ADDED" | "MODIFIED") => self.update(&event["object"]),
            Some("DELETED") => {
                if let Some(name) = event["object"]["metadata"]["name"].as_str() {
                    self.pods.remove(name);
                }
            }
            _ => {}
        }
    }

    pub fn scheduled(&self) -> usize {
        self.pods.values().filter(|p| p.scheduled).count()
    }

    pub fn running(&self) -> usize {
        self.pods.values().filter(|p| p.running).count()
    }

    pub fn ready(&self) -> usize {
        self.pods.values().filter(|p| p.ready).count()
    }

    pub fn total(&self) -> usize {
        self.pods.len()
    }
}

/// When all pods existed, were bound to nodes, Running and Ready (from `start`), and the last
/// counts.
#[derive(Debug, Default)]
pub struct Followed {
    pub all_created: Option<Duration>,
    pub all_scheduled: Option<Duration>,
    pub all_running: Option<Duration>,
    pub all_ready: Option<Duration>,
    pub running: usize,
    pub ready: usize,
    pub total: usize,
}

/// Follows the pods of `labels` (a label selector, URL-encoded) in namespace `default` until
/// `want` of them are Running and Ready, or until `deadline`.
pub async fn follow(
    tls: &Tls,
    labels: &str,
    want: usize,
    start: Instant,
    deadline: Instant,
) -> Result<Followed> {
    let collection = format!("/api/v1/namespaces/default/pods?labelSelector={labels}");
    let mut followed = Followed::default();
    while Instant::now() < deadline {
        let mut conn = tls.connect().await?;
        let body = conn
            .expect(Method::GET, &collection, None, StatusCode::OK)
            .await?;
        let list: Value = serde_json::from_slice(&body).context("the pod list")?;
        let mut tally = PodTally::default();
        for pod in list["items"].as_array().into_iter().flatten() {
            tally.update(pod);
        }
        let revision = list["metadata"]["resourceVersion"]
            .as_str()
            .context("the pod list has no resourceVersion")?
            .to_owned();
        let path = format!("{collection}&watch=true&resourceVersion={revision}");
        let response = timeout_at(deadline.into(), conn.open(Method::GET, &path, None))
            .await
            .context("opening the watch timed out")??;
        if response.status() != StatusCode::OK {
            bail!("the pod watch answered {}", response.status());
        }
        let mut body = response.into_body();
        let mut buffer = Vec::new();
        loop {
            let now = Instant::now();
            followed.running = tally.running();
            followed.ready = tally.ready();
            followed.total = tally.total();
            if followed.all_created.is_none() && followed.total >= want {
                followed.all_created = Some(now - start);
            }
            if followed.all_scheduled.is_none() && tally.scheduled() >= want {
                followed.all_scheduled = Some(now - start);
            }
            if followed.all_running.is_none() && followed.running >= want {
                followed.all_running = Some(now - start);
            }
            if followed.all_ready.is_none() && followed.ready >= want {
                followed.all_ready = Some(now - start);
            }
            if followed.all_running.is_some() && followed.all_ready.is_some() {
                return Ok(followed);
            }
            let frame = match timeout_at(deadline.into(), body.frame()).await {
                Err(_) => return Ok(followed),
                Ok(None) => break, // the watch ended: list and watch again
                Ok(Some(frame)) => frame?,
            };
            let Ok(data) = frame.into_data() else {
                continue;
            };
            buffer.extend_from_slice(&data);
            while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = buffer.drain(..=newline).collect();
                tally.event(&line);
            }
        }
    }
    Ok(followed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn pod(name: &str, phase: &str, ready: &str) -> Value {
        json!({"metadata": {"name": name}, "spec": {"nodeName": "n1"}, "status": {"phase": phase,
            "conditions": [{"type": "Ready", "status": ready}]}})
    }

    #[test]
    fn the_tally_follows_phases_readiness_and_deletions() {
        let mut tally = PodTally::default();
        let mut unbound = pod("a", "Pending", "False");
        unbound["spec"]["nodeName"] = json!(null);
        tally.update(&unbound);
        tally.update(&pod("b", "Running", "False"));
        assert_eq!((tally.running(), tally.ready(), tally.total()), (1, 0, 2));
        assert_eq!(tally.scheduled(), 1);
        let event = json!({"type": "MODIFIED", "object": pod("a", "Running", "True")});
        tally.event(event.to_string().as_bytes());
        assert_eq!((tally.running(), tally.ready()), (2, 1));
        let mut gone = pod("b", "Running", "True");
        gone["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
        tally.update(&gone);
        let deleted = json!({"type": "DELETED", "object": pod("a", "Running", "True")});
        tally.event(format!("{deleted}\n").as_bytes());
        assert_eq!(tally.total(), 0);
        tally.event(b"not json");
        tally.event(br#"{"type":"BOOKMARK","object":{"metadata":{"name":"x"}}}"#);
        assert_eq!(tally.total(), 0);
    }
}
