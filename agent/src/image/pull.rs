//! Pulling an image from a registry into the store. `oci-client` speaks the distribution
//! protocol (anonymous, basic and bearer-token auth through the WWW-Authenticate challenge,
//! manifest and blob requests); this file decides what to fetch and where the bytes go.
//!
//! A pull stages its manifests and config in its own directory under the store's
//! `downloads/`, writes a lease there naming every blob and layer the image needs (garbage
//! collection keeps those), then fetches the layers the store lacks a few at a time; each
//! layer is unpacked as soon as its blob is complete and verified, while the others still
//! download (`pull_layer.rs`). Last, the verified manifests and config move into the store
//! and the reference is recorded. A blob whose size or sha256 differs from its descriptor
//! is refused and nothing of it is stored. This file must never write into `blobs/`,
//! `layers/` or `refs.json` itself. Plain HTTP is used only for the registries listed as
//! insecure.

use std::collections::HashMap;
use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use futures::{StreamExt, TryStreamExt};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageConfiguration, ImageIndex, ImageManifest, MediaType};

use super::credentials::{Credential, Keyring};
use super::digest::{chain_ids, digest_of, sha256_hex};
use super::error::{io_err, ImageError};
use super::import::{pick_platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use super::progress::PullProgress;
use super::pull_layer::{ensure_layer, LayerJob};
use super::reference::{self, Reference};
use super::registry_clients::{unauthorized_answer, RegistryClients};
use super::store::{Lease, RefRecord, ScratchDir, LEASE_FILE, MAX_JSON_BLOB};
use super::{ImageStore, ImageSummary};

/// Media types we accept for a manifest request.
const ACCEPT: &[&str] = &[
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    DOCKER_MANIFEST_LIST,
    DOCKER_MANIFEST,
];
/// Nested indexes deeper than this are refused rather than followed.
const MAX_INDEX_DEPTH: usize = 4;
/// Layers of one pull downloading or unpacking at once.
const LAYER_CONCURRENCY: usize = 3;

/// Per layer chain id, the lock a pull holds while it fetches that layer: a second pull
/// needing it waits, then finds it stored, so each blob is fetched once per node.
type InFlight = Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>;

/// A registry client for one node: which registries may be spoken to over plain HTTP, and
/// the node's own credentials.
pub struct Puller {
    clients: RegistryClients,
    node_keyring: Keyring,
    in_flight: InFlight,
    progress: Option<Arc<dyn PullProgress>>,
}

impl Puller {
    /// A client using HTTPS (rustls, ring) everywhere except the `insecure` registries
    /// (`HOST:PORT` as written in image references), which get plain HTTP.
    pub fn new(insecure: &[String]) -> Result<Self, ImageError> {
        Ok(Puller {
            clients: RegistryClients::new(insecure)?,
            node_keyring: Keyring::default(),
            in_flight: InFlight::default(),
            progress: None,
        })
    }

    /// Credentials of the node (e.g. its docker `config.json`), tried after a pod's own.
    pub fn with_node_credentials(mut self, keyring: Keyring) -> Self {
        self.node_keyring = keyring;
        self
    }

    /// Reports every pull's per-layer progress to `progress`.
    pub fn with_progress(mut self, progress: Arc<dyn PullProgress>) -> Self {
        self.progress = Some(progress);
        self
    }

    /// Pulls `reference` (normalised like Kubernetes) with the node's credentials and records
    /// it in `store`.
    pub async fn pull(
        &self,
        store: &ImageStore,
        reference: &str,
    ) -> Result<ImageSummary, ImageError> {
        self.pull_with(store, reference, &Keyring::default()).await
    }

    /// Pulls `reference` like kubelet: with each credential of `pod_keyring` (a pod's
    /// imagePullSecrets), then of the node, that matches the image's registry, in turn until
    /// one succeeds; anonymously when none matches.
    pub async fn pull_with(
        &self,
        store: &ImageStore,
        reference: &str,
        pod_keyring: &Keyring,
    ) -> Result<ImageSummary, ImageError> {
        let image = reference::parse(reference)?;
        let repository = reference::repository_of(&image);
        let mut creds = pod_keyring.lookup(&repository);
        creds.extend(self.node_keyring.lookup(&repository));
        if creds.is_empty() {
            let client = self.clients.anonymous();
            return self.pull_as(store, reference, &image, &client, None).await;
        }
        let mut errors = Vec::new();
        for cred in &creds {
            let client = self
                .clients
                .for_credential(image.resolve_registry(), cred)?;
            match self
                .pull_as(store, reference, &image, &client, Some(cred))
                .await
            {
                Ok(pulled) => return Ok(pulled),
                Err(e) => {
                    tracing::warn!(image = %image.whole(), user = %cred.username, error = %e, "pull with this credential failed");
                    errors.push(e);
                }
            }
        }
        match errors.len() {
            1 => Err(errors.remove(0)),
            _ => Err(ImageError::Registry {
                action: format!("pulling with each of {} credentials", errors.len()),
                reference: image.whole(),
                message: format!(
                    "[{}]",
                    errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            }),
        }
    }

    /// One attempt at pulling `image` through `client`, which holds `cred` (None: anonymous).
    async fn pull_as(
        &self,
        store: &ImageStore,
        reference: &str,
        image: &Reference,
        client: &Client,
        cred: Option<&Credential>,
    ) -> Result<ImageSummary, ImageError> {
        tracing::info!(image = %image.whole(), authenticated = cred.is_some(), "pulling");
        let name = image.whole();
        let stale = store.dirs.clear_stale_downloads()?;
        if stale > 0 {
            tracing::info!(stale, "removed downloads of pulls whose process is gone");
        }
        let downloads = store.dirs.downloads_dir();
        let staging = ScratchDir::new(&downloads, "pull")?;
        let blobs = staging.path().join("blobs").join("sha256");
        fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&blobs)
            .map_err(io_err("creating download directory", &blobs))?;
        let auth = cred.map_or(RegistryAuth::Anonymous, |c| {
            RegistryAuth::Basic(c.username.clone(), c.password.clone())
        });
        let fetch = Fetch {
            client,
            auth: &auth,
            cred,
            http: self.clients.http(),
            image,
            name: &name,
            blobs: &blobs,
            progress: self.progress.as_deref(),
        };
        let (top, documents, manifest) = fetch.manifests().await?;
        let config_desc = manifest.config();
        let config_digest = config_desc.digest().to_string();
        let mut staged: Vec<(String, PathBuf)> = Vec::new();
        for digest in &documents {
            staged.push((digest.clone(), fetch.staged_path(digest)?));
        }
        let config_path = match store.dirs.blob_path(&config_digest)? {
            stored if stored.is_file() => stored,
            _ => {
                fetch.blob(config_desc).await?;
                let path = fetch.staged_path(&config_digest)?;
                staged.push((config_digest.clone(), path.clone()));
                path
            }
        };
        let config = read_json(&config_path, config_desc.size())?;
        let config: ImageConfiguration =
            serde_json::from_slice(&config).map_err(|source| ImageError::Json {
                what: format!("image config {config_digest} of {name}"),
                source,
            })?;
        let diff_ids = config.rootfs().diff_ids();
        if diff_ids.len() != manifest.layers().len() {
            return Err(ImageError::LayerCountMismatch {
                manifest: documents.last().cloned().unwrap_or_default(),
                layers: manifest.layers().len(),
                diff_ids: diff_ids.len(),
            });
        }
        let chains = chain_ids(diff_ids)?;
        let mut record = RefRecord {
            target: top.digest().to_string(),
            manifest: documents.last().cloned().unwrap_or_default(),
            config: config_digest,
            size: 0,
            blobs: Vec::new(),
            chain_ids: chains.clone(),
        };
        let document_sizes = staged
            .iter()
            .take(documents.len())
            .map(|(d, path)| (d.clone(), fs::metadata(path).map_or(0, |m| m.len())));
        let all: Vec<(String, u64)> = document_sizes
            .chain([(record.config.clone(), config_desc.size())])
            .chain(
                manifest
                    .layers()
                    .iter()
                    .map(|l| (l.digest().to_string(), l.size())),
            )
            .collect();
        for (digest, size) in all {
            if !record.blobs.contains(&digest) {
                record.blobs.push(digest);
                record.size = record.size.saturating_add(size);
            }
        }
        write_lease(staging.path(), &record)?;

        let jobs: Vec<LayerJob> = manifest
            .layers()
            .iter()
            .zip(diff_ids)
            .zip(&chains)
            .map(|((layer, diff_id), chain)| LayerJob {
                desc: layer.clone(),
                diff_id: diff_id.clone(),
                chain: chain.clone(),
            })
            .collect();
        futures::stream::iter(jobs)
            .map(|job| self.layer(store, &fetch, staging.path(), job))
            .buffer_unordered(LAYER_CONCURRENCY)
            .try_collect::<Vec<()>>()
            .await?;

        tracing::info!(image = %name, digest = %record.manifest, "layers in place; recording");
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let recorded = store.record_pull(&name, record, &staged);
            drop(staging);
            recorded
        })
        .await
        .map_err(|e| ImageError::Registry {
            action: "recording the pull".to_owned(),
            reference: reference.to_owned(),
            message: e.to_string(),
        })?
    }

    /// Makes sure layer `job` is in `store`, fetching it unless another pull of this puller
    /// is already doing so (then it waits and finds it stored).
    async fn layer(
        &self,
        store: &ImageStore,
        fetch: &Fetch<'_>,
        staging: &Path,
        job: LayerJob,
    ) -> Result<(), ImageError> {
        let digest = job.desc.digest().to_string();
        if let Some(p) = fetch.progress {
            p.layer(&digest, job.desc.size());
        }
        let lock = self.layer_lock(&job.chain);
        let result = async {
            let _held = lock.lock().await;
            ensure_layer(store, staging, &job, || async {
                fetch.blob(&job.desc).await?;
                fetch.staged_path(job.desc.digest().as_ref())
            })
            .await
        }
        .await;
        self.release_layer_lock(&job.chain, lock);
        if let (Some(p), Ok(())) = (fetch.progress, &result) {
            p.done(&digest);
        }
        result
    }

    /// The lock of layer `chain`, shared with every pull of this puller that needs it.
    fn layer_lock(&self, chain: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(chain.to_owned()).or_default().clone()
    }

    /// Forgets the lock of layer `chain` once nobody but the map and `lock` hold it.
    fn release_layer_lock(&self, chain: &str, lock: Arc<tokio::sync::Mutex<()>>) {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if Arc::strong_count(&lock) <= 2 {
            map.remove(chain);
        }
    }
}

