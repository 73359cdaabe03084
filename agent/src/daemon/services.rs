//! Feeds the service dataplane from the daemon: each scan tick, the manifest directory's
//! Services and EndpointSlices plus the pods' labels, IPs and readiness go to
//! [`Dataplane::sync`] on a blocking thread. A tick where neither the manifests nor the pods
//! changed costs a comparison and no sync.

use std::sync::{Arc, Mutex};

use super::manifests::ManifestDir;
use crate::dataplane::{Dataplane, LocalPod, SyncInput};
use crate::spec::{EndpointSlice, Service};

/// The daemon's side of the dataplane.
pub struct ServiceSync {
    dataplane: Arc<Mutex<Dataplane>>,
    /// Manifest generation the cached objects come from.
    generation: Option<u64>,
    services: Arc<Vec<Service>>,
    slices: Arc<Vec<EndpointSlice>>,
    /// Pods as of the last sync.
    pods: Option<Vec<LocalPod>>,
}

impl ServiceSync {
    pub fn new(dataplane: Arc<Mutex<Dataplane>>) -> Self {
        ServiceSync {
            dataplane,
            generation: None,
            services: Arc::default(),
            slices: Arc::default(),
            pods: None,
        }
    }

    /// Syncs when the manifests or the pods changed (or the dataplane asks to retry).
    /// Does nothing until the manifest directory has been listed once: an unknown directory
    /// is not one without Services.
    pub async fn tick(&mut self, dir: &ManifestDir, pods: Vec<LocalPod>) {
        if !dir.is_known() {
            return;
        }
        let manifests_changed = self.generation != Some(dir.generation());
        if manifests_changed {
            self.services = Arc::new(dir.services());
            self.slices = Arc::new(dir.endpoint_slices());
            self.generation = Some(dir.generation());
        }
        let dp = self.dataplane.clone();
        let retry = lock(&dp).needs_resync();
        if !manifests_changed && !retry && self.pods.as_ref() == Some(&pods) {
            return;
        }
        let input = SyncInput {
            services: self.services.clone(),
            slices: self.slices.clone(),
            pods: pods.clone(),
        };
        match tokio::task::spawn_blocking(move || lock(&dp).sync(&input)).await {
            Ok(_) => self.pods = Some(pods),
            Err(e) => tracing::error!(error = %e, "dataplane sync task failed"),
        }
    }
}

fn lock(dp: &Mutex<Dataplane>) -> std::sync::MutexGuard<'_, Dataplane> {
    dp.lock().unwrap_or_else(|p| p.into_inner())
}
