//! `cargo xtask bench volumes`: what a pod's volumes cost on a bosun node — `bosun-control`
//! and one `bosun-agent --kubeconfig` node ([`super::cluster_env`], layout
//! `bosun-bench-volumes`) with a `bosun-csi-local` driver, the binaries of this bench's own
//! build profile.
//!
//! Cases, in the order they run (each set of pods deleted, and its volumes gone, before the
//! next):
//! - `pods<N>_emptydir` (impl `emptyDir`, the peer): a Parallel StatefulSet of N busybox
//!   `sleep` pods, each with an emptyDir mounted at /data: `all_running_s` from the apply.
//! - `pods<N>_pvc` (impl `bosun-csi-local`): the same StatefulSet with a volumeClaimTemplate
//!   of 64 MiB of the StorageClass `bench-local` (WaitForFirstConsumer, bosun-csi-local):
//!   each pod gets its own dynamically provisioned ext4 volume (CreateVolume, the PV, binding,
//!   NodeStage — a loop device and an ext4 mount —, NodePublish): `all_running_s` (a pod
//!   runs only once its claim is Bound).
//! - `configmap<N>` ([`super::volumes_config`]): N pods mounting one ConfigMap; the
//!   ConfigMap is updated through the API and the file each pod sees is read on the host
//!   through the pod's volume directory until it has the new content: `p50_ms`, `p99_ms` and
//!   `max_ms` of the propagation.
//!
//! N = 100 (`--quick`: 10). Goals, printed not asserted: PVC pods within 2× of emptyDir pods,
//! propagation p99 < 2 s. Everything — processes, mounts, loop devices, netns, cgroups — is
//! removed however the bench ends.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use super::cluster_env::{ClusterEnv, Layout, CSI_DRIVER};
use super::control_client::Tls;
use super::{cluster_watch, volumes_config, write_results, Options, Row};
use xtask::util;

const PVC_RATIO_GOAL: f64 = 2.0;
pub const PROPAGATION_GOAL_MS: f64 = 2000.0;
const GONE_LIMIT: Duration = Duration::from_secs(180);

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    pub pods: usize,
    /// How long N pods may take to be Running.
    pub limit: Duration,
}

impl Plan {
    pub fn new(options: &Options) -> Self {
        match options.quick {
            true => Self {
                pods: 10,
                limit: Duration::from_secs(120),
            },
            false => Self {
                pods: 100,
                limit: Duration::from_secs(300),
            },
        }
    }

    pub fn case(&self, what: &str) -> String {
        format!("pods{}_{what}", self.pods)
    }
}

/// The StorageClass of the PVC case.
const CLASS: &str = r#"apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: bench-local}
provisioner: local.csi.bosun.dev
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Delete
"#;

/// A Parallel StatefulSet `name` of `replicas` sleep pods with `/data` from `volume`
/// (`emptyDir` or `pvc`).
fn stateful_set(name: &str, replicas: usize, volume: &str) -> String {
    let (pod_volumes, templates) = match volume {
        "pvc" => (
            String::new(),
            r#"  volumeClaimTemplates:
  - metadata: {name: data}
    spec:
      storageClassName: bench-local
      accessModes: [ReadWriteOnce]
      resources: {requests: {storage: 64Mi}}
"#,
        ),
        _ => (
            "      volumes:\n      - {name: data, emptyDir: {}}\n".to_owned(),
            "",
        ),
    };
    format!(
        r#"apiVersion: apps/v1
kind: StatefulSet
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  serviceName: {name}
  podManagementPolicy: Parallel
  selector: {{matchLabels: {{app: {name}}}}}
  template:
    metadata: {{labels: {{app: {name}}}}}
    spec:
      terminationGracePeriodSeconds: 1
{pod_volumes}      containers:
      - name: sleep
        image: bosun.test/busybox:1
        command: [sleep, '3600']
        volumeMounts:
        - {{name: data, mountPath: /data}}
{templates}"#
    )
}

