//! A pod's volumes from the worker's side: set up once before the first container that needs
//! them (again after an agent restart: setup is idempotent), then each container's mounts. A
//! volume that cannot be set up keeps the container Waiting in `ContainerCreating` (kubelet's
//! FailedMount) and is retried with kubelet's volume-operation backoff (500 ms doubling); a bad subPath is a
//! `CreateContainerConfigError`. A `persistentVolumeClaim` volume waits (ContainerCreating,
//! kubelet's `PVC is not bound` text) until its claim is Bound, then its PV is mounted:
//! `hostPath`/`local` bind-mounted, `csi` staged and published by the driver. A projected
//! `serviceAccountToken` source gets its token from the node's [`TokenSource`] (requested
//! bound to the pod, cached, renewed by kubelet's rule; rechecked every
//! `worker::TOKEN_RECHECK`); a token that cannot be had keeps the container in ContainerCreating.

use super::container_spec::pod_resources;
use super::start::StartFailure;
use super::worker::PodWorker;
use crate::config_source::ObjectKind;
use crate::runtime::BindMount;
use crate::spec::{Container, DownwardApiVolumeFile, ServiceAccountTokenProjection, Volume};
use crate::token_source::{TokenKey, TokenSource};
use crate::volume::{ClaimedVolume, PodVolumes, Sources, VolumeError};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Tokens by (audience, expirationSeconds), what a projection asks for.
type Tokens = BTreeMap<(String, i64), Vec<u8>>;

fn token_lookup(tokens: Tokens) -> impl Fn(&ServiceAccountTokenProjection) -> Option<Vec<u8>> {
    move |t| {
        tokens
            .get(&(t.audience.clone(), t.expiration_seconds()))
            .cloned()
    }
}

impl PodWorker {
    /// The bind mounts of `container`'s volumeMounts, setting the pod's volumes up first.
    pub(super) async fn volume_mounts(
        &mut self,
        container: &Container,
    ) -> Result<Vec<BindMount>, StartFailure> {
        if self.pod.spec.volumes.is_empty() {
            return Ok(Vec::new());
        }
        let pod_dir = self.ctx.pod_state_dir(&self.uid);
        if self.volumes.is_none() {
            self.wait_first_read(&volume_references(&self.pod.spec.volumes))
                .await?;
            let (tokens, failures) = self.fetch_tokens().await;
            if let Some(why) = failures.into_iter().next() {
                return Err(StartFailure::Waiting {
                    reason: "ContainerCreating",
                    message: why,
                });
            }
            let tokens = token_lookup(tokens);
            let objects = self.object_reader();
            let fields = self.field_values();
            let volumes = self.pod.spec.volumes.clone();
            let limit = pod_resources(&self.pod, None)
                .ok()
                .and_then(|r| r.memory_limit_bytes)
                .and_then(|b| u64::try_from(b).ok());
            let claims = self.mount_claims().await?;
            let dir = pod_dir.clone();
            let set_up = tokio::task::spawn_blocking(move || {
                let sources = Sources {
                    objects: &objects,
                    fields: &fields,
                    tokens: &tokens,
                };
                PodVolumes::set_up(&dir, &volumes, limit, sources, &claims)
            })
            .await
            .map_err(|e| StartFailure::Waiting {
                reason: "ContainerCreating",
                message: e.to_string(),
            })?;
            let volumes = set_up.map_err(|e| StartFailure::Waiting {
                reason: "ContainerCreating",
                message: e.to_string(),
            })?;
            self.volumes = Some(volumes);
        }
        let volumes = self.volumes.clone().unwrap_or_default();
        let name = container.name.clone();
        let mounts = container.volume_mounts.clone();
        tokio::task::spawn_blocking(move || volumes.container_mounts(&pod_dir, &name, &mounts))
            .await
            .map_err(|e| StartFailure::Waiting {
                reason: "CreateContainerConfigError",
                message: e.to_string(),
            })?
            .map_err(|e| StartFailure::Waiting {
                reason: "CreateContainerConfigError",
                message: e.to_string(),
            })
    }
}

