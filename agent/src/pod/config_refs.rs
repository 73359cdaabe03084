//! The worker's side of a container's environment: waits (briefly) until the ConfigMaps and
//! Secrets it references, and the cluster's Services, have been read, gathers the pod's facts (IPs, the node's
//! allocatable) and resolves it through `env.rs`. Any failure keeps the container Waiting in
//! `CreateContainerConfigError`; the retry comes sooner when a watched object changes.

use std::time::{Duration, Instant};

use super::env::{allocatable, container_env, EnvFacts};
use super::start::StartFailure;
use super::worker::PodWorker;
use crate::config_source::{Lookup, ObjectKind};
use crate::service_env::{service_env, NOT_LISTED};
use crate::spec::Container;

/// How long a container start waits for the first read of an object it references.
const FIRST_READ_WAIT: Duration = Duration::from_secs(10);

fn config_error(message: String) -> StartFailure {
    StartFailure::Waiting {
        reason: "CreateContainerConfigError",
        message,
    }
}

/// The objects `c` references.
pub(super) fn references(c: &Container) -> Vec<(ObjectKind, String)> {
    let mut out = Vec::new();
    for var in c.env.iter().filter_map(|v| v.value_from.as_ref()) {
        if let Some(s) = &var.config_map_key_ref {
            out.push((ObjectKind::ConfigMap, s.name.clone()));
        }
        if let Some(s) = &var.secret_key_ref {
            out.push((ObjectKind::Secret, s.name.clone()));
        }
    }
    for from in &c.env_from {
        if let Some(r) = &from.config_map_ref {
            out.push((ObjectKind::ConfigMap, r.name.clone()));
        }
        if let Some(r) = &from.secret_ref {
            out.push((ObjectKind::Secret, r.name.clone()));
        }
    }
    out
}

/// Reads the objects of one namespace (movable into a blocking task).
struct ObjectReader {
    source: Option<std::sync::Arc<dyn crate::config_source::ConfigSource>>,
    namespace: String,
}

impl ObjectReader {
    fn lookup(&self, kind: ObjectKind, name: &str) -> Lookup {
        match &self.source {
            Some(s) => s.lookup(kind, &self.namespace, name),
            None => Lookup::Failed("no API to read it from".into()),
        }
    }
}

impl PodWorker {
    pub(super) fn object_reader(&self) -> impl Fn(ObjectKind, &str) -> Lookup + Send + 'static {
        let reader = ObjectReader {
            source: self.ctx.config_source.get().cloned(),
            namespace: self.pod.metadata.namespace.clone(),
        };
        move |kind, name| reader.lookup(kind, name)
    }

    /// The watched objects' change generation, when the pod has anything to keep up to date.
    pub(super) fn config_changes(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        let source = self.ctx.config_source.get()?;
        self.has_config_volumes().then(|| source.subscribe())
    }

    /// Waits until every object in `refs` has been read once (or `FIRST_READ_WAIT` passed).
    pub(super) async fn wait_first_read(
        &self,
        refs: &[(ObjectKind, String)],
    ) -> Result<(), StartFailure> {
        if refs.is_empty() {
            return Ok(());
        }
        let Some(source) = self.ctx.config_source.get() else {
            let message =
                "no API to read ConfigMaps and Secrets from (the agent has no --kubeconfig)";
            return Err(config_error(message.into()));
        };
        let ns = self.pod.metadata.namespace.clone();
        let deadline = Instant::now() + FIRST_READ_WAIT;
        loop {
            let pending = refs
                .iter()
                .any(|(k, n)| source.lookup(*k, &ns, n) == Lookup::Pending);
            if !pending || Instant::now() >= deadline {
                return Ok(());
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The Service variables of the pod (none without an API); an API pod waits (briefly) for
    /// the first list of Services, as kubelet's do — a static pod takes what is known, so it
    /// starts while the API is down.
    async fn service_env(&self) -> Result<Vec<(String, String)>, StartFailure> {
        let Some(source) = self.ctx.service_source.get() else {
            return Ok(Vec::new());
        };
        let from_api = self.pod.spec.node_name.is_some();
        let deadline = Instant::now() + FIRST_READ_WAIT;
        let services = loop {
            if let Some(services) = source.services() {
                break services;
            }
            if !from_api {
                return Ok(Vec::new());
            }
            if Instant::now() >= deadline {
                return Err(config_error(NOT_LISTED.into()));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let links = self.pod.spec.enable_service_links.unwrap_or(true);
        Ok(service_env(&services, &self.pod.metadata.namespace, links))
    }

    /// The environment of `container` (image variables not included).
    pub(super) async fn resolve_env(
        &self,
        container: &Container,
    ) -> Result<Vec<(String, String)>, StartFailure> {
        self.wait_first_read(&references(container)).await?;
        let needs_host_ip = container.env.iter().any(|v| {
            v.value_from
                .as_ref()
                .and_then(|f| f.field_ref.as_ref())
                .is_some_and(|f| f.field_path.starts_with("status.hostIP"))
        });
        let host_ips: Vec<String> = if needs_host_ip {
            let ctx = self.ctx.clone();
            let ips = tokio::task::spawn_blocking(move || super::network::node_ips(&ctx))
                .await
                .map_err(|e| config_error(e.to_string()))?
                .map_err(config_error)?;
            ips.iter().map(|ip| ip.to_string()).collect()
        } else {
            Vec::new()
        };
        let pod_ips = self.lock_status().pod_ips.clone();
        let node_name = self.pod.spec.node_name.clone().unwrap_or_else(|| {
            nix::unistd::gethostname()
                .map(|h| h.to_string_lossy().into_owned())
                .unwrap_or_default()
        });
        let service_env = self.service_env().await?;
        let facts = EnvFacts {
            pod: &self.pod,
            uid: &self.uid,
            node_name: &node_name,
            host_ips: &host_ips,
            pod_ips: &pod_ips,
            allocatable: allocatable(&self.ctx.config.root),
            service_env: &service_env,
        };
        let objects = self.object_reader();
        let env = container_env(&facts, container, &objects).map_err(config_error)?;
        if !env.invalid.is_empty() {
            tracing::warn!(pod = %self.pod.metadata.name, container = %container.name, keys = ?env.invalid, "InvalidEnvironmentVariableNames: keys from envFrom skipped");
        }
        Ok(env.vars)
    }
}
