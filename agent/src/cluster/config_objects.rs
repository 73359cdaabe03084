//! The ConfigMaps and Secrets the node's pods reference, each watched on its own (a list+watch
//! pinned to its name, what the Node authorizer allows a node, as kubelet's Watch strategy
//! does) with kube-runtime's watcher, which resumes and relists by itself. A broken watch
//! keeps the last content ("could not read" is never "absent"). Serves [`ConfigSource`].

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use kube::api::Api;
use kube::runtime::watcher::{self, watcher, Event};
use kube::runtime::WatchStreamExt;
use tokio::sync::watch;

use crate::config_source::{ConfigSource, Lookup, ObjectData, ObjectKind};

type Key = (ObjectKind, String, String);

/// The watched objects, by (kind, namespace, name).
pub struct ConfigObjects {
    client: kube::Client,
    runtime: tokio::runtime::Handle,
    objects: Arc<Mutex<BTreeMap<Key, Lookup>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl ConfigObjects {
    /// A store whose watches run on `runtime`.
    pub fn new(client: kube::Client, runtime: tokio::runtime::Handle) -> Self {
        ConfigObjects {
            client,
            runtime,
            objects: Arc::default(),
            changed: Arc::new(watch::Sender::new(0)),
        }
    }

    fn watch(&self, key: Key) {
        let (kind, ns, name) = key.clone();
        let store = Watched {
            key,
            objects: self.objects.clone(),
            changed: self.changed.clone(),
        };
        let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
        match kind {
            ObjectKind::ConfigMap => {
                let api: Api<ConfigMap> = Api::namespaced(self.client.clone(), &ns);
                self.runtime.spawn(run(api, config, store, config_map_data));
            }
            ObjectKind::Secret => {
                let api: Api<Secret> = Api::namespaced(self.client.clone(), &ns);
                self.runtime.spawn(run(api, config, store, secret_data));
            }
        }
    }
}

impl ConfigSource for ConfigObjects {
    fn lookup(&self, kind: ObjectKind, namespace: &str, name: &str) -> Lookup {
        let key = (kind, namespace.to_string(), name.to_string());
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(known) = objects.get(&key) {
            return known.clone();
        }
        objects.insert(key.clone(), Lookup::Pending);
        drop(objects);
        self.watch(key);
        Lookup::Pending
    }

    fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

fn config_map_data(cm: ConfigMap) -> ObjectData {
    let mut out: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    for (k, v) in cm.data.unwrap_or_default() {
        out.insert(k, v.into_bytes());
    }
    for (k, v) in cm.binary_data.unwrap_or_default() {
        out.insert(k, v.0);
    }
    Arc::new(out)
}

fn secret_data(s: Secret) -> ObjectData {
    let data = s.data.unwrap_or_default();
    Arc::new(data.into_iter().map(|(k, v)| (k, v.0)).collect())
}

/// One watched object's slot.
struct Watched {
    key: Key,
    objects: Arc<Mutex<BTreeMap<Key, Lookup>>>,
    changed: Arc<watch::Sender<u64>>,
}

impl Watched {
    fn set(&self, value: Lookup) {
        let mut objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        if objects.get(&self.key) == Some(&value) {
            return;
        }
        objects.insert(self.key.clone(), value);
        drop(objects);
        self.changed.send_modify(|g| *g += 1);
    }

    /// A failed read changes only an object never read.
    fn failed(&self, error: String) {
        let objects = self.objects.lock().unwrap_or_else(|p| p.into_inner());
        let never_read = matches!(
            objects.get(&self.key),
            Some(Lookup::Pending | Lookup::Failed(_))
        );
        drop(objects);
        if never_read {
            self.set(Lookup::Failed(error));
        }
    }
}

async fn run<K>(api: Api<K>, config: watcher::Config, store: Watched, data: fn(K) -> ObjectData)
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + std::fmt::Debug
        + Send
        + 'static,
{
    let (kind, ns, name) = store.key.clone();
    let mut stream = watcher(api, config).default_backoff().boxed();
    // The list in progress: the object, if the list has it.
    let mut listing: Option<Option<ObjectData>> = None;
    while let Some(event) = stream.next().await {
        match event {
            Err(e) => {
                tracing::warn!(kind = kind.title(), %ns, %name, error = %e, "watching; keeping the last content");
                store.failed(e.to_string());
            }
            Ok(Event::Init) => listing = Some(None),
            Ok(Event::InitApply(o)) => listing = Some(Some(data(o))),
            Ok(Event::InitDone) => match listing.take() {
                Some(Some(d)) => store.set(Lookup::Present(d)),
                Some(None) | None => store.set(Lookup::Absent),
            },
            Ok(Event::Apply(o)) => store.set(Lookup::Present(data(o))),
            Ok(Event::Delete(_)) => store.set(Lookup::Absent),
        }
    }
}