/// Writes the pull's lease: what garbage collection must keep until the reference is saved.
fn write_lease(staging: &Path, record: &RefRecord) -> Result<(), ImageError> {
    let lease = Lease {
        blobs: record.blobs.clone(),
        chain_ids: record.chain_ids.clone(),
    };
    let path = staging.join(LEASE_FILE);
    let bytes = serde_json::to_vec(&lease).map_err(|source| ImageError::Json {
        what: format!("lease {}", path.display()),
        source,
    })?;
    fs::write(&path, bytes).map_err(io_err("writing", &path))
}

/// Reads a JSON blob of at most [`MAX_JSON_BLOB`] bytes.
fn read_json(path: &Path, size: u64) -> Result<Vec<u8>, ImageError> {
    if size > MAX_JSON_BLOB {
        return Err(ImageError::BlobTooLarge {
            digest: path.display().to_string(),
            size,
            limit: MAX_JSON_BLOB,
        });
    }
    fs::read(path).map_err(io_err("reading", path))
}

/// One pull in progress.
pub(super) struct Fetch<'a> {
    pub(super) client: &'a Client,
    auth: &'a RegistryAuth,
    cred: Option<&'a Credential>,
    /// For reading a 401's body again.
    http: &'a reqwest::Client,
    pub(super) image: &'a Reference,
    pub(super) name: &'a str,
    blobs: &'a Path,
    /// Where layer bytes are reported as they arrive.
    pub(super) progress: Option<&'a dyn PullProgress>,
}

