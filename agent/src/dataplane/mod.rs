//! The service dataplane: Services and EndpointSlices (from the manifest directory for now)
//! and this node's pods → desired (VIP, port, protocol) → backends → a diff against the
//! pinned eBPF maps → map writes. It owns the socket load balancer of `bosun-ebpf`: loads or
//! adopts it under `--bpffs-dir`, attaches it at the pods' v2 cgroup root, and keeps the
//! service CIDR blackholed on the node. Never iptables, and never a rewrite when nothing
//! changed. Stopping the agent leaves the maps and hooks pinned, so ClusterIPs keep working.

mod desired;
mod diff;
pub mod host;

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bosun_ebpf::{MapSizes, ServiceKey, ServiceSpec as LbSpec, SockLb};
use ipnet::Ipv4Net;

use crate::metrics::ServiceSample;
use crate::runtime::cgroup::CgroupLayout;
use crate::spec::{EndpointSlice, Service};

pub use desired::{
    desired_state, with_adoption_grace, DesiredState, Limits, LocalPod, NamedPort, ServiceError,
    ServiceRef, LB_ANNOTATION,
};
pub use diff::{plan, Plan};

/// After adopting a pinned dataplane, running pods that were backends stay backends this
/// long while their readiness probes run again (see [`with_adoption_grace`]); readiness
/// failures in that window take effect when it ends. Pods that stop or go are removed at once.
pub const ADOPTION_GRACE: Duration = Duration::from_secs(30);

/// Where and how the dataplane runs.
#[derive(Debug, Clone)]
pub struct DataplaneConfig {
    /// `--bpffs-dir`: pins of programs, maps and links.
    pub bpffs_dir: PathBuf,
    /// `--cgroup-root`: the pods' cgroup tree, where the hooks attach.
    pub cgroup_root: String,
    pub cgroup_layout: CgroupLayout,
    /// `--attach-host-cgroup`: attach at the v2 root so host processes get ClusterIPs too.
    pub attach_host_cgroup: bool,
    /// `--service-cidr`.
    pub service_cidr: Ipv4Net,
    /// `--node-netns`, where the blackhole route goes (None: the agent's own netns).
    pub node_netns: Option<PathBuf>,
    /// Sizes for newly created maps (adopted maps keep theirs).
    pub map_sizes: MapSizes,
    /// The cluster DNS address steered to this node's DNS server (see [`Limits`]).
    pub cluster_dns: Option<(Ipv4Addr, std::net::SocketAddrV4)>,
}

#[derive(Debug, thiserror::Error)]
pub enum DataplaneStartError {
    #[error("mount bpffs at {path}: {source}")]
    Bpffs {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("no cgroup v2 hierarchy: the socket load balancer attaches to a v2 cgroup")]
    NoCgroupV2,
    #[error("create cgroup {path}: {source}")]
    Cgroup {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("blackhole route for the service CIDR {cidr}: {message}")]
    Route { cidr: Ipv4Net, message: String },
    #[error(transparent)]
    Lb(#[from] bosun_ebpf::DataplaneError),
}

/// One sync's input: the manifests' Services and EndpointSlices, and this node's pods.
#[derive(Debug, Default, Clone)]
pub struct SyncInput {
    pub services: Arc<Vec<Service>>,
    pub slices: Arc<Vec<EndpointSlice>>,
    pub pods: Vec<LocalPod>,
}

/// What one sync did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncReport {
    pub upserted: usize,
    pub removed: usize,
    pub backends_changed: usize,
    /// Map writes that failed (logged with their service).
    pub failed: usize,
    /// Services (or slices) left out because of an input error.
    pub invalid: usize,
    /// Whole sync, and its phases: desired state, diff, map writes.
    pub duration: Duration,
    pub compute: Duration,
    pub diff: Duration,
    pub write: Duration,
}

/// The running dataplane.
pub struct Dataplane {
    lb: SockLb,
    limits: Limits,
    owners: BTreeMap<ServiceKey, ServiceRef>,
    /// Errors already logged, so a bad Service is reported once, not every second.
    reported: BTreeSet<String>,
    /// Until when, and which backend addresses were installed when the dataplane was adopted.
    grace: Option<(Instant, BTreeSet<Ipv4Addr>)>,
    /// The last sync failed to write something, or wants to run again after a grace.
    retry: bool,
}

impl Dataplane {
    /// Blackholes the service CIDR on the node (first: refused if that would shadow a route
    /// the node has), mounts bpffs if needed, loads or adopts the pinned programs and maps,
    /// and attaches them.
    pub fn start(cfg: &DataplaneConfig) -> Result<Dataplane, DataplaneStartError> {
        host::blackhole_service_cidr(cfg.node_netns.as_deref(), cfg.service_cidr)?;
        host::ensure_bpffs(&cfg.bpffs_dir)?;
        let cgroup =
            host::attach_cgroup(cfg.cgroup_layout, &cfg.cgroup_root, cfg.attach_host_cgroup)?;
        let lb = SockLb::load_or_adopt(&cfg.bpffs_dir, cfg.map_sizes)?;
        lb.attach(&cgroup)?;
        let installed = lb.services().len();
        tracing::info!(
            bpffs = %cfg.bpffs_dir.display(),
            cgroup = %cgroup.display(),
            adopted = lb.adopted(),
            installed,
            service_cidr = %cfg.service_cidr,
            "eBPF service dataplane ready"
        );
        let sizes = lb.map_sizes();
        let max_backends = (sizes.backend_slots / 2).min(u16::MAX as u32) as usize;
        let serving = lb
            .services()
            .values()
            .flat_map(|s| s.spec.backends.iter().map(|b| b.ip))
            .collect();
        Ok(Dataplane {
            grace: lb
                .adopted()
                .then(|| (Instant::now() + ADOPTION_GRACE, serving)),
            lb,
            limits: Limits {
                service_cidr: cfg.service_cidr,
                max_backends,
                cluster_dns: cfg.cluster_dns,
            },
            owners: BTreeMap::new(),
            reported: BTreeSet::new(),
            retry: false,
        })
    }

