//! The rolling update case of the cluster benchmark: a Deployment `web` of busybox httpd
//! replicas serving their hostnames (readiness: an HTTP GET every second) behind a Service; a
//! client pod pinned to node 1 requests the ClusterIP every 50 ms (one connection each, 2 s
//! timeout) and prints `ok` or `fail` per request; `kubectl rollout restart` replaces every
//! replica and `kubectl rollout status` waits for the end. The client's log is read with
//! `bosun-agent logs` 2 s after the rollout's end. Each replica drains as in production: a
//! `preStop` sleep of 2 s keeps it serving while every node's dataplane drops it from the
//! Service's backends, then it gets SIGTERM.

use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cluster::Plan;
use super::cluster_env::ClusterEnv;
use super::Row;
use xtask::util;

/// How long the client requests at most.
const CLIENT_SECONDS: u32 = 120;
const ROLLOUT_LIMIT: &str = "--timeout=180s";
const CLIENT_START_LIMIT: Duration = Duration::from_secs(60);

fn web(replicas: usize) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: web}}
spec:
  replicas: {replicas}
  selector: {{matchLabels: {{app: web}}}}
  template:
    metadata: {{labels: {{app: web}}}}
    spec:
      terminationGracePeriodSeconds: 5
      containers:
      - name: httpd
        image: bosun.test/busybox:1
        command: [sh, -c, 'mkdir -p /tmp/www && hostname > /tmp/www/index.html && exec httpd -f -p 8080 -h /tmp/www']
        ports: [{{name: http, containerPort: 8080}}]
        lifecycle:
          preStop: {{sleep: {{seconds: 2}}}}
        readinessProbe:
          httpGet: {{port: http}}
          periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata: {{name: web}}
spec:
  selector: {{app: web}}
  ports: [{{port: 80, targetPort: http}}]
"#
    )
}

/// The client pod on `node`: waits (bounded) for the Service to answer, then requests it
/// every 50 ms for at most [`CLIENT_SECONDS`], printing `ok <who>` or `fail` per request.
fn client(node: &str, vip: &str) -> String {
    format!(
        r#"apiVersion: v1
kind: Pod
metadata: {{name: client}}
spec:
  nodeName: {node}
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: client
    image: bosun.test/busybox:1
    command:
    - sh
    - -c
    - |
      for i in $(seq 1 200); do timeout 2 wget -q -O /dev/null http://{vip}/ 2>/dev/null && break; sleep 0.2; done
      end=$(($(date +%s) + {CLIENT_SECONDS}))
      while [ $(date +%s) -lt $end ]; do
        if out=$(timeout 2 wget -q -O - http://{vip}/ 2>/dev/null); then echo "ok $out"; else echo "fail"; fi
        sleep 0.05
      done
"#
    )
}

/// (ok, failed) request lines of a client log.
pub fn tally(log: &str) -> (usize, usize) {
    let ok = log.lines().filter(|l| l.starts_with("ok ")).count();
    let failed = log.lines().filter(|l| l.trim() == "fail").count();
    (ok, failed)
}

fn kubectl_ok(cmd: &mut Command) -> Result<String> {
    util::output(cmd)
}

/// Runs the case; adds rows `rollout<N>`.
pub fn measure(env: &ClusterEnv, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let case = format!("rollout{}", plan.rollout_replicas);
    env.apply(&web(plan.rollout_replicas))?;
    kubectl_ok(
        env.kubectl()
            .args(["rollout", "status", "deployment/web", ROLLOUT_LIMIT]),
    )
    .with_context(|| format!("the first rollout of web{}", env.logs()))?;
    let vip = kubectl_ok(env.kubectl().args([
        "get",
        "service",
        "web",
        "-o",
        "jsonpath={.spec.clusterIP}",
    ]))?;
    let node = &env.nodes[0];
    env.apply(&client(&node.name(), vip.trim()))?;
    let deadline = Instant::now() + CLIENT_START_LIMIT;
    while !node.logs("client").unwrap_or_default().contains("ok ") {
        if Instant::now() > deadline {
            bail!(
                "the client got no answer from {vip} in {CLIENT_START_LIMIT:?}{}",
                env.logs()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let start = Instant::now();
    kubectl_ok(env.kubectl().args(["rollout", "restart", "deployment/web"]))?;
    kubectl_ok(
        env.kubectl()
            .args(["rollout", "status", "deployment/web", ROLLOUT_LIMIT]),
    )
    .with_context(|| format!("the restart of web{}", env.logs()))?;
    let duration = start.elapsed().as_secs_f64();
    std::thread::sleep(Duration::from_secs(2));
    let log = node.logs("client")?;
    let (ok, failed) = tally(&log);
    rows.push(Row::new(&case, "bosun", "duration_s", duration));
    rows.push(Row::new(&case, "bosun", "failed_requests", failed as f64));
    rows.push(Row::new(
        &case,
        "bosun",
        "total_requests",
        (ok + failed) as f64,
    ));
    if duration + 2.0 > f64::from(CLIENT_SECONDS) {
        println!("note: the rollout outlasted the client's {CLIENT_SECONDS} s of requests");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_client_log_is_tallied_by_line() {
        let log = "ok web-1\nok web-2\nfail\nok web-1\nfail\n";
        assert_eq!(tally(log), (3, 2));
        let manifest = client("node-1", "10.96.0.20");
        assert!(manifest.contains("nodeName: node-1"));
        assert!(manifest.contains("http://10.96.0.20/"));
        assert!(web(50).contains("replicas: 50"));
        assert!(web(50).contains("preStop: {sleep: {seconds: 2}}"));
    }
}