impl Fetch<'_> {
    /// Fetches the top-level manifest, following indexes to linux/amd64. Returns the
    /// descriptor the reference names, the digests of the documents fetched (indexes, then
    /// the image manifest last) and the image manifest.
    async fn manifests(&self) -> Result<(Descriptor, Vec<String>, ImageManifest), ImageError> {
        let mut top = None;
        let mut documents = Vec::new();
        let mut target = self.image.clone();
        for _ in 0..=MAX_INDEX_DEPTH {
            let desc = self.manifest(&target).await?;
            let digest = desc.digest().to_string();
            top.get_or_insert_with(|| desc.clone());
            documents.push(digest.clone());
            let bytes = self.read_staged(&digest)?;
            let json_err = |what: &str, source| ImageError::Json {
                what: format!("{what} {digest} of {}", self.name),
                source,
            };
            if is_index(desc.media_type()) {
                let index: ImageIndex =
                    serde_json::from_slice(&bytes).map_err(|e| json_err("image index", e))?;
                let entry =
                    pick_platform(&index).ok_or(ImageError::NoMatchingPlatform { digest })?;
                target = self.image.clone_with_digest(entry.digest().to_string());
                continue;
            }
            let manifest: ImageManifest =
                serde_json::from_slice(&bytes).map_err(|e| json_err("image manifest", e))?;
            let top = top.ok_or(ImageError::NoMatchingPlatform { digest })?;
            return Ok((top, documents, manifest));
        }
        Err(ImageError::UnsupportedMediaType {
            what: "image index nested too deeply",
            digest: self.name.to_owned(),
            media_type: "index".to_owned(),
        })
    }

    /// Fetches one manifest or index, checks its digest, stages it and describes it.
    async fn manifest(&self, target: &Reference) -> Result<Descriptor, ImageError> {
        let pulled = self
            .client
            .pull_manifest_raw(target, self.auth, ACCEPT)
            .await;
        let (bytes, digest) = match pulled {
            Ok(pulled) => pulled,
            Err(e) => {
                let action = format!("fetching manifest {}", target.whole());
                return Err(self.explained_err(action, e).await);
            }
        };
        let actual = digest_of(&bytes);
        if actual != digest || target.digest().is_some_and(|d| d != actual) {
            return Err(ImageError::DigestMismatch {
                expected: target.digest().unwrap_or(&digest).to_owned(),
                actual,
                path: PathBuf::from(target.whole()),
            });
        }
        if bytes.len() as u64 > MAX_JSON_BLOB {
            return Err(ImageError::BlobTooLarge {
                digest,
                size: bytes.len() as u64,
                limit: MAX_JSON_BLOB,
            });
        }
        let path = self.staged_path(&digest)?;
        fs::write(&path, &bytes).map_err(io_err("writing manifest", &path))?;
        let media_type = media_type_of(&bytes).map_err(|source| ImageError::Json {
            what: format!("manifest {digest} of {}", self.name),
            source,
        })?;
        Ok(Descriptor::new(
            media_type,
            bytes.len() as u64,
            oci_spec::image::Digest::try_from(digest.as_str()).map_err(|_| {
                ImageError::InvalidDigest {
                    digest: digest.clone(),
                    context: format!("manifest of {}", self.name),
                }
            })?,
        ))
    }

    pub(super) fn staged_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs.join(sha256_hex(digest, "registry descriptor")?))
    }

    fn read_staged(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.staged_path(digest)?;
        fs::read(&path).map_err(io_err("reading staged manifest", &path))
    }

    /// A registry error as a pull error; a 401, which `oci-client` reports without the
    /// registry's answer, gets that answer read again (`unauthorized_answer`).
    pub(super) async fn explained_err(
        &self,
        action: String,
        e: oci_client::errors::OciDistributionError,
    ) -> ImageError {
        let mut message = error_chain(&e);
        if let oci_client::errors::OciDistributionError::UnauthorizedError { url } = &e {
            let answer = unauthorized_answer(self.http, url, self.cred).await;
            message = format!("{message}: {answer}");
        }
        ImageError::Registry {
            action,
            reference: self.name.to_owned(),
            message,
        }
    }
}