/// Where the binaries of this bench's profile are (`target/debug` or `target/release`).
fn bin_dir() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("the bench's own path")?;
    Ok(exe.parent().context("the bench's directory")?.to_owned())
}

/// Builds the cluster's binaries in this bench's profile and the test images.
fn prepare() -> Result<()> {
    xtask::images::run(false)?;
    let mut build = util::cargo();
    // The whole workspace, as the e2e tests build it: the same features, so nothing is
    // built a second time for a different feature set.
    build
        .current_dir(util::workspace_root())
        .args(["build", "--workspace", "--bins"]);
    if !cfg!(debug_assertions) {
        build.arg("--release");
    }
    util::run(&mut build)
}

pub fn run(options: &Options) -> Result<()> {
    if !util::is_root() {
        bail!("the volumes bench must run as root: pods need namespaces, cgroups and mounts");
    }
    prepare()?;
    let plan = Plan::new(options);
    let layout = Layout {
        prefix: "bosun-bench-volumes",
        subnet: "192.168.202",
        work: "volumes",
        bin_dir: bin_dir()?,
        nodes: 1,
        max_pods: plan.pods.max(110),
        csi_local: true,
        dataplane: "none",
    };
    let mut rows = Vec::new();
    let measured = (|| {
        let env = ClusterEnv::start(&layout)?;
        measure(&env, &plan, &mut rows).with_context(|| env.logs())
    })();
    if !rows.is_empty() {
        write_results("volumes", &rows)?;
        print!("{}", report(&rows, &plan));
    }
    measured
}

fn measure(env: &ClusterEnv, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let control = env.control.as_ref().context("no control process")?;
    let tls = Tls::new(&control.kubeconfig)?;
    let runtime = super::client_runtime()?;
    wait_driver_registered(env)?;
    env.apply(CLASS)?;

    let case = plan.case("emptydir");
    let running = start_set(env, &runtime, &tls, plan, "empty", "emptyDir")?;
    rows.push(Row::new(&case, "emptyDir", "all_running_s", running));
    delete_set(env, "empty")?;

    let case = plan.case("pvc");
    let running = start_set(env, &runtime, &tls, plan, "claims", "pvc")?;
    rows.push(Row::new(&case, CSI_DRIVER, "all_running_s", running));
    delete_set(env, "claims")?;
    wait_claims_gone(env)?;

    volumes_config::measure(env, &runtime, &tls, plan, rows)
}

/// Applies the StatefulSet and follows its pods until all are Running; seconds from the apply.
fn start_set(
    env: &ClusterEnv,
    runtime: &tokio::runtime::Runtime,
    tls: &Tls,
    plan: &Plan,
    name: &str,
    volume: &str,
) -> Result<f64> {
    let start = Instant::now();
    env.apply(&stateful_set(name, plan.pods, volume))?;
    let labels = format!("app%3D{name}");
    let followed = runtime.block_on(cluster_watch::follow(
        tls,
        &labels,
        plan.pods,
        start,
        start + plan.limit,
    ))?;
    match followed.all_running {
        Some(at) => Ok(at.as_secs_f64()),
        None => bail!(
            "{name}: after {:?}, {} pods, {} Running of {}",
            plan.limit,
            followed.total,
            followed.running,
            plan.pods
        ),
    }
}

