//! The node daemon (`bosun-agent --manifests DIR` and/or `--kubeconfig FILE`): keeps the
//! desired pods running — the static pods of the manifest directory and, when joined to a
//! cluster, the pods the API binds to this node (`crate::cluster`) — added → created, changed →
//! replaced, removed → deleted; adopts the containers a previous agent left running, and serves
//! the local API. A pod's source is its `spec.nodeName` (API pods have it, static pods may
//! not); a source not listed yet (the directory unreadable, the API not reached since start)
//! changes none of its pods. A change of labels or annotations only (the spec hash is the
//! same) is handed to the running worker, for its downwardAPI files, and so are ephemeral
//! containers (`kubectl debug`), which the hash leaves out. An API pod being deleted (deletionTimestamp) is stopped with its
//! deletionGracePeriodSeconds; `cluster::finalize` deletes it from the API once it is gone;
//! joined, the static pods are published for their mirror pods (`cluster::mirror`). With a dataplane, each tick also syncs the manifests' Services
//! with the pods (`services.rs`). Stopping the daemon leaves pods (and the pinned dataplane)
//! running for the next agent to adopt; only a pod's removal from its source deletes it.

pub mod api;
mod image_gc;
pub mod manifests;
pub mod services;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::cluster::{ApiPods, BoundPod, NodeIdentity, ServiceWatch};
use crate::dataplane::{Dataplane, LocalPod};
use crate::pod::persist::load_all;
use crate::pod::{NodeContext, PodCommand, PodStatus, PodWorker};
use crate::spec::Pod;
use manifests::ManifestDir;
use services::ServiceSync;

/// How often the manifest directory is re-read.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(1);
/// How often the claims' volume stats (NodeGetVolumeStats) are taken for the metrics.
const VOLUME_STATS_PERIOD: Duration = Duration::from_secs(10);

/// A pod worker as the daemon holds it.
struct PodEntry {
    pod: Pod,
    hash: String,
    status: Arc<Mutex<PodStatus>>,
    commands: watch::Sender<PodCommand>,
    /// The pod for its worker: labels, annotations and ephemeral containers change in place.
    updates: watch::Sender<Pod>,
    task: JoinHandle<PodStatus>,
}

/// Live pods by uid, plus pods being deleted (still shown by `ps` until gone).
#[derive(Default)]
pub struct PodTable {
    pods: BTreeMap<String, PodEntry>,
    terminating: BTreeMap<String, PodEntry>,
    /// Pods whose record could not be read at start: their containers may still run, so this
    /// agent neither starts nor deletes them (uid → whether a manifest for it was reported).
    unreadable: BTreeMap<String, bool>,
    /// Whether the pods a previous agent left have been adopted.
    adopted: bool,
}

impl PodTable {
    pub fn statuses(&self) -> Vec<PodStatus> {
        self.pods
            .values()
            .chain(self.terminating.values())
            .map(|e| e.status.lock().unwrap_or_else(|p| p.into_inner()).clone())
            .collect()
    }

    /// What the dataplane needs of every pod, terminating ones included.
    pub fn local_pods(&self) -> Vec<LocalPod> {
        let live = self.pods.values().map(|e| (e, false));
        let leaving = self.terminating.values().map(|e| (e, true));
        live.chain(leaving)
            .map(|(e, terminating)| {
                let status = e.status.lock().unwrap_or_else(|p| p.into_inner());
                LocalPod::new(&e.pod, &status, terminating)
            })
            .collect()
    }

    fn start(&mut self, mut worker: PodWorker, pod: Pod) {
        let (tx, rx) = watch::channel(PodCommand::Run);
        let (updates, receiver) = watch::channel(pod.clone());
        worker.watch_pod_updates(receiver);
        let uid = worker.uid().to_string();
        let entry = PodEntry {
            pod,
            hash: worker.hash().to_string(),
            status: worker.status_handle(),
            commands: tx,
            updates,
            task: tokio::spawn(worker.run(rx)),
        };
        self.pods.insert(uid, entry);
    }