    /// Brings the maps to the desired state of `input`; writes nothing when nothing changed.
    pub fn sync(&mut self, input: &SyncInput) -> SyncReport {
        let start = Instant::now();
        if self
            .grace
            .as_ref()
            .is_some_and(|(until, _)| Instant::now() >= *until)
        {
            tracing::info!("adoption grace over: backends follow pod readiness again");
            self.grace = None;
        }
        let graced;
        let pods = match &self.grace {
            Some((_, serving)) => {
                graced = with_adoption_grace(&input.pods, serving);
                &graced
            }
            None => &input.pods,
        };
        let state = desired_state(&input.services, &input.slices, pods, &self.limits);
        let compute = start.elapsed();
        let mut errors: Vec<String> = state.errors.iter().map(ToString::to_string).collect();
        let mut desired: BTreeMap<ServiceKey, LbSpec> = BTreeMap::new();
        self.owners.clear();
        for (key, (owner, spec)) in state.services {
            desired.insert(key, spec);
            self.owners.insert(key, owner);
        }
        let installed: BTreeMap<ServiceKey, LbSpec> = self
            .lb
            .services()
            .into_iter()
            .map(|(k, s)| (k, s.spec))
            .collect();
        let plan = plan(&desired, &installed);
        let mut report = SyncReport {
            upserted: plan.upserts.len(),
            removed: plan.removes.len(),
            backends_changed: plan.backends_changed,
            invalid: state.errors.len(),
            compute,
            diff: start.elapsed() - compute,
            ..SyncReport::default()
        };
        if !plan.upserts.is_empty() {
            for (key, result) in self.lb.upsert_services(plan.upserts) {
                if let Err(e) = result {
                    report.failed += 1;
                    errors.push(self.write_error(&key, &e));
                }
            }
        }
        for key in &plan.removes {
            if let Err(e) = self.lb.remove_service(key) {
                report.failed += 1;
                errors.push(self.write_error(key, &e));
            }
        }
        self.log_errors(errors);
        self.retry = report.failed > 0 || self.grace.is_some();
        report.duration = start.elapsed();
        report.write = report.duration - report.compute - report.diff;
        if report.upserted + report.removed > 0 {
            tracing::info!(
                upserted = report.upserted,
                removed = report.removed,
                backends_changed = report.backends_changed,
                failed = report.failed,
                services = desired.len(),
                duration_ms = ms(report.duration),
                compute_ms = ms(report.compute),
                diff_ms = ms(report.diff),
                write_ms = ms(report.write),
                "dataplane sync"
            );
        } else {
            tracing::debug!(
                duration_ms = report.duration.as_secs_f64() * 1e3,
                "dataplane sync: no change"
            );
        }
        report
    }

    /// Whether the next tick must sync even if its input did not change.
    pub fn needs_resync(&self) -> bool {
        self.retry
    }

    fn write_error(&self, key: &ServiceKey, e: &bosun_ebpf::DataplaneError) -> String {
        match self.owners.get(key) {
            Some(o) => format!("Service {}/{}: programming {key}: {e}", o.namespace, o.name),
            None => format!("removing {key}: {e}"),
        }
    }

    /// Logs errors not logged before; forgets the ones that went away.
    fn log_errors(&mut self, errors: Vec<String>) {
        let now: BTreeSet<String> = errors.into_iter().collect();
        for e in now.difference(&self.reported) {
            tracing::error!(error = %e, "service not programmed; the other services are not affected");
        }
        for e in self.reported.difference(&now) {
            tracing::info!(error = %e, "service error resolved");
        }
        self.reported = now;
    }

    /// Installed services with the counters of each, for the metrics endpoint.
    pub fn samples(&self) -> Vec<ServiceSample> {
        let mut out = Vec::new();
        for (key, svc) in self.lb.services() {
            let Ok(c) = self.lb.counters(svc.id) else {
                continue;
            };
            let owner = self.owners.get(&key);
            out.push(ServiceSample {
                namespace: owner.map(|o| o.namespace.clone()).unwrap_or_default(),
                name: owner.map(|o| o.name.clone()).unwrap_or_default(),
                port: key.port,
                protocol: format!("{:?}", key.protocol).to_lowercase(),
                backends: svc.spec.backends.len() as u64,
                connections: c.connections,
                datagrams: c.datagrams,
                refused: c.refused,
            });
        }
        out
    }

    /// The installed services (normalized), as the maps hold them.
    pub fn installed(&self) -> BTreeMap<ServiceKey, LbSpec> {
        self.lb
            .services()
            .into_iter()
            .map(|(k, s)| (k, s.spec))
            .collect()
    }
}

/// Milliseconds with microsecond precision, for logs.
fn ms(d: Duration) -> f64 {
    (d.as_micros() as f64) / 1e3
}
