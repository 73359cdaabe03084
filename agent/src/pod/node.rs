//! What every pod worker shares: the agent's directories, the image store and registry
//! client, the host's cgroup
//! layout and tunables. Also the one place that names where a pod's files live.

use std::path::{Path, PathBuf};

use super::backoff::BackoffPolicy;
use crate::image::{ImageStore, Puller};
use crate::probe::ProbeScheduler;
use crate::runtime::cgroup::CgroupHost;
use crate::spec::QosClass;

/// Agent settings that shape how pods run.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    pub root: PathBuf,
    pub run_dir: PathBuf,
    pub cgroup_root: String,
    /// The helper run as each container's intermediate (`__container-init`) and for execs
    /// (`__exec`): `bosun-init`, or the agent binary itself.
    pub init_exe: PathBuf,
    /// kubelet's podPidsLimit; None = unlimited.
    pub pod_pids_limit: Option<i64>,
    pub backoff: BackoffPolicy,
    /// The node's network namespace when it is not the agent's own (`--node-netns`).
    pub node_netns: Option<PathBuf>,
    /// The node's IP (`--node-ip`): hostNetwork pods report it; None = detected.
    pub node_ip: Option<std::net::IpAddr>,
    /// What the pods' /etc/resolv.conf is made of.
    pub dns: PodDnsSettings,
    /// Where CSI drivers' sockets are (`<dir>/<driver>/csi.sock`); None = `<root>/plugins`.
    pub csi_plugin_dir: Option<PathBuf>,
    /// Image garbage collection's disk-usage thresholds (kubelet's `--image-gc-*-threshold`).
    pub image_gc: crate::image::GcPolicy,
    /// How often the daemon checks them (kubelet: 5 minutes), besides after each pull.
    pub image_gc_period: std::time::Duration,
}

/// The cluster DNS settings of pods (kubelet's `--cluster-dns`, `--cluster-domain`,
/// `--resolv-conf`).
#[derive(Debug, Clone)]
pub struct PodDnsSettings {
    pub cluster: crate::dns::resolv::ClusterDns,
    pub node_resolv_conf: PathBuf,
}

impl Default for PodDnsSettings {
    /// No cluster DNS: pods get the node's /etc/resolv.conf.
    fn default() -> Self {
        PodDnsSettings {
            cluster: crate::dns::resolv::ClusterDns {
                address: None,
                domain: "cluster.local".into(),
            },
            node_resolv_conf: "/etc/resolv.conf".into(),
        }
    }
}

impl NodeConfig {
    /// The CSI drivers' directory (`--csi-plugin-dir`, default `<root>/plugins`).
    pub fn csi_plugin_dir(&self) -> PathBuf {
        self.csi_plugin_dir
            .clone()
            .unwrap_or_else(|| self.root.join("plugins"))
    }
}

/// Shared by all pod workers.
pub struct NodeContext {
    pub config: NodeConfig,
    pub images: ImageStore,
    /// Pulls missing images from registries; None when the client could not be built (pulls
    /// then fail with that error as ErrImagePull).
    pub puller: Option<Puller>,
    pub cgroups: CgroupHost,
    /// Pod networking through CNI; None with `--network none`.
    pub network: Option<std::sync::Arc<crate::network::PodNetwork>>,
    /// Started on first use, inside the agent's runtime.
    pub probes: std::sync::OnceLock<ProbeScheduler>,
    /// ConfigMaps and Secrets from the API; set once the agent joins a cluster.
    pub config_source: std::sync::OnceLock<std::sync::Arc<dyn crate::config_source::ConfigSource>>,
    /// PersistentVolumeClaims and their PVs from the API; set once the agent joins a cluster.
    pub claim_source: std::sync::OnceLock<std::sync::Arc<dyn crate::volume::ClaimSource>>,
    /// Service-account tokens from the API; set once the agent joins a cluster.
    pub token_source: std::sync::OnceLock<std::sync::Arc<dyn crate::token_source::TokenSource>>,
    /// The cluster's Services, for containers' environments; set once the agent joins a
    /// cluster.
    pub service_source: std::sync::OnceLock<std::sync::Arc<dyn crate::service_env::ServiceSource>>,
    /// The CSI volumes staged and published on this node (drivers under `<root>/plugins`).
    pub csi: crate::volume::CsiNode,
    /// Wakes the daemon's image garbage collection (after a pull).
    pub image_gc_wake: tokio::sync::Notify,
    /// Events about the node; set once the agent joins a cluster.
    pub node_events: std::sync::OnceLock<std::sync::Arc<dyn crate::node_events::NodeEvents>>,
    /// The agent's ends of the running containers' stdins (`kubectl attach -i`).
    pub stdins: super::container_stdin::Stdins,
}

impl NodeContext {
    pub fn new(
        config: NodeConfig,
        images: ImageStore,
        puller: Option<Puller>,
        cgroups: CgroupHost,
        network: Option<crate::network::PodNetwork>,
    ) -> Self {
        NodeContext {
            images,
            puller,
            cgroups,
            network: network.map(std::sync::Arc::new),
            probes: std::sync::OnceLock::new(),
            config_source: std::sync::OnceLock::new(),
            claim_source: std::sync::OnceLock::new(),
            token_source: std::sync::OnceLock::new(),
            service_source: std::sync::OnceLock::new(),
            csi: crate::volume::CsiNode::new(&config.root, &config.csi_plugin_dir()),
            image_gc_wake: tokio::sync::Notify::new(),
            node_events: std::sync::OnceLock::new(),
            stdins: Default::default(),
            config,
        }
    }

    /// Records a Warning event about the node (posted when the agent has joined a cluster).
    pub fn node_warning(&self, reason: &'static str, message: String) {
        if let Some(events) = self.node_events.get() {
            events.warning(reason, message);
        }
    }

    /// The node's probe scheduler (call from within the runtime).
    pub fn probes(&self) -> &ProbeScheduler {
        self.probes.get_or_init(ProbeScheduler::start)
    }

    pub fn pod_state_dir(&self, uid: &str) -> PathBuf {
        self.config.root.join("pods").join(uid)
    }
    pub fn container_dir(&self, uid: &str, container: &str) -> PathBuf {
        self.pod_state_dir(uid).join("containers").join(container)
    }
    pub fn sandbox_dir(&self, uid: &str) -> PathBuf {
        self.config.run_dir.join("pods").join(uid)
    }
    pub fn pod_cgroup(&self, uid: &str, qos: QosClass) -> PathBuf {
        let root = Path::new(&self.config.cgroup_root);
        match qos {
            QosClass::Guaranteed => root.join(format!("pod{uid}")),
            QosClass::Burstable => root.join("burstable").join(format!("pod{uid}")),
            QosClass::BestEffort => root.join("besteffort").join(format!("pod{uid}")),
        }
    }
}

/// `<root>/logs/<namespace>_<name>_<uid>/<container>/<restart>.log`, kubelet's layout.
pub fn log_file(root: &Path, ns: &str, name: &str, uid: &str, container: &str, n: u32) -> PathBuf {
    log_dir(root, ns, name, uid)
        .join(container)
        .join(format!("{n}.log"))
}

pub fn log_dir(root: &Path, ns: &str, name: &str, uid: &str) -> PathBuf {
    root.join("logs").join(format!("{ns}_{name}_{uid}"))
}