    /// Hands a running pod the labels, annotations and ephemeral containers its source now has.
    fn update_pod(&mut self, uid: &str, pod: &Pod) {
        let Some(entry) = self.pods.get_mut(uid) else {
            return;
        };
        let (old, new) = (&entry.pod.metadata, &pod.metadata);
        let metadata = old.labels != new.labels || old.annotations != new.annotations;
        let ephemeral = entry.pod.spec.ephemeral_containers != pod.spec.ephemeral_containers;
        if !metadata && !ephemeral {
            return;
        }
        tracing::info!(pod = %new.name, metadata, ephemeral, "pod changed in place");
        entry.pod.metadata.labels = new.labels.clone();
        entry.pod.metadata.annotations = new.annotations.clone();
        entry.pod.spec.ephemeral_containers = pod.spec.ephemeral_containers.clone();
        let _ = entry.updates.send(entry.pod.clone());
    }

    fn delete(&mut self, uid: &str) {
        if let Some(entry) = self.pods.remove(uid) {
            let _ = entry
                .commands
                .send(PodCommand::Delete { remove_logs: true });
            self.terminating.insert(uid.to_string(), entry);
        }
    }

    /// The uids of every pod this node holds (see `cluster::NodePods`); `None` before adoption.
    pub fn on_node(&self) -> Option<std::collections::BTreeSet<String>> {
        let all = self.pods.keys().chain(self.terminating.keys());
        self.adopted
            .then(|| all.chain(self.unreadable.keys()).cloned().collect())
    }

    /// Deletes an API pod that is being deleted, with its deletionGracePeriodSeconds.
    fn terminate(&mut self, uid: &str, grace_seconds: i64) {
        if let Some(entry) = self.pods.remove(uid) {
            let _ = entry.commands.send(PodCommand::Terminate { grace_seconds });
            self.terminating.insert(uid.to_string(), entry);
        }
    }

    fn reap_terminated(&mut self) {
        self.terminating.retain(|_, e| !e.task.is_finished());
    }
}

/// Releases network attachments (IPs, veths) of pods that no longer exist on this node.
fn gc_network(ctx: &NodeContext, live: &[crate::network::PodNetworkRef]) {
    let Some(net) = &ctx.network else { return };
    let node = ctx.config.node_netns.as_deref();
    match crate::sys::netns_exec::in_netns(node, || net.gc(live)) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "CNI garbage collection"),
        Err(e) => tracing::warn!(error = %e, "entering the node netns"),
    }
}

/// The cluster a daemon joins (`--kubeconfig`).
pub struct Join {
    pub client: kube::Client,
    pub node: NodeIdentity,
    /// The kubelet API's listener, served beside the node's loops.
    pub kubelet: crate::kubelet_api::KubeletServing,
    /// The node's cluster DNS server (with the dataplane), fed by the Service watch.
    pub dns: Option<(crate::dns::DnsSockets, crate::dns::DnsServing)>,
}

/// How often freed heap pages go back to the kernel ([`crate::sys::malloc`]).
const MALLOC_TRIM_PERIOD: std::time::Duration = std::time::Duration::from_secs(5);

