//! Getting a container's image before it is created, by its `imagePullPolicy` (Kubernetes'
//! defaults: `:latest` or no tag → Always, else IfNotPresent): Never uses only the store,
//! IfNotPresent pulls what is missing, Always asks the registry every time (blobs already
//! stored are not downloaded again). Failures become the Waiting reasons kubelet reports:
//! ErrImageNeverPull, ErrImagePull (with the registry's own error text), then
//! ImagePullBackOff while the retries back off. Registry credentials come from the pod's
//! `imagePullSecrets` (read through the config source, like env Secrets) as kubelet's
//! `MakeDockerKeyring` reads them: a Secret's `.dockerconfigjson` or `.dockercfg`, other
//! Secrets ignored, a missing one skipped with kubelet's FailedToRetrieveImagePullSecret
//! Warning (the pull may still succeed; reported even when no pull follows), a malformed one
//! failing the pull. Each use of an image is recorded for the least-recently-used
//! order of image garbage collection, and a pull wakes that collection.

use super::start::StartFailure;
use super::worker::PodWorker;
use crate::config_source::{Lookup, ObjectKind};
use crate::image::{Keyring, ResolvedImage};
use crate::spec::{Container, PullPolicy};

fn pull_error(message: String) -> StartFailure {
    StartFailure::Waiting {
        reason: "ErrImagePull",
        message,
    }
}

impl PodWorker {
    /// The resolved image of `container`, pulled first if its policy says so.
    pub(super) async fn ensure_image(
        &self,
        container: &Container,
    ) -> Result<ResolvedImage, StartFailure> {
        let images = &self.ctx.images;
        let image = &container.image;
        let asked = std::time::Instant::now();
        self.lock_status().pulls.remove(&container.name);
        // Read (and missing ones reported) whether or not a pull follows, like kubelet's
        // every pod sync; a malformed one fails only a pull.
        let keyring = self.pull_secrets_keyring().await;
        let pull = match container.pull_policy() {
            PullPolicy::Never => {
                let resolved = images.resolve(image).map_err(|e| StartFailure::Waiting {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never: {e}"
                    ),
                })?;
                self.mark_used(image);
                return Ok(resolved);
            }
            PullPolicy::IfNotPresent => images.resolve(image).is_err(),
            PullPolicy::Always => true,
        };
        if pull {
            let puller = self
                .ctx
                .puller
                .as_ref()
                .ok_or_else(|| StartFailure::Waiting {
                    reason: "ErrImagePull",
                    message: format!("pulling {image}: this agent has no registry client"),
                })?;
            let keyring = keyring?;
            *self
                .lock_status()
                .pulls_begun
                .entry(container.name.clone())
                .or_default() += 1;
            let pulling = std::time::Instant::now();
            let pulled = puller
                .pull_with(images, image, &keyring)
                .await
                .map_err(|e| pull_error(e.to_string()))?;
            let text = format!(
                "Successfully pulled image \"{image}\" in {} ({} including waiting). Image size: {} bytes.",
                crate::go_duration::go_duration(pulling.elapsed()),
                crate::go_duration::go_duration(asked.elapsed()),
                pulled.size
            );
            self.lock_status()
                .pulls
                .insert(container.name.clone(), text);
            self.ctx.image_gc_wake.notify_one();
        }
        let resolved = images.resolve(image).map_err(|e| StartFailure::Waiting {
            reason: "ErrImagePull",
            message: e.to_string(),
        })?;
        self.mark_used(image);
        Ok(resolved)
    }

    /// Records that a container uses `image` now: image garbage collection removes the least
    /// recently used images first.
    fn mark_used(&self, image: &str) {
        if let Err(e) = self.ctx.images.mark_used(image) {
            tracing::warn!(image = %image, error = %e, "recording the image's last use");
        }
    }

    /// The registry credentials of the pod's `imagePullSecrets`.
    async fn pull_secrets_keyring(&self) -> Result<Keyring, StartFailure> {
        let mut keyring = Keyring::default();
        let refs: Vec<(ObjectKind, String)> = self
            .pod
            .spec
            .image_pull_secrets
            .iter()
            .map(|r| (ObjectKind::Secret, r.name.clone()))
            .collect();
        if refs.is_empty() {
            return Ok(keyring);
        }
        self.wait_first_read(&refs).await?;
        let read = self.object_reader();
        let ns = &self.pod.metadata.namespace;
        let mut missing = Vec::new();
        for (_, name) in &refs {
            let data = match read(ObjectKind::Secret, name) {
                Lookup::Present(data) => data,
                Lookup::Absent | Lookup::Pending | Lookup::Failed(_) => {
                    missing.push(name.as_str());
                    continue;
                }
            };
            let what = format!("image pull secret {ns}/{name}");
            let non_empty = |key: &str| data.get(key).filter(|b| !b.is_empty());
            let added = if let Some(json) = non_empty(".dockerconfigjson") {
                keyring.add_docker_config_json(&what, json)
            } else if let Some(cfg) = non_empty(".dockercfg") {
                keyring.add_dockercfg(&what, cfg)
            } else {
                Ok(())
            };
            added.map_err(|e| pull_error(e.to_string()))?;
        }
        if !missing.is_empty() {
            // kubelet's FailedToRetrieveImagePullSecret, a Warning event of the pod.
            let message = format!(
                "Unable to retrieve some image pull secrets ({}); attempting to pull the image may not succeed.",
                missing.join(", ")
            );
            tracing::warn!(pod = %self.pod.metadata.name, "{message}");
            self.lock_status()
                .warn("FailedToRetrieveImagePullSecret", message);
        }
        Ok(keyring)
    }
}
