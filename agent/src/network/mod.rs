//! Pod networking through CNI: the agent loads one network configuration list at start,
//! runs its plugins per the CNI spec for each pod (ADD with prevResult chaining and
//! runtimeConfig.portMappings, DEL in reverse order, CHECK, GC of leftovers), caches each
//! result under its own cache dir, and sets up node routing. Any CNI plugin works (bosun-cni,
//! which the agent runs in its own process (`builtin.rs`), Debian's bridge + host-local +
//! portmap). Blocking: callers use spawn_blocking. Never
//! changes the node's network itself except the routes of [`PodNetwork::setup_node`]
//! (`node.rs`: marked as the agent's, never shadowing a route the node has).

mod builtin;
mod cache;
mod conf;
mod error;
mod exec;
pub mod node;

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde_json::{json, Value};

pub use cache::{CachedAttachment, ResultCache};
pub use conf::{default_conflist, ListOrigin, NetworkList, PortMapping, DEFAULT_CONFLIST};
pub use error::NetworkError;
pub use exec::{exec_plugin, find_plugin, PluginEnv};

/// Where the network configuration and plugins are, and the node's addresses.
#[derive(Debug, Clone)]
pub struct NetworkConfig {
    /// `--cni-conf-dir` (default `<run-dir>/cni`).
    pub cni_conf_dir: PathBuf,
    /// Write the default conflist to the conf dir when it holds none (the daemon); else it
    /// is only kept in memory (`run`, which leaves no file behind).
    pub write_default: bool,
    /// Whether the default conflist lets bosun-cni turn on net.ipv4.ip_forward in the node
    /// netns (the daemon: pods reach each other and other nodes; `run`: host settings stay).
    pub default_ip_forward: bool,
    /// `--cni-bin-dir`, searched in order.
    pub cni_bin_dirs: Vec<PathBuf>,
    /// `--pod-cidr` (default 10.244.0.0/24).
    pub pod_cidr: IpNet,
    /// `--service-cidr` (default 10.96.0.0/12, Kubernetes' service range).
    pub service_cidr: IpNet,
    /// Results cache (under the agent root); the default conflist's IPAM data lives in
    /// `<cni_cache_dir>/ipam`.
    pub cni_cache_dir: PathBuf,
    /// Other nodes: (their pod CIDR, their node address).
    pub peers: Vec<(IpNet, IpAddr)>,
    /// Longest a single plugin call may take.
    pub plugin_timeout: Duration,
}

impl NetworkConfig {
    /// A config with the contract's defaults for everything but the directories.
    pub fn new(cni_conf_dir: PathBuf, cni_bin_dirs: Vec<PathBuf>, cni_cache_dir: PathBuf) -> Self {
        NetworkConfig {
            cni_conf_dir,
            write_default: true,
            default_ip_forward: true,
            cni_bin_dirs,
            pod_cidr: IpNet::V4(
                ipnet::Ipv4Net::new([10, 244, 0, 0].into(), 24).unwrap_or_default(),
            ),
            service_cidr: IpNet::V4(
                ipnet::Ipv4Net::new([10, 96, 0, 0].into(), 12).unwrap_or_default(),
            ),
            cni_cache_dir,
            peers: Vec::new(),
            plugin_timeout: Duration::from_secs(30),
        }
    }
}

/// One pod's attachment to the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNetworkRef {
    /// The pod uid.
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    pub namespace: String,
    pub name: String,
    pub port_mappings: Vec<PortMapping>,
}

/// What ADD gave the pod.
#[derive(Debug, Clone)]
pub struct PodNetworkStatus {
    pub ips: Vec<IpAddr>,
    pub result: Value,
}

/// The loaded network: its config list, plugins and result cache.
#[derive(Debug)]
pub struct PodNetwork {
    cfg: NetworkConfig,
    list: NetworkList,
    cache: ResultCache,
}