/// Runs the daemon until the process is asked to stop.
pub async fn run(
    ctx: Arc<NodeContext>,
    manifest_dir: Option<PathBuf>,
    dataplane: Option<Arc<Mutex<Dataplane>>>,
    join: Option<Join>,
) -> std::io::Result<()> {
    let run_dir = ctx.config.run_dir.clone();
    std::fs::create_dir_all(&run_dir)?;
    let sock = run_dir.join(api::SOCKET);
    let _ = std::fs::remove_file(&sock);
    let listener = tokio::net::UnixListener::bind(&sock)?;
    let table = Arc::new(Mutex::new(PodTable::default()));
    tokio::spawn(api::serve(listener, table.clone()));
    tokio::spawn(crate::sys::malloc::trim_every(MALLOC_TRIM_PERIOD));
    image_gc::spawn(ctx.clone(), table.clone());

    let api_pods = Arc::new(Mutex::new(ApiPods::default()));
    // The static pods, for their mirror pods in the API.
    let static_pods: crate::cluster::StaticPods = Arc::default();
    let joined = join.is_some();
    // The cluster's Services, for the dataplane (when there is one).
    let mut join = join;
    let api_services = match (&mut join, &dataplane) {
        (Some(join), Some(_)) => {
            let watch = Arc::new(ServiceWatch::default());
            crate::cluster::services::spawn(join.client.clone(), watch.clone());
            if let Some((sockets, serving)) = join.dns.take() {
                let watch = watch.clone();
                tokio::spawn(async move {
                    if let Err(e) = crate::dns::serve(sockets, serving, watch).await {
                        tracing::error!(error = %e, "cluster DNS server stopped");
                    }
                });
            }
            Some(watch)
        }
        _ => None,
    };
    if let Some(join) = &join {
        let objects = crate::cluster::config_objects::ConfigObjects::new(
            join.client.clone(),
            tokio::runtime::Handle::current(),
        );
        let _ = ctx.config_source.set(Arc::new(objects));
        let claims = crate::cluster::claims::ApiClaims {
            client: join.client.clone(),
        };
        let _ = ctx.claim_source.set(Arc::new(claims));
        let tokens = crate::cluster::tokens::ApiTokens::new(join.client.clone());
        let _ = ctx.token_source.set(Arc::new(tokens));
        let services = crate::cluster::service_env::ApiServiceEnv::spawn(join.client.clone());
        let _ = ctx.service_source.set(services);
        let events = crate::cluster::events::ApiNodeEvents {
            client: join.client.clone(),
            node: join.node.name.clone(),
            runtime: tokio::runtime::Handle::current(),
        };
        let _ = ctx.node_events.set(Arc::new(events));
    }
    // CSI volumes of pods that are gone (a teardown whose driver did not answer, or pods
    // deleted while the agent was down) are unpublished and unstaged, retried until done.
    {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            let pods_dir = ctx.config.root.join("pods");
            loop {
                if let Err(e) = ctx.csi.collect_orphans(&pods_dir).await {
                    tracing::warn!(error = %e, "releasing CSI volumes of pods that are gone");
                }
                tokio::time::sleep(std::time::Duration::from_secs(10)).await;
            }
        });
    }
    // kubelet's volume metrics of the claims mounted here, refreshed every period.
    {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            loop {
                let samples = ctx.csi.volume_stats().await.into_iter().map(|s| {
                    crate::metrics::VolumeStatsSample {
                        namespace: s.claim.namespace,
                        claim: s.claim.name,
                        usage: s.usage,
                    }
                });
                crate::metrics::metrics().set_volume_stats(samples.collect());
                tokio::time::sleep(VOLUME_STATS_PERIOD).await;
            }
        });
    }
    if let Some(join) = join {
        tracing::info!(node = %join.node.name, "joining the cluster");
        let t = table.clone();
        let statuses: crate::cluster::PodStatuses =
            Arc::new(move || t.lock().unwrap_or_else(|p| p.into_inner()).statuses());
        let (t, node) = (table.clone(), ctx.clone());
        let exec_targets: crate::kubelet_api::exec::ExecTargets =
            Arc::new(move |uid: &str, container: &str, pid: i32| {
                let pod = t
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .pods
                    .get(uid)
                    .map(|e| e.pod.clone())?;
                crate::pod::exec_target_by_name(&node, &pod, uid, container, pid)
            });
        let resources = crate::pod::resource_source(ctx.clone(), statuses.clone());
        let api = crate::kubelet_api::KubeletApi {
            root: ctx.config.root.clone(),
            statuses: statuses.clone(),
            exec_targets,
            resources,
            stdins: ctx.stdins.clone(),
        };
        tokio::spawn(crate::kubelet_api::serve(join.kubelet, Arc::new(api)));
        let pods = api_pods.clone();
        let t = table.clone();
        let on_node: crate::cluster::NodePods =
            Arc::new(move || t.lock().unwrap_or_else(|p| p.into_inner()).on_node());
        crate::cluster::spawn(
            join.client,
            join.node,
            ctx.clone(),
            pods,
            statuses,
            on_node,
            static_pods.clone(),
        );
    }
    let mut dir = match manifest_dir {
        Some(_) => ManifestDir::default(),
        None => ManifestDir::absent(),
    };
    let desired = scan(&mut dir, manifest_dir.as_deref());
    let pods_dir = ctx.config.root.join("pods");
    let found = load_all(&pods_dir).map_err(|e| {
        let message = format!("listing the pod records in {}: {e}", pods_dir.display());
        std::io::Error::new(e.kind(), message)
    })?;
    {
        let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
        for (pod_dir, error) in &found.unreadable {
            tracing::error!(dir = %pod_dir.display(), %error, "cannot read the pod record; leaving this pod alone (its containers may still run) until the record is fixed or the pod stopped by hand and its directory removed");
            let uid = pod_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            t.unreadable.insert(uid.unwrap_or_default(), false);
        }
        // A pod whose record cannot be read may still have its network attachment in use.
        let unknown_pods = !found.unreadable.is_empty();
        let mut live = Vec::new();
        // Mounts of pods without a record (torn down by an agent that died before it could
        // unmount, or left in the trash) go now; a pod with an unreadable record keeps its.
        let mut known: std::collections::BTreeSet<String> = found
            .records
            .iter()
            .map(|r| crate::spec::pod_uid(&r.pod))
            .collect();
        known.extend(t.unreadable.keys().cloned());
        if let Err(e) = crate::volume::unmount_orphans(&ctx.config.root, &known) {
            tracing::error!(error = %e, "unmounting the volumes of pods that are gone");
        }
        for record in found.records {
            let uid = crate::spec::pod_uid(&record.pod);
            // Until its source has been listed, every pod is kept as it is (the API is listed
            // only after this adoption).
            let keep = record.pod.spec.node_name.is_some()
                || desired.as_ref().is_none_or(|desired| {
                    desired.get(&uid).map(|d| d.hash == record.hash) == Some(true)
                });
            tracing::info!(pod = %record.pod.metadata.name, keep, "adopting pod from a previous agent");
            let pod = record.pod.clone();
            let host_network = record.pod.spec.host_network;
            let worker = PodWorker::adopt(ctx.clone(), record);
            if !host_network {
                live.push(worker.network_ref());
            }
            t.start(worker, pod);
            if !keep {
                t.delete(&uid);
            }
        }
        if unknown_pods {
            tracing::warn!("skipping CNI garbage collection: some pod records cannot be read");
        } else {
            gc_network(&ctx, &live);
        }
        t.adopted = true;
    }
    let mut services = dataplane.map(ServiceSync::new);
    if let Some(s) = &mut services {
        let pods = table.lock().unwrap_or_else(|p| p.into_inner()).local_pods();
        s.tick(&dir, api_snapshot(api_services.as_deref()), pods)
            .await;
    }
    if let Some(d) = &manifest_dir {
        tracing::info!(dir = %d.display(), "watching manifests");
    }
    let mut tick = tokio::time::interval(SCAN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        match &api_services {
            Some(watch) => {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = watch.changed.notified() => {}
                }
            }
            None => {
                tick.tick().await;
            }
        }
        // Not joined: the API pods a previous agent ran are left alone, not deleted.
        let (api, terminating) = if joined {
            let api = api_pods.lock().unwrap_or_else(|p| p.into_inner());
            (api.desired(), api.terminating.clone())
        } else {
            (None, BTreeMap::new())
        };
        let desired = Desired {
            static_pods: scan(&mut dir, manifest_dir.as_deref()),
            api_pods: api.map(api_desired),
        };
        // For the mirror pods: the static pods, and whether this version of each runs.
        let statics = match joined {
            true => desired.static_pods.clone(),
            false => None,
        };
        {
            // Pods being deleted in the API stop with their deletion grace period.
            let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
            for (uid, pod) in &terminating {
                if t.pods.contains_key(uid) {
                    tracing::info!(pod = %pod.name, grace = pod.grace_seconds, "pod deleted in the API; stopping it");
                    t.terminate(uid, pod.grace_seconds);
                }
            }
        }
        reconcile_pods(&ctx, &table, desired);
        if let Some(statics) = statics {
            let t = table.lock().unwrap_or_else(|p| p.into_inner());
            let published = statics
                .into_iter()
                .map(|(uid, d)| {
                    let live = t.pods.get(&uid).is_some_and(|e| e.hash == d.hash);
                    let pod = crate::cluster::StaticPod { pod: d.pod, live };
                    (uid, pod)
                })
                .collect();
            *static_pods.lock().unwrap_or_else(|p| p.into_inner()) = Some(published);
        }
        if let Some(s) = &mut services {
            let pods = table.lock().unwrap_or_else(|p| p.into_inner()).local_pods();
            s.tick(&dir, api_snapshot(api_services.as_deref()), pods)
                .await;
        }
    }
}

