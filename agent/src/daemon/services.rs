//! Feeds the service dataplane from the daemon: each scan tick (and each change of the
//! cluster's Services), the manifest directory's Services and EndpointSlices, the API's (when
//! joined) and the pods' labels, IPs and readiness go to [`Dataplane::sync`] on a blocking
//! thread. A tick where nothing changed costs a comparison and no sync. Nothing is synced
//! until every source has been listed once: an unknown source is not one without Services.

use std::sync::{Arc, Mutex};

use super::manifests::ManifestDir;
use crate::cluster::ServicesSnapshot;
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
    /// Generation of the API's objects in the last sync.
    api_generation: Option<u64>,
}

impl ServiceSync {
    pub fn new(dataplane: Arc<Mutex<Dataplane>>) -> Self {
        ServiceSync {
            dataplane,
            generation: None,
            services: Arc::default(),
            slices: Arc::default(),
            pods: None,
            api_generation: None,
        }
    }

    /// Syncs when the manifests, the API's objects or the pods changed (or the dataplane
    /// asks to retry). `api`: `None` when not joined; `Some(None)` while the API's Services
    /// were not listed yet.
    pub async fn tick(
        &mut self,
        dir: &ManifestDir,
        api: Option<Option<ServicesSnapshot>>,
        pods: Vec<LocalPod>,
    ) {
        if !dir.is_known() {
            return;
        }
        let api = match api {
            None => None,
            Some(None) => return,
            Some(Some(snapshot)) => Some(snapshot),
        };
        let manifests_changed = self.generation != Some(dir.generation());
        if manifests_changed {
            self.services = Arc::new(dir.services());
            self.slices = Arc::new(dir.endpoint_slices());
            self.generation = Some(dir.generation());
        }
        let api_generation = api.as_ref().map(|a| a.generation);
        let api_changed = api_generation != self.api_generation;
        let dp = self.dataplane.clone();
        let retry = lock(&dp).needs_resync();
        if !manifests_changed && !api_changed && !retry && self.pods.as_ref() == Some(&pods) {
            return;
        }
        let (services, slices) = match &api {
            None => (self.services.clone(), self.slices.clone()),
            Some(a) => (
                Arc::new(concat(&self.services, &a.services)),
                Arc::new(concat(&self.slices, &a.slices)),
            ),
        };
        let input = SyncInput {
            services,
            slices,
            pods: pods.clone(),
        };
        match tokio::task::spawn_blocking(move || lock(&dp).sync(&input)).await {
            Ok(_) => {
                self.pods = Some(pods);
                self.api_generation = api_generation;
            }
            Err(e) => tracing::error!(error = %e, "dataplane sync task failed"),
        }
    }
}

fn concat<T: Clone>(a: &[T], b: &[T]) -> Vec<T> {
    a.iter().chain(b).cloned().collect()
}

fn lock(dp: &Mutex<Dataplane>) -> std::sync::MutexGuard<'_, Dataplane> {
    dp.lock().unwrap_or_else(|p| p.into_inner())
}