/// Waits (bounded) until the node's CSINode lists the driver.
fn wait_driver_registered(env: &ClusterEnv) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let node = env.nodes.first().context("no node")?.name();
    loop {
        let out = env
            .kubectl()
            .args(["get", "csinode", &node, "-o"])
            .arg("jsonpath={.spec.drivers[*].name}")
            .output()?;
        if String::from_utf8_lossy(&out.stdout).contains(CSI_DRIVER) {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("{CSI_DRIVER} not on CSINode {node} after 60 s");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Deletes a StatefulSet and waits (bounded) until its pods are gone.
pub fn delete_set(env: &ClusterEnv, name: &str) -> Result<()> {
    kubectl_ok(
        env.kubectl()
            .args(["delete", "statefulset", name, "--wait=false"]),
    )?;
    wait_empty(
        env,
        &["get", "pods", "-l", &format!("app={name}"), "-o", "name"],
    )
}

/// Deletes every claim and waits until claims and volumes are gone (DeleteVolume done).
fn wait_claims_gone(env: &ClusterEnv) -> Result<()> {
    kubectl_ok(
        env.kubectl()
            .args(["delete", "pvc", "--all", "--wait=false"]),
    )?;
    wait_empty(env, &["get", "pvc", "-o", "name"])?;
    wait_empty(env, &["get", "pv", "-o", "name"])
}

fn kubectl_ok(command: &mut Command) -> Result<()> {
    util::output(command).map(drop)
}

/// Polls `kubectl ARGS` until it prints nothing (bounded).
fn wait_empty(env: &ClusterEnv, args: &[&str]) -> Result<()> {
    let deadline = Instant::now() + GONE_LIMIT;
    loop {
        let out = env.kubectl().args(args).output()?;
        if out.status.success() && out.stdout.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!(
                "`kubectl {}` still lists {} objects after {GONE_LIMIT:?}",
                args.join(" "),
                String::from_utf8_lossy(&out.stdout).lines().count()
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn find(rows: &[Row], case: &str, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.case == case && r.metric == metric)
        .map(|r| r.value)
}

/// The ratio of PVC pods to emptyDir pods and the goal lines.
pub fn report(rows: &[Row], plan: &Plan) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    let empty = find(rows, &plan.case("emptydir"), "all_running_s");
    let pvc = find(rows, &plan.case("pvc"), "all_running_s");
    if let (Some(empty), Some(pvc)) = (empty, pvc) {
        let ratio = pvc / empty;
        let _ = writeln!(
            out,
            "ratio {} pods all Running: PVC {pvc:.2} s / emptyDir {empty:.2} s = {ratio:.2}× \
             (< {PVC_RATIO_GOAL}×): {}",
            plan.pods,
            verdict(ratio < PVC_RATIO_GOAL)
        );
    }
    let config = volumes_config::case(plan);
    if let Some(p99) = find(rows, &config, "p99_ms") {
        let _ = writeln!(
            out,
            "goal {config} update propagation p99: {p99:.0} ms (< {PROPAGATION_GOAL_MS} ms): {}",
            verdict(p99 < PROPAGATION_GOAL_MS)
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plans_match_the_issue_and_quick_is_small() {
        assert_eq!(Plan::new(&Options::default()).pods, 100);
        let quick = Plan::new(&Options {
            quick: true,
            ..Options::default()
        });
        assert_eq!(quick.pods, 10);
        assert_eq!(quick.case("pvc"), "pods10_pvc");
    }

    #[test]
    fn the_two_sets_differ_only_in_their_volume() {
        let empty = stateful_set("s", 5, "emptyDir");
        let pvc = stateful_set("s", 5, "pvc");
        assert!(empty.contains("emptyDir: {}") && !empty.contains("volumeClaimTemplates"));
        assert!(pvc.contains("storage: 64Mi") && !pvc.contains("emptyDir"));
        for set in [&empty, &pvc] {
            let value: serde_yaml::Value = serde_yaml::from_str(set).expect("yaml");
            assert_eq!(value["spec"]["replicas"], serde_yaml::Value::from(5));
            assert_eq!(value["spec"]["podManagementPolicy"], "Parallel");
        }
    }

    #[test]
    fn report_prints_the_ratio_and_the_propagation_goal() {
        let plan = Plan::new(&Options::default());
        let rows = [
            Row::new("pods100_emptydir", "emptyDir", "all_running_s", 10.0),
            Row::new("pods100_pvc", CSI_DRIVER, "all_running_s", 25.0),
            Row::new("configmap100", "bosun", "p99_ms", 900.0),
        ];
        let report = report(&rows, &plan);
        assert!(report.contains("= 2.50× (< 2×): MISSED"), "{report}");
        assert!(report.contains("p99: 900 ms (< 2000 ms): met"), "{report}");
    }
}