impl PodNetwork {
    /// Loads the first config of the conf dir (lexical order), or writes and loads the
    /// default bosun conflist when there is none; checks every plugin exists.
    pub fn load(cfg: NetworkConfig) -> Result<Self, NetworkError> {
        let default = default_conflist(
            &cfg.pod_cidr.to_string(),
            &cfg.cni_cache_dir.join("ipam"),
            cfg.default_ip_forward,
        );
        let (list, origin) = conf::load_dir(&cfg.cni_conf_dir, &default, cfg.write_default)?;
        let what = match origin {
            ListOrigin::Found => None,
            ListOrigin::Written => {
                Some("no CNI config found; wrote the default bosun-cni conflist")
            }
            ListOrigin::Default => {
                Some("no CNI config found; using the default bosun-cni conflist")
            }
        };
        if let Some(what) = what {
            tracing::info!(path = %list.path.display(), pod_cidr = %cfg.pod_cidr, written =
                origin == ListOrigin::Written, "{what}");
        }
        for p in &list.plugins {
            find_plugin(NetworkList::plugin_type(p), &cfg.cni_bin_dirs)?;
        }
        tracing::info!(network = %list.name, path = %list.path.display(), "CNI network loaded");
        Ok(PodNetwork {
            cache: ResultCache::new(&cfg.cni_cache_dir),
            cfg,
            list,
        })
    }

    /// The loaded list (name, version, plugins).
    pub fn network(&self) -> &NetworkList {
        &self.list
    }

    /// The node routes this network needs: blackholes for the pod and service CIDRs, routes
    /// to the peers' pod CIDRs.
    pub fn node_routes(&self) -> Result<Vec<node::NodeRoute>, NetworkError> {
        node::node_routes(self.cfg.pod_cidr, self.cfg.service_cidr, &self.cfg.peers)
    }

    /// Installs the node routes in the current netns (refusing any that would shadow a route
    /// already there); returns the ones that were not there before.
    pub fn setup_node(&self) -> Result<Vec<bosun_cni::link::Route4>, NetworkError> {
        node::install_routes(&self.node_routes()?)
    }

    fn cni_args(pod: &PodNetworkRef) -> String {
        format!(
            "IgnoreUnknown=1;K8S_POD_NAMESPACE={};K8S_POD_NAME={};K8S_POD_INFRA_CONTAINER_ID={};K8S_POD_UID={}",
            pod.namespace, pod.name, pod.container_id, pod.container_id
        )
    }

    fn invoke(
        &self,
        list: &NetworkList,
        plugin: &serde_json::Map<String, Value>,
        command: &'static str,
        pod: &PodNetworkRef,
        prev: Option<&Value>,
    ) -> Result<Option<Value>, NetworkError> {
        let path = find_plugin(NetworkList::plugin_type(plugin), &self.cfg.cni_bin_dirs)?;
        let args = Self::cni_args(pod);
        let env = PluginEnv {
            container_id: &pod.container_id,
            netns: Some(&pod.netns),
            ifname: &pod.ifname,
            args: &args,
        };
        let stdin = list.plugin_stdin(plugin, prev, &pod.port_mappings);
        if NetworkList::plugin_type(plugin) == builtin::NAME {
            let cni_path = std::env::join_paths(&self.cfg.cni_bin_dirs).unwrap_or_default();
            return builtin::run(command, &env, &cni_path, &stdin);
        }
        exec_plugin(
            &path,
            command,
            &env,
            &self.cfg.cni_bin_dirs,
            stdin,
            self.cfg.plugin_timeout,
        )
    }

    /// CNI ADD through the chain; the final result is cached and its IPs returned. On a
    /// failure the chain is rolled back with DEL.
    pub fn add(&self, pod: &PodNetworkRef) -> Result<PodNetworkStatus, NetworkError> {
        let mut prev: Option<Value> = None;
        for (i, plugin) in self.list.plugins.iter().enumerate() {
            match self.invoke(&self.list, plugin, "ADD", pod, prev.as_ref()) {
                Ok(Some(result)) => prev = Some(result),
                Ok(None) => {}
                Err(e) => {
                    for p in self.list.plugins[..=i].iter().rev() {
                        let _ = self.invoke(&self.list, p, "DEL", pod, prev.as_ref());
                    }
                    return Err(e);
                }
            }
        }
        let result = prev.unwrap_or_else(|| json!({"cniVersion": self.list.cni_version}));
        self.cache.store(&CachedAttachment {
            kind: cache::CACHE_KIND.into(),
            container_id: pod.container_id.clone(),
            if_name: pod.ifname.clone(),
            network_name: self.list.name.clone(),
            netns: pod.netns.clone(),
            namespace: pod.namespace.clone(),
            name: pod.name.clone(),
            port_mappings: pod.port_mappings.clone(),
            config: self.list.to_json(),
            result: result.clone(),
        })?;
        Ok(PodNetworkStatus {
            ips: result_ips(&result),
            result,
        })
    }

    /// The cached status of an attached pod (e.g. after an agent restart).
    pub fn status(&self, pod: &PodNetworkRef) -> Option<PodNetworkStatus> {
        let c = self
            .cache
            .load(&self.list.name, &pod.container_id, &pod.ifname)?;
        Some(PodNetworkStatus {
            ips: result_ips(&c.result),
            result: c.result,
        })
    }

