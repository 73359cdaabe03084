//! Pulling an image from a registry into the store. `oci-client` speaks the distribution
//! protocol (anonymous, basic and bearer-token auth through the WWW-Authenticate challenge,
//! manifest and blob requests); this file decides what to fetch and where the bytes go.
//!
//! Every blob streams into a download directory under the store root while it is hashed; a
//! blob whose size or sha256 differs from its descriptor is refused and the directory removed,
//! so nothing of it is stored. The complete download is then imported like an OCI layout
//! (`ImageStore::import_staged`), which verifies again, unpacks through `unpack.rs` and records
//! the reference. This file must never write into `blobs/`, `layers/` or `refs.json` itself.
//! Plain HTTP is used only for the registries listed as insecure.

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};

use futures::StreamExt;
use oci_client::client::{ClientConfig, ClientProtocol};
use oci_client::secrets::RegistryAuth;
use oci_client::Client;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

use super::digest::{digest_of, sha256_hex};
use super::error::{io_err, ImageError};
use super::import::{pick_platform, DOCKER_MANIFEST, DOCKER_MANIFEST_LIST};
use super::reference::{self, Reference};
use super::store::{ScratchDir, MAX_JSON_BLOB};
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

/// A registry client for one node: which registries may be spoken to over plain HTTP.
pub struct Puller {
    client: Client,
}

impl Puller {
    /// A client using HTTPS (rustls, ring) everywhere except the `insecure` registries
    /// (`HOST:PORT` as written in image references), which get plain HTTP.
    pub fn new(insecure: &[String]) -> Result<Self, ImageError> {
        // reqwest is built without a default crypto provider: use ring, like the rest of bosun.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let config = ClientConfig {
            protocol: ClientProtocol::HttpsExcept(insecure.to_vec()),
            platform_resolver: Some(Box::new(oci_client::client::linux_amd64_resolver)),
            user_agent: concat!("bosun-agent/", env!("CARGO_PKG_VERSION")),
            ..ClientConfig::default()
        };
        let client = Client::try_from(config).map_err(|e| ImageError::Registry {
            action: "creating the registry client".to_owned(),
            reference: String::new(),
            message: e.to_string(),
        })?;
        Ok(Puller { client })
    }

    /// Pulls `reference` (normalised like Kubernetes) and records it in `store`.
    pub async fn pull(
        &self,
        store: &ImageStore,
        reference: &str,
    ) -> Result<ImageSummary, ImageError> {
        let image = reference::parse(reference)?;
        tracing::info!(image = %image.whole(), "pulling");
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
        let fetch = Fetch {
            client: &self.client,
            image: &image,
            name: &name,
            blobs: &blobs,
        };
        let top = fetch.manifests(store).await?;
        tracing::info!(image = %name, digest = %top.digest(), "downloaded; importing");
        let store = store.clone();
        tokio::task::spawn_blocking(move || {
            let imported = store.import_staged(staging.path(), &name, &top);
            drop(staging);
            imported
        })
        .await
        .map_err(|e| ImageError::Registry {
            action: "importing the download".to_owned(),
            reference: reference.to_owned(),
            message: e.to_string(),
        })?
    }
}

/// One pull in progress.
struct Fetch<'a> {
    client: &'a Client,
    image: &'a Reference,
    name: &'a str,
    blobs: &'a Path,
}

impl Fetch<'_> {
    /// Fetches the top-level manifest (following indexes to linux/amd64), the config and the
    /// layers the store does not have yet. Returns the descriptor the reference names.
    async fn manifests(&self, store: &ImageStore) -> Result<Descriptor, ImageError> {
        let mut top = None;
        let mut target = self.image.clone();
        for _ in 0..=MAX_INDEX_DEPTH {
            let desc = self.manifest(&target).await?;
            let digest = desc.digest().to_string();
            top.get_or_insert_with(|| desc.clone());
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
            for blob in std::iter::once(manifest.config()).chain(manifest.layers()) {
                if !store.dirs.blob_path(blob.digest().as_ref())?.is_file() {
                    self.blob(blob).await?;
                }
            }
            return top.ok_or(ImageError::NoMatchingPlatform { digest });
        }
        Err(ImageError::UnsupportedMediaType {
            what: "image index nested too deeply",
            digest: self.name.to_owned(),
            media_type: "index".to_owned(),
        })
    }

    /// Fetches one manifest or index, checks its digest, stages it and describes it.
    async fn manifest(&self, target: &Reference) -> Result<Descriptor, ImageError> {
        let (bytes, digest) = self
            .client
            .pull_manifest_raw(target, &RegistryAuth::Anonymous, ACCEPT)
            .await
            .map_err(|e| self.registry_err(format!("fetching manifest {}", target.whole()), e))?;
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

    /// Streams one blob to its staged file, hashing as it goes; a wrong size or digest removes
    /// the file and fails the pull.
    async fn blob(&self, desc: &Descriptor) -> Result<(), ImageError> {
        let digest = desc.digest().to_string();
        let path = self.staged_path(&digest)?;
        let action = || format!("downloading blob {digest}");
        let mut stream = self
            .client
            .pull_blob_stream(self.image, digest.as_str())
            .await
            .map_err(|e| self.registry_err(action(), e))?;
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(io_err("creating", &path))?;
        let mut hasher = Sha256::new();
        let mut len = 0u64;
        let result = async {
            while let Some(chunk) = stream.next().await {
                let chunk = chunk.map_err(|e| ImageError::Registry {
                    action: action(),
                    reference: self.name.to_owned(),
                    message: error_chain(&e),
                })?;
                len += chunk.len() as u64;
                if len > desc.size() {
                    break;
                }
                hasher.update(&chunk);
                file.write_all(&chunk)
                    .await
                    .map_err(io_err("writing", &path))?;
            }
            file.flush().await.map_err(io_err("writing", &path))
        }
        .await;
        let checked = result.and_then(|()| {
            let source = PathBuf::from(format!("{}@{digest}", self.name));
            if len != desc.size() {
                return Err(ImageError::SizeMismatch {
                    digest: digest.clone(),
                    expected: desc.size(),
                    actual: len,
                    path: source,
                });
            }
            let actual = format!("sha256:{}", hex::encode(hasher.finalize()));
            if actual != digest {
                return Err(ImageError::DigestMismatch {
                    expected: digest.clone(),
                    actual,
                    path: source,
                });
            }
            Ok(())
        });
        if checked.is_err() {
            let _ = fs::remove_file(&path);
        } else {
            tracing::info!(image = %self.name, blob = %digest, bytes = len, "blob downloaded");
        }
        checked
    }

    fn staged_path(&self, digest: &str) -> Result<PathBuf, ImageError> {
        Ok(self.blobs.join(sha256_hex(digest, "registry descriptor")?))
    }

    fn read_staged(&self, digest: &str) -> Result<Vec<u8>, ImageError> {
        let path = self.staged_path(digest)?;
        fs::read(&path).map_err(io_err("reading staged manifest", &path))
    }

    fn registry_err(
        &self,
        action: String,
        e: oci_client::errors::OciDistributionError,
    ) -> ImageError {
        ImageError::Registry {
            action,
            reference: self.name.to_owned(),
            message: error_chain(&e),
        }
    }
}

/// `e` and its causes, `: `-separated (transport errors hide the reason in their sources).
fn error_chain(e: &dyn std::error::Error) -> String {
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
