//! The configMap case of the volumes bench: N pods (a Deployment) mount the ConfigMap
//! `bench-config` at /config; once all run and every pod's file reads `v1`, the ConfigMap is
//! updated to `v2` through the API (GET, then PUT), and each pod's file is read on the host
//! through its volume directory — `<agent root>/pods/<uid>/volumes/kubernetes.io~configmap/
//! config/value`, the directory bind-mounted into the pod — every few milliseconds until it
//! holds the new content. The times from the PUT give `p50_ms`, `p99_ms` and `max_ms`
//! (impl `bosun`; kubelet's default sync would be 60–90 s).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http::{Method, StatusCode};
use serde_json::Value;

use super::cluster_env::ClusterEnv;
use super::control_client::Tls;
use super::volumes::Plan;
use super::{cluster_watch, percentile_of_sorted, Row};

const PROPAGATION_LIMIT: Duration = Duration::from_secs(30);
const POLL: Duration = Duration::from_millis(5);
const CONFIG_PATH: &str = "/api/v1/namespaces/default/configmaps/bench-config";

pub fn case(plan: &Plan) -> String {
    format!("configmap{}", plan.pods)
}

fn objects(replicas: usize) -> String {
    format!(
        r#"apiVersion: v1
kind: ConfigMap
metadata: {{name: bench-config}}
data: {{value: v1}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {{name: cfg}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: cfg}}}}
  template:
    metadata: {{labels: {{app: cfg}}}}
    spec:
      terminationGracePeriodSeconds: 1
      volumes:
      - {{name: config, configMap: {{name: bench-config}}}}
      containers:
      - name: sleep
        image: bosun.test/busybox:1
        command: [sleep, '3600']
        volumeMounts:
        - {{name: config, mountPath: /config}}
"#
    )
}

pub fn measure(
    env: &ClusterEnv,
    runtime: &tokio::runtime::Runtime,
    tls: &Tls,
    plan: &Plan,
    rows: &mut Vec<Row>,
) -> Result<()> {
    let start = Instant::now();
    env.apply(&objects(plan.pods))?;
    let followed = runtime.block_on(cluster_watch::follow(
        tls,
        "app%3Dcfg",
        plan.pods,
        start,
        start + plan.limit,
    ))?;
    if followed.all_running.is_none() {
        bail!(
            "configMap pods: {} Running of {} after {:?}",
            followed.running,
            plan.pods,
            plan.limit
        );
    }
    let root = env.nodes.first().context("no node")?.root();
    let files: Vec<PathBuf> = runtime
        .block_on(pod_uids(tls))?
        .into_iter()
        .map(|uid| {
            root.join("pods")
                .join(uid)
                .join("volumes/kubernetes.io~configmap/config/value")
        })
        .collect();
    if files.len() != plan.pods {
        bail!(
            "{} configMap pods listed, wanted {}",
            files.len(),
            plan.pods
        );
    }
    let seen = watch_files(&files, "v1", Instant::now(), PROPAGATION_LIMIT);
    if seen.len() != files.len() {
        bail!("{} of {} pods read v1", seen.len(), files.len());
    }
    let edited = runtime.block_on(update_config(tls))?;
    let seen = watch_files(&files, "v2", edited, PROPAGATION_LIMIT);
    let case = case(plan);
    let mut ms: Vec<f64> = seen.values().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(f64::total_cmp);
    if let (Some(first), Some(last)) = (ms.first(), ms.last()) {
        rows.push(Row::new(&case, "bosun", "min_ms", *first));
        rows.push(Row::new(
            &case,
            "bosun",
            "p50_ms",
            percentile_of_sorted(&ms, 50.0),
        ));
        rows.push(Row::new(
            &case,
            "bosun",
            "p99_ms",
            percentile_of_sorted(&ms, 99.0),
        ));
        rows.push(Row::new(&case, "bosun", "max_ms", *last));
    }
    if seen.len() != files.len() {
        bail!(
            "{} of {} pods saw the update within {PROPAGATION_LIMIT:?}",
            seen.len(),
            files.len()
        );
    }
    Ok(())
}

/// The uids of the Deployment's live pods.
async fn pod_uids(tls: &Tls) -> Result<Vec<String>> {
    let mut conn = tls.connect().await?;
    let path = "/api/v1/namespaces/default/pods?labelSelector=app%3Dcfg";
    let body = conn.expect(Method::GET, path, None, StatusCode::OK).await?;
    let list: Value = serde_json::from_slice(&body).context("the pod list")?;
    Ok(list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .filter_map(|p| p["metadata"]["uid"].as_str().map(str::to_owned))
        .collect())
}

/// Sets the ConfigMap's `value` to `v2` (GET, PUT); returns when the PUT was sent.
async fn update_config(tls: &Tls) -> Result<Instant> {
    let mut conn = tls.connect().await?;
    let body = conn
        .expect(Method::GET, CONFIG_PATH, None, StatusCode::OK)
        .await?;
    let mut config: Value = serde_json::from_slice(&body).context("the ConfigMap")?;
    config["data"]["value"] = "v2".into();
    let body = bytes::Bytes::from(serde_json::to_vec(&config)?);
    let sent = Instant::now();
    conn.expect(Method::PUT, CONFIG_PATH, Some(body), StatusCode::OK)
        .await?;
    Ok(sent)
}

/// Reads every file each [`POLL`] until it holds `want` (or `limit` passed); returns, per
/// file index, the time from `since` when it was first seen with `want`.
fn watch_files(
    files: &[PathBuf],
    want: &str,
    since: Instant,
    limit: Duration,
) -> BTreeMap<usize, Duration> {
    let mut seen = BTreeMap::new();
    while seen.len() < files.len() && since.elapsed() < limit {
        for (i, file) in files.iter().enumerate() {
            if seen.contains_key(&i) {
                continue;
            }
            if std::fs::read_to_string(file).is_ok_and(|s| s == want) {
                seen.insert(i, since.elapsed());
            }
        }
        std::thread::sleep(POLL);
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pod_mounts_the_one_config_map() {
        let yaml = objects(7);
        let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&yaml)
            .map(|d| serde::Deserialize::deserialize(d).expect("yaml"))
            .collect();
        assert_eq!(docs[0]["data"]["value"], "v1");
        assert_eq!(docs[1]["spec"]["replicas"], serde_yaml::Value::from(7));
        let volume = &docs[1]["spec"]["template"]["spec"]["volumes"][0];
        assert_eq!(volume["configMap"]["name"], "bench-config");
    }

    #[test]
    fn files_are_timed_when_they_first_hold_the_content() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "v2").expect("a");
        std::fs::write(&b, "v1").expect("b");
        let files = [a, b];
        let seen = watch_files(&files, "v2", Instant::now(), Duration::from_millis(50));
        assert_eq!(seen.keys().copied().collect::<Vec<_>>(), [0]);
    }
}
