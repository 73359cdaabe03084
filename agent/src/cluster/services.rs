//! The cluster's Services and EndpointSlices for the node's dataplane: two list+watches (every
//! namespace, kube-runtime's watcher, which resumes from the last resourceVersion and relists
//! on 410 Gone) into [`ApiServices`]. Until both lists have completed the set is unknown and
//! the dataplane keeps what it has (a previous agent's maps keep serving); a relist replaces a
//! list whole when it is done, and a broken watch keeps the last good state. Every change
//! bumps a generation and wakes the daemon (`changed`), so an endpoint change reaches the maps
//! without waiting for the next scan tick.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::Service as ApiService;
use k8s_openapi::api::discovery::v1::EndpointSlice as ApiEndpointSlice;
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use kube::Resource;
use serde::de::DeserializeOwned;
use tokio::sync::Notify;

use crate::spec::{endpoint_slice_from_api, service_from_api, EndpointSlice, Service, SpecError};

/// The API's Services and EndpointSlices, by `namespace/name`; `None` until listed.
#[derive(Debug, Default)]
pub struct ApiServices {
    services: Option<BTreeMap<String, Service>>,
    slices: Option<BTreeMap<String, EndpointSlice>>,
    generation: u64,
}

/// One consistent view of [`ApiServices`].
#[derive(Debug, Clone)]
pub struct ServicesSnapshot {
    pub generation: u64,
    pub services: Arc<Vec<Service>>,
    pub slices: Arc<Vec<EndpointSlice>>,
}

impl ApiServices {
    /// Both lists, or `None` while either was never listed.
    pub fn snapshot(&self) -> Option<ServicesSnapshot> {
        let (services, slices) = (self.services.as_ref()?, self.slices.as_ref()?);
        Some(ServicesSnapshot {
            generation: self.generation,
            services: Arc::new(services.values().cloned().collect()),
            slices: Arc::new(slices.values().cloned().collect()),
        })
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
}

/// The shared state and the daemon's wake-up.
#[derive(Debug, Default)]
pub struct ServiceWatch {
    pub state: Mutex<ApiServices>,
    pub changed: Notify,
    /// The cluster DNS server's wake-up (its zone follows the same changes).
    pub dns_changed: Notify,
}

impl ServiceWatch {
    fn update<T>(
        &self,
        pick: fn(&mut ApiServices) -> &mut Option<BTreeMap<String, T>>,
        f: impl FnOnce(&mut Option<BTreeMap<String, T>>),
    ) {
        let mut s = self.state.lock().unwrap_or_else(|p| p.into_inner());
        f(pick(&mut s));
        s.generation += 1;
        drop(s);
        self.changed.notify_one();
        self.dns_changed.notify_one();
    }
}

fn services(s: &mut ApiServices) -> &mut Option<BTreeMap<String, Service>> {
    &mut s.services
}

fn slices(s: &mut ApiServices) -> &mut Option<BTreeMap<String, EndpointSlice>> {
    &mut s.slices
}

/// Starts both watches on the current runtime.
pub fn spawn(client: kube::Client, watch: Arc<ServiceWatch>) {
    let api: Api<ApiService> = Api::all(client.clone());
    tokio::spawn(run(api, watch.clone(), service_from_api, services));
    let api: Api<ApiEndpointSlice> = Api::all(client);
    tokio::spawn(run(api, watch, endpoint_slice_from_api, slices));
}

fn key<K: Resource>(object: &K) -> String {
    let meta = object.meta();
    format!(
        "{}/{}",
        meta.namespace.as_deref().unwrap_or_default(),
        meta.name.as_deref().unwrap_or_default()
    )
}

/// The object as the agent's type; one the agent cannot read is logged and left out (it is
/// not a transient failure: the same object would fail again).
fn convert<K, T>(object: &K, from_api: fn(serde_json::Value) -> Result<T, SpecError>) -> Option<T>
where
    K: Resource<DynamicType = ()> + serde::Serialize,
{
    let mut value = match serde_json::to_value(object) {
        Ok(v) => v,
        Err(e) => {
            tracing::warn!(object = %key(object), error = %e, "cannot encode an API object");
            return None;
        }
    };
    // The dataplane reads neither; they only carry unknown fields into validation.
    if let Some(map) = value.as_object_mut() {
        map.remove("status");
        if let Some(meta) = map.get_mut("metadata").and_then(|m| m.as_object_mut()) {
            meta.remove("managedFields");
        }
    }
    match from_api(value) {
        Ok(t) => Some(t),
        Err(e) => {
            let kind = K::kind(&());
            tracing::warn!(%kind, object = %key(object), error = %e, "leaving out an object the dataplane cannot read");
            None
        }
    }
}

async fn run<K, T>(
    api: Api<K>,
    watch: Arc<ServiceWatch>,
    from_api: fn(serde_json::Value) -> Result<T, SpecError>,
    pick: fn(&mut ApiServices) -> &mut Option<BTreeMap<String, T>>,
) where
    K: Resource<DynamicType = ()>
        + Clone
        + DeserializeOwned
        + serde::Serialize
        + Debug
        + Send
        + 'static,
{
    let kind = K::kind(&()).to_string();
    let mut stream = watcher(api, watcher::Config::default())
        .default_backoff()
        .boxed();
    // The list in progress: replaces the state whole when done.
    let mut listing: Option<BTreeMap<String, T>> = None;
    while let Some(event) = stream.next().await {
        let event = match event {
            Ok(e) => e,
            Err(e) => {
                tracing::warn!(%kind, error = %e, "watching; keeping the last state and retrying");
                continue;
            }
        };
        match event {
            Event::Init => listing = Some(BTreeMap::new()),
            Event::InitApply(o) => {
                if let (Some(l), Some(t)) = (listing.as_mut(), convert(&o, from_api)) {
                    l.insert(key(&o), t);
                }
            }
            Event::InitDone => {
                if let Some(l) = listing.take() {
                    tracing::info!(%kind, count = l.len(), "listed for the dataplane");
                    watch.update(pick, |s| *s = Some(l));
                }
            }
            Event::Apply(o) => {
                let t = convert(&o, from_api);
                watch.update(pick, |s| {
                    if let Some(s) = s.as_mut() {
                        match t {
                            Some(t) => s.insert(key(&o), t),
                            None => s.remove(&key(&o)),
                        };
                    }
                });
            }
            Event::Delete(o) => watch.update(pick, |s| {
                if let Some(s) = s.as_mut() {
                    s.remove(&key(&o));
                }
            }),
        }
    }
}
