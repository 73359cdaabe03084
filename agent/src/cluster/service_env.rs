//! The cluster's Services for containers' environments (`crate::service_env`): a list+watch
//! of every namespace's Services (kube-runtime's watcher, which resumes and relists) kept as
//! the few fields the variables need. Until the first list completes the set is unknown and
//! containers wait, as kubelet's do; a broken watch keeps the last good state.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;

use crate::service_env::{EnvPort, EnvService, ServiceSource};

/// The Services by `namespace/name`; `None` until listed.
#[derive(Debug, Default)]
pub struct ApiServiceEnv {
    services: Mutex<Option<Arc<Vec<EnvService>>>>,
}

impl ServiceSource for ApiServiceEnv {
    fn services(&self) -> Option<Arc<Vec<EnvService>>> {
        self.services
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

impl ApiServiceEnv {
    /// Starts the watch on the current runtime.
    pub fn spawn(client: kube::Client) -> Arc<ApiServiceEnv> {
        let this = Arc::new(ApiServiceEnv::default());
        tokio::spawn(run(Api::all(client), this.clone()));
        this
    }

    fn publish(&self, all: &BTreeMap<String, EnvService>) {
        let list: Arc<Vec<EnvService>> = Arc::new(all.values().cloned().collect());
        *self.services.lock().unwrap_or_else(|p| p.into_inner()) = Some(list);
    }
}

/// The fields of `s` the variables need.
pub fn env_service(s: &Service) -> EnvService {
    let spec = s.spec.clone().unwrap_or_default();
    EnvService {
        namespace: s.metadata.namespace.clone().unwrap_or_default(),
        name: s.metadata.name.clone().unwrap_or_default(),
        cluster_ip: spec.cluster_ip.unwrap_or_default(),
        ports: spec
            .ports
            .unwrap_or_default()
            .into_iter()
            .map(|p| EnvPort {
                name: p.name.unwrap_or_default(),
                port: p.port,
                protocol: p.protocol.unwrap_or_default(),
            })
            .collect(),
    }
}

fn key(s: &Service) -> String {
    format!(
        "{}/{}",
        s.metadata.namespace.as_deref().unwrap_or_default(),
        s.metadata.name.as_deref().unwrap_or_default()
    )
}

async fn run(api: Api<Service>, out: Arc<ApiServiceEnv>) {
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    let mut current: BTreeMap<String, EnvService> = BTreeMap::new();
    let mut listing: Option<BTreeMap<String, EnvService>> = None;
    let mut listed = false;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(error = %e, "watching Services for environments; retrying");
                continue;
            }
        };
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(s) => {
                if let Some(l) = listing.as_mut() {
                    l.insert(key(&s), env_service(&s));
                }
            }
            Event::InitDone => {
                if let Some(l) = listing.take() {
                    current = l;
                    listed = true;
                }
            }
            Event::Apply(s) => {
                current.insert(key(&s), env_service(&s));
            }
            Event::Delete(s) => {
                current.remove(&key(&s));
            }
        }
        if listed && listing.is_none() {
            out.publish(&current);
        }
    }
}