    /// CNI DEL through the chain in reverse, with the cached config and result when there is
    /// one; idempotent (a pod never added, or already deleted, is fine).
    pub fn del(&self, pod: &PodNetworkRef) -> Result<(), NetworkError> {
        let cached = self
            .cache
            .load(&self.list.name, &pod.container_id, &pod.ifname);
        let (list, prev) = match &cached {
            Some(c) => {
                let list = conf::parse(&self.list.path, c.config.to_string().as_bytes())
                    .unwrap_or_else(|_| self.list.clone());
                (list, Some(&c.result))
            }
            None => (self.list.clone(), None),
        };
        let pod = match &cached {
            Some(c) => PodNetworkRef {
                port_mappings: c.port_mappings.clone(),
                ..pod.clone()
            },
            None => pod.clone(),
        };
        for plugin in list.plugins.iter().rev() {
            self.invoke(&list, plugin, "DEL", &pod, prev)?;
        }
        self.cache
            .remove(&self.list.name, &pod.container_id, &pod.ifname)
    }

    /// CNI CHECK through the chain with the cached result as prevResult.
    pub fn check(&self, pod: &PodNetworkRef) -> Result<(), NetworkError> {
        let cached = self
            .cache
            .load(&self.list.name, &pod.container_id, &pod.ifname)
            .ok_or_else(|| NetworkError::NotAttached {
                container_id: pod.container_id.clone(),
            })?;
        if version_lt(&self.list.cni_version, "0.4.0") {
            return Ok(()); // CHECK does not exist before 0.4.0
        }
        for plugin in &self.list.plugins {
            self.invoke(&self.list, plugin, "CHECK", pod, Some(&cached.result))?;
        }
        Ok(())
    }

    /// DELs every cached attachment whose pod is not in `live`, then (cniVersion ≥ 1.1.0)
    /// runs the GC verb with `cni.dev/valid-attachments` = `live`. GC verb failures are
    /// logged, not returned: older plugins may not know it.
    pub fn gc(&self, live: &[PodNetworkRef]) -> Result<(), NetworkError> {
        let is_live = |id: &str, ifname: &str| {
            live.iter()
                .any(|p| p.container_id == id && p.ifname == ifname)
        };
        for c in self.cache.list(&self.list.name)? {
            if is_live(&c.container_id, &c.if_name) {
                continue;
            }
            tracing::info!(pod = %c.name, namespace = %c.namespace, uid = %c.container_id,
                "CNI DEL of a leftover attachment");
            self.del(&PodNetworkRef {
                container_id: c.container_id.clone(),
                netns: c.netns.clone(),
                ifname: c.if_name.clone(),
                namespace: c.namespace.clone(),
                name: c.name.clone(),
                port_mappings: c.port_mappings.clone(),
            })?;
        }
        if version_lt(&self.list.cni_version, "1.1.0") {
            return Ok(());
        }
        let valid: Vec<Value> = live
            .iter()
            .map(|p| json!({"containerID": p.container_id, "ifname": p.ifname}))
            .collect();
        for plugin in &self.list.plugins {
            let mut with_valid = plugin.clone();
            with_valid.insert(
                "cni.dev/valid-attachments".into(),
                Value::Array(valid.clone()),
            );
            let path = find_plugin(NetworkList::plugin_type(plugin), &self.cfg.cni_bin_dirs)?;
            let stdin = self.list.plugin_stdin(&with_valid, None, &[]);
            let env = PluginEnv::default();
            if let Err(e) = exec_plugin(
                &path,
                "GC",
                &env,
                &self.cfg.cni_bin_dirs,
                stdin,
                self.cfg.plugin_timeout,
            ) {
                tracing::warn!(error = %e, "CNI GC failed");
            }
        }
        Ok(())
    }
}

fn version_lt(version: &str, other: &str) -> bool {
    let parse = |v: &str| -> Vec<u32> { v.split('.').map(|p| p.parse().unwrap_or(0)).collect() };
    parse(version) < parse(other)
}

/// The addresses in a CNI result's `ips`.
pub fn result_ips(result: &Value) -> Vec<IpAddr> {
    result
        .get("ips")
        .and_then(Value::as_array)
        .map(|ips| {
            ips.iter()
                .filter_map(|ip| ip.get("address")?.as_str()?.parse::<IpNet>().ok())
                .map(|n| n.addr())
                .collect()
        })
        .unwrap_or_default()
}
