//! Getting a container's image before it is created, by its `imagePullPolicy` (Kubernetes'
//! defaults: `:latest` or no tag → Always, else IfNotPresent): Never uses only the store,
//! IfNotPresent pulls what is missing, Always asks the registry every time (blobs already
//! stored are not downloaded again). Failures become the Waiting reasons kubelet reports:
//! ErrImageNeverPull, ErrImagePull (with the registry's own error text), then
//! ImagePullBackOff while the retries back off.

use super::start::StartFailure;
use super::worker::PodWorker;
use crate::image::ResolvedImage;
use crate::spec::{Container, PullPolicy};

impl PodWorker {
    /// The resolved image of `container`, pulled first if its policy says so.
    pub(super) async fn ensure_image(
        &self,
        container: &Container,
    ) -> Result<ResolvedImage, StartFailure> {
        let images = &self.ctx.images;
        let image = &container.image;
        let pull = match container.pull_policy() {
            PullPolicy::Never => {
                return images.resolve(image).map_err(|e| StartFailure::Waiting {
                    reason: "ErrImageNeverPull",
                    message: format!(
                        "Container image \"{image}\" is not present with pull policy of Never: {e}"
                    ),
                })
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
            puller
                .pull(images, image)
                .await
                .map_err(|e| StartFailure::Waiting {
                    reason: "ErrImagePull",
                    message: e.to_string(),
                })?;
        }
        images.resolve(image).map_err(|e| StartFailure::Waiting {
            reason: "ErrImagePull",
            message: e.to_string(),
        })
    }
}