/// The API's Services for the dataplane: `None` when not joined, `Some(None)` until listed.
fn api_snapshot(watch: Option<&ServiceWatch>) -> Option<Option<crate::cluster::ServicesSnapshot>> {
    watch.map(|w| w.state.lock().unwrap_or_else(|p| p.into_inner()).snapshot())
}

/// The static pods of the manifest directory (none without `--manifests`; `None` while the
/// directory was never listed).
fn scan(dir: &mut ManifestDir, path: Option<&std::path::Path>) -> Option<DesiredPods> {
    match path {
        Some(path) => dir.scan(path),
        None => Some(BTreeMap::new()),
    }
}

type DesiredPods = BTreeMap<String, manifests::DesiredPod>;

/// The API's pods as desired pods (their "file" names where they come from).
fn api_desired(pods: BTreeMap<String, BoundPod>) -> DesiredPods {
    let desired = |(uid, b): (String, BoundPod)| {
        let file = format!("api:{}/{}", b.pod.metadata.namespace, b.pod.metadata.name);
        let d = manifests::DesiredPod {
            pod: b.pod,
            hash: b.hash,
            file: file.into(),
        };
        (uid, d)
    };
    pods.into_iter().map(desired).collect()
}

/// The desired pods of each source; `None`: not listed yet, its pods stay as they are.
struct Desired {
    static_pods: Option<DesiredPods>,
    api_pods: Option<DesiredPods>,
}