/// `e` and its causes, `: `-separated (transport errors hide the reason in their sources).
pub(super) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let more = s.to_string();
        if !text.contains(&more) {
            text = format!("{text}: {more}");
        }
        source = s.source();
    }
    text
}

fn is_index(media_type: &MediaType) -> bool {
    match media_type {
        MediaType::ImageIndex => true,
        MediaType::Other(m) => m == DOCKER_MANIFEST_LIST,
        _ => false,
    }
}

/// The media type a manifest declares; an OCI document without one is an index when it lists
/// `manifests`, else an image manifest.
fn media_type_of(bytes: &[u8]) -> Result<MediaType, serde_json::Error> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Probe {
        media_type: Option<String>,
        manifests: Option<serde_json::Value>,
    }
    let probe: Probe = serde_json::from_slice(bytes)?;
    Ok(match (probe.media_type, probe.manifests) {
        (Some(m), _) => MediaType::from(m.as_str()),
        (None, Some(_)) => MediaType::ImageIndex,
        (None, None) => MediaType::ImageManifest,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_comes_from_the_document_or_its_shape() {
        let docker = br#"{"schemaVersion":2,"mediaType":"application/vnd.docker.distribution.manifest.list.v2+json","manifests":[]}"#;
        assert!(is_index(&media_type_of(docker).expect("parses")));
        let bare_index = br#"{"schemaVersion":2,"manifests":[]}"#;
        assert_eq!(
            media_type_of(bare_index).expect("parses"),
            MediaType::ImageIndex
        );
        let bare_manifest = br#"{"schemaVersion":2,"layers":[]}"#;
        assert_eq!(
            media_type_of(bare_manifest).expect("parses"),
            MediaType::ImageManifest
        );
    }
}
