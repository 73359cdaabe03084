//! Leader election for the controllers, as client-go's leaderelection does it with a Lease:
//! `kube-system/kube-controller-manager` (coordination.k8s.io/v1). Every control process
//! serves the API; only the holder of the Lease runs the controllers and the scheduler. The
//! holder renews every `retry` period; another process takes the Lease over once `renewTime` is
//! older than `lease_duration` (a compare-and-swap on its resourceVersion, so two never win at
//! once). A holder that cannot renew for `lease_duration` stops its controllers before anyone
//! else may take over. With one process the Lease is taken at once.

use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::json;

use super::client::{ClientError, Loopback};
use crate::kinds;

const NAMESPACE: &str = "kube-system";
const NAME: &str = "kube-controller-manager";

/// Timing of the election.
#[derive(Clone, Copy, Debug)]
pub struct ElectionConfig {
    pub lease_duration: Duration,
    pub retry: Duration,
}

impl Default for ElectionConfig {
    fn default() -> Self {
        ElectionConfig {
            lease_duration: Duration::from_secs(10),
            retry: Duration::from_secs(2),
        }
    }
}

fn micro(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Micros, true)
}

fn leases() -> Option<&'static kinds::Resource> {
    kinds::find("coordination.k8s.io", "v1", "leases")
}

/// One round: take or renew the Lease; whether we hold it now.
async fn try_hold(
    client: &Loopback,
    me: &str,
    config: &ElectionConfig,
) -> Result<bool, ClientError> {
    let Some(resource) = leases() else {
        return Ok(false);
    };
    let now = Utc::now();
    let seconds = config.lease_duration.as_secs().max(1);
    match client.get(resource, Some(NAMESPACE), NAME).await {
        Err(e) if e.is_not_found() => {
            let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                "metadata": {"name": NAME, "namespace": NAMESPACE},
                "spec": {"holderIdentity": me, "leaseDurationSeconds": seconds,
                         "acquireTime": micro(now), "renewTime": micro(now), "leaseTransitions": 0}});
            match client.create(resource, Some(NAMESPACE), &lease).await {
                Ok(_) => Ok(true),
                Err(e) if e.is_already_exists() => Ok(false),
                Err(e) => Err(e),
            }
        }
        Err(e) => Err(e),
        Ok(lease) => {
            let spec = &lease["spec"];
            let holder = spec["holderIdentity"].as_str().unwrap_or("");
            let renewed = spec["renewTime"]
                .as_str()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .map(|t| t.with_timezone(&Utc));
            let duration = spec["leaseDurationSeconds"]
                .as_i64()
                .unwrap_or(seconds as i64);
            let expired = renewed.is_none_or(|t| (now - t).num_milliseconds() > duration * 1000);
            let mut patch = json!({"metadata": {"resourceVersion": lease["metadata"]["resourceVersion"]},
                                   "spec": {"renewTime": micro(now), "leaseDurationSeconds": seconds}});
            if holder != me {
                if !expired {
                    return Ok(false);
                }
                patch["spec"]["holderIdentity"] = json!(me);
                patch["spec"]["acquireTime"] = json!(micro(now));
                patch["spec"]["leaseTransitions"] =
                    json!(spec["leaseTransitions"].as_i64().unwrap_or(0) + 1);
            }
            match client
                .merge_patch(resource, Some(NAMESPACE), NAME, &patch)
                .await
            {
                Ok(_) => Ok(true),
                Err(e) if e.is_conflict() => Ok(false),
                Err(e) => Err(e),
            }
        }
    }
}

/// Runs `start` (the controllers) while this process holds the Lease; what `start` returns
/// is dropped (stopping them) when the Lease is lost.
pub fn run<T: Send + 'static>(
    client: Loopback,
    me: String,
    config: ElectionConfig,
    start: impl Fn() -> T + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut running: Option<T> = None;
        let mut last_held: Option<Instant> = None;
        loop {
            let held = match try_hold(&client, &me, &config).await {
                Ok(held) => held,
                Err(error) => {
                    tracing::warn!(%error, "leader election: renewing the Lease");
                    false
                }
            };
            if held {
                last_held = Some(Instant::now());
                if running.is_none() {
                    tracing::info!(identity = %me, "leader election: acquired the Lease; starting the controllers");
                    running = Some(start());
                }
            } else if running.is_some()
                && last_held.is_none_or(|t| {
                    t.elapsed() >= config.lease_duration.saturating_sub(config.retry)
                })
            {
                tracing::warn!(identity = %me, "leader election: lost the Lease; stopping the controllers");
                running = None;
            }
            tokio::time::sleep(config.retry).await;
        }
    })
}

/// This process's identity in the Lease: host name and process id.
pub fn identity() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "bosun-control".into());
    format!("{host}_{}", std::process::id())
}