impl Desired {
    /// The desired set that `pod` belongs to.
    fn source_of(&self, pod: &Pod) -> Option<&DesiredPods> {
        match pod.spec.node_name {
            Some(_) => self.api_pods.as_ref(),
            None => self.static_pods.as_ref(),
        }
    }
}

/// Deletes pods that went away from their source or changed, starts the new ones.
fn reconcile_pods(ctx: &Arc<NodeContext>, table: &Mutex<PodTable>, desired: Desired) {
    let mut t = table.lock().unwrap_or_else(|p| p.into_inner());
    t.reap_terminated();
    let gone: Vec<String> = t
        .pods
        .iter()
        .filter(|(uid, e)| {
            desired
                .source_of(&e.pod)
                .is_some_and(|source| source.get(*uid).map(|d| d.hash != e.hash).unwrap_or(true))
        })
        .map(|(uid, _)| uid.clone())
        .collect();
    for uid in gone {
        tracing::info!(%uid, "pod removed or changed; deleting");
        t.delete(&uid);
    }
    let all = desired.static_pods.into_iter().chain(desired.api_pods);
    for (uid, d) in all.flatten() {
        if t.pods.contains_key(&uid) {
            t.update_pod(&uid, &d.pod);
            continue;
        }
        if t.terminating.contains_key(&uid) {
            continue;
        }
        if let Some(reported) = t.unreadable.get_mut(&uid) {
            if !*reported {
                tracing::error!(pod = %d.pod.metadata.name, %uid, "not starting the pod: the record of a previous instance cannot be read");
                *reported = true;
            }
            continue;
        }
        tracing::info!(pod = %d.pod.metadata.name, source = %d.file.display(), "starting pod");
        let pod = d.pod.clone();
        t.start(PodWorker::new(ctx.clone(), d.pod, None, false), pod);
    }
}
