//! One blob of a registry pull, streamed to its staged file and sha256-hashed as it arrives.
//! A transfer that breaks before the blob is complete resumes where it stopped with a Range
//! request (`oci-client`'s partial blob pull), a few times at most; a registry that answers
//! the whole blob instead restarts the file. A blob whose size or digest differs from its
//! descriptor is removed and fails the pull: this file must never leave a staged blob that
//! was not verified whole.

use std::fs;
use std::path::PathBuf;

use futures::StreamExt;
use oci_client::client::{BlobResponse, SizedStream};
use oci_spec::image::Descriptor;
use sha2::{Digest as _, Sha256};
use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use super::error::{io_err, ImageError};
use super::pull::{error_chain, Fetch};

/// Range requests after broken transfers, per blob.
const MAX_RESUMES: u32 = 3;

impl Fetch<'_> {
    /// Streams the blob of `desc` to its staged file; a wrong size or digest removes the file
    /// and fails the pull.
    pub(super) async fn blob(&self, desc: &Descriptor) -> Result<(), ImageError> {
        let digest = desc.digest().to_string();
        let path = self.staged_path(&digest)?;
        let action = || format!("downloading blob {digest}");
        let stream = match self
            .client
            .pull_blob_stream(self.image, digest.as_str())
            .await
        {
            Ok(stream) => stream,
            Err(e) => return Err(self.explained_err(action(), e).await),
        };
        let mut file = tokio::fs::File::create(&path)
            .await
            .map_err(io_err("creating", &path))?;
        let mut download = Download {
            hasher: Sha256::new(),
            len: 0,
        };
        let result = self
            .transfer(desc, stream, &mut file, &mut download, &path)
            .await;
        let checked = result.and_then(|()| download.check(desc, &self.source(&digest)));
        if checked.is_err() {
            let _ = fs::remove_file(&path);
        } else {
            tracing::info!(image = %self.name, blob = %digest, bytes = download.len, "blob downloaded");
        }
        checked
    }

    /// Copies `stream` into `file`, resuming with Range when the transfer breaks early.
    async fn transfer(
        &self,
        desc: &Descriptor,
        mut stream: SizedStream,
        file: &mut tokio::fs::File,
        download: &mut Download,
        path: &std::path::Path,
    ) -> Result<(), ImageError> {
        let digest = desc.digest().to_string();
        let action = || format!("downloading blob {digest}");
        let mut resumes = 0;
        loop {
            let Some(chunk) = stream.next().await else {
                break;
            };
            let chunk = match chunk {
                Ok(chunk) => chunk,
                // Complete: the size and digest checks say what went wrong.
                Err(_) if download.len >= desc.size() => break,
                Err(e) if resumes < MAX_RESUMES => {
                    resumes += 1;
                    tracing::warn!(image = %self.name, blob = %digest, offset = download.len, error = %error_chain(&e), "blob transfer broke; resuming with Range");
                    let resumed = self
                        .client
                        .pull_blob_stream_partial(self.image, digest.as_str(), download.len, None)
                        .await;
                    stream = match resumed {
                        Ok(BlobResponse::Partial(s)) => s,
                        Ok(BlobResponse::Full(s)) => {
                            tracing::info!(image = %self.name, blob = %digest, "registry sent the whole blob again");
                            if let Some(p) = self.progress {
                                p.restarted(&digest);
                            }
                            file.set_len(0).await.map_err(io_err("truncating", path))?;
                            file.rewind().await.map_err(io_err("rewinding", path))?;
                            *download = Download {
                                hasher: Sha256::new(),
                                len: 0,
                            };
                            s
                        }
                        Err(e) => return Err(self.explained_err(action(), e).await),
                    };
                    continue;
                }
                Err(e) => {
                    return Err(ImageError::Registry {
                        action: action(),
                        reference: self.name.to_owned(),
                        message: error_chain(&e),
                    })
                }
            };
            download.len += chunk.len() as u64;
            if download.len > desc.size() {
                break;
            }
            download.hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(io_err("writing", path))?;
            if let Some(p) = self.progress {
                p.bytes(&digest, chunk.len() as u64);
            }
        }
        file.flush().await.map_err(io_err("writing", path))
    }

    /// How errors name a blob of this pull: `<reference>@<digest>`.
    fn source(&self, digest: &str) -> PathBuf {
        PathBuf::from(format!("{}@{digest}", self.name))
    }
}

/// The bytes of a blob received so far.
struct Download {
    hasher: Sha256,
    len: u64,
}

impl Download {
    /// Fails unless exactly the descriptor's size arrived with its digest.
    fn check(&mut self, desc: &Descriptor, source: &std::path::Path) -> Result<(), ImageError> {
        let digest = desc.digest().to_string();
        if self.len != desc.size() {
            return Err(ImageError::SizeMismatch {
                digest,
                expected: desc.size(),
                actual: self.len,
                path: source.to_path_buf(),
            });
        }
        let actual = format!(
            "sha256:{}",
            hex::encode(std::mem::take(&mut self.hasher).finalize())
        );
        if actual != digest {
            return Err(ImageError::DigestMismatch {
                expected: digest,
                actual,
                path: source.to_path_buf(),
            });
        }
        Ok(())
    }
}