impl PodWorker {
    /// Resolves each `persistentVolumeClaim` volume to its PV and makes it ready on the node:
    /// the host directory of each, by volume name.
    async fn mount_claims(&self) -> Result<BTreeMap<String, PathBuf>, StartFailure> {
        let waiting = |message: String| StartFailure::Waiting {
            reason: "ContainerCreating",
            message,
        };
        let mut out = BTreeMap::new();
        for v in &self.pod.spec.volumes {
            let Some(pvc) = &v.persistent_volume_claim else {
                continue;
            };
            let Some(source) = self.ctx.claim_source.get() else {
                let message = "no API to read PersistentVolumeClaims from (the agent has no \
                               --kubeconfig)";
                return Err(waiting(message.to_string()));
            };
            let ns = self.pod.metadata.namespace.clone();
            let resolved = source
                .resolve(ns, pvc.claim_name.clone())
                .await
                .map_err(|e| waiting(VolumeError::set_up(&v.name, e.to_string()).to_string()))?;
            let path = match &resolved.volume {
                ClaimedVolume::Csi(csi) => self
                    .ctx
                    .csi
                    .publish(
                        &self.uid,
                        &self.ctx.pod_state_dir(&self.uid),
                        &v.name,
                        csi,
                        pvc.read_only,
                        crate::volume::csi::ClaimName {
                            namespace: self.pod.metadata.namespace.clone(),
                            name: pvc.claim_name.clone(),
                        },
                    )
                    .await
                    .map_err(|e| {
                        let message =
                            format!("MountVolume.SetUp failed for volume {:?} : {e}", v.name);
                        waiting(message)
                    })?,
                other => {
                    let (other, name) = (other.clone(), v.name.clone());
                    let path = tokio::task::spawn_blocking(move || {
                        crate::volume::claim_source(&other, &name)
                    })
                    .await
                    .map_err(|e| waiting(e.to_string()))?
                    .map_err(|e| waiting(e.to_string()))?;
                    path.unwrap_or_default()
                }
            };
            tracing::info!(pod = %self.pod.metadata.name, volume = %v.name, pv = %resolved.pv_name, path = %path.display(), "claim mounted");
            out.insert(v.name.clone(), path);
        }
        Ok(out)
    }
}

/// The ConfigMaps and Secrets the pod's volumes show (projected sources included).
fn volume_references(volumes: &[Volume]) -> Vec<(ObjectKind, String)> {
    let mut out = Vec::new();
    for v in volumes {
        if let Some(c) = &v.config_map {
            out.push((ObjectKind::ConfigMap, c.name.clone()));
        }
        if let Some(s) = &v.secret {
            out.push((ObjectKind::Secret, s.secret_name.clone()));
        }
        for p in v.projected.iter().flat_map(|p| &p.sources) {
            if let Some(c) = &p.config_map {
                out.push((ObjectKind::ConfigMap, c.name.clone()));
            }
            if let Some(s) = &p.secret {
                out.push((ObjectKind::Secret, s.name.clone()));
            }
        }
    }
    out
}

impl PodWorker {
    /// Whether the pod has volumes showing ConfigMaps or Secrets, to keep up to date.
    pub(super) fn has_config_volumes(&self) -> bool {
        !volume_references(&self.pod.spec.volumes).is_empty()
    }

    /// Resolves downwardAPI files against the pod as the worker knows it now.
    fn field_values(
        &self,
    ) -> impl Fn(&DownwardApiVolumeFile) -> Result<Vec<u8>, String> + Send + 'static {
        let pod = self.pod.clone();
        let uid = self.uid.clone();
        let allocatable = super::env::allocatable(&self.ctx.config.root);
        move |item| {
            let facts = super::env::EnvFacts {
                pod: &pod,
                uid: &uid,
                node_name: "",
                host_ips: &[],
                pod_ips: &[],
                allocatable,
                service_env: &[],
            };
            super::env::downward_file(&facts, item)
        }
    }

    /// Rewrites the file volumes (configMap, secret, downwardAPI, projected) whose content
    /// changed (after a watch event or a change of the pod's labels or annotations).
    pub(super) async fn refresh_file_volumes(&mut self) {
        let files = |v: &Volume| {
            v.config_map.is_some()
                || v.secret.is_some()
                || v.downward_api.is_some()
                || v.projected.is_some()
        };
        if self.volumes.is_none() || !self.pod.spec.volumes.iter().any(files) {
            return;
        }
        let (tokens, failures) = self.fetch_tokens().await;
        for why in failures {
            tracing::warn!(pod = %self.pod.metadata.name, error = %why, "renewing a token; keeping the last one");
        }
        let tokens = token_lookup(tokens);
        let objects = self.object_reader();
        let fields = self.field_values();
        let volumes = self.pod.spec.volumes.clone();
        let dir = self.ctx.pod_state_dir(&self.uid);
        let done = tokio::task::spawn_blocking(move || {
            let sources = Sources {
                objects: &objects,
                fields: &fields,
                tokens: &tokens,
            };
            PodVolumes::refresh(&dir, &volumes, sources)
        })
        .await;
        match done {
            Ok(Ok(changed)) if !changed.is_empty() => {
                tracing::info!(pod = %self.pod.metadata.name, volumes = ?changed, "volume content updated");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                tracing::warn!(pod = %self.pod.metadata.name, error = %e, "updating volumes; keeping the last content")
            }
            Err(e) => tracing::warn!(error = %e, "volume update task"),
        }
    }
}

impl PodWorker {
    /// Whether the pod has `serviceAccountToken` projections, to renew.
    pub(super) fn has_token_volumes(&self) -> bool {
        self.pod
            .spec
            .volumes
            .iter()
            .flat_map(|v| v.projected.iter().flat_map(|p| &p.sources))
            .any(|s| s.service_account_token.is_some())
    }

    /// The tokens of the pod's `serviceAccountToken` sources (fresh from the cache, or asked
    /// for now), and why each one that could not be had failed, in kubelet's words.
    async fn fetch_tokens(&self) -> (Tokens, Vec<String>) {
        let mut tokens = Tokens::new();
        let mut failures = Vec::new();
        let source = self.ctx.token_source.get();
        let account = match self.pod.spec.service_account_name.as_deref() {
            Some(name) if !name.is_empty() => name.to_owned(),
            _ => "default".to_owned(),
        };
        for v in &self.pod.spec.volumes {
            let projections = v.projected.iter().flat_map(|p| &p.sources);
            for t in projections.filter_map(|s| s.service_account_token.as_ref()) {
                let fail = |why: String| {
                    format!("MountVolume.SetUp failed for volume {:?} : {why}", v.name)
                };
                let Some(source) = source else {
                    failures.push(fail("no API to request service account tokens from (the agent has no --kubeconfig)".into()));
                    continue;
                };
                let key = TokenKey {
                    namespace: self.pod.metadata.namespace.clone(),
                    service_account: account.clone(),
                    audience: t.audience.clone(),
                    expiration_seconds: t.expiration_seconds(),
                    pod_name: self.pod.metadata.name.clone(),
                    pod_uid: self
                        .pod
                        .metadata
                        .uid
                        .clone()
                        .unwrap_or_else(|| self.uid.clone()),
                };
                match TokenSource::token(source.as_ref(), key).await {
                    Ok(token) => {
                        tokens.insert(
                            (t.audience.clone(), t.expiration_seconds()),
                            token.into_bytes(),
                        );
                    }
                    Err(why) => failures.push(fail(why)),
                }
            }
        }
        (tokens, failures)
    }
}
