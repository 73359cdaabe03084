//! The EndpointSlice and Endpoints controllers, as kube-controller-manager's: for every Service
//! with a selector, the pods of its namespace that match and have an IP become endpoints —
//! ready/serving/terminating conditions from the pod (serving: the pod is Ready; ready: serving
//! and not terminating, or `publishNotReadyAddresses`; terminating: it has a
//! deletionTimestamp), the node, a reference to the pod, the hostname when the pod's
//! `subdomain` is the Service — and every Service port is resolved against each pod (a named
//! `targetPort` through the pod's container ports). Pods with the same resolved ports share a
//! slice; slices are named `<service>-<hash>[-n]`, labelled `kubernetes.io/service-name` and
//! managed-by, and owned by the Service (the garbage collector removes them with it). The
//! legacy Endpoints object (what `kubectl describe service` of 1.32 reads) carries the same
//! addresses but for terminating pods (kept only with `publishNotReadyAddresses`). Writes happen only when something changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde_json::{json, Value};

use super::client::{ClientError, Loopback};
use super::informer::Informer;
use super::pods::ready_since;
use super::queue::{forward, resync_when_listed, wait_synced, work, WorkQueue};
use crate::api::selector::LabelSelector;

const MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";
const CONTROLLER: &str = "endpointslice-controller.k8s.io";
const SERVICE_NAME: &str = "kubernetes.io/service-name";
/// EndpointSlice validation's limit.
const MAX_PER_SLICE: usize = 1000;

/// The caches the controller reads.
pub struct Caches {
    pub services: Arc<Informer>,
    pub pods: Arc<Informer>,
    pub slices: Arc<Informer>,
    pub endpoints: Arc<Informer>,
}

/// Starts the controller.
pub fn spawn(client: Loopback, caches: Caches) -> Vec<tokio::task::JoinHandle<()>> {
    let controller = Arc::new(Controller {
        client,
        caches,
        queue: WorkQueue::new(),
    });
    vec![
        tokio::spawn(Arc::clone(&controller).feed()),
        tokio::spawn(controller.work()),
    ]
}

struct Controller {
    client: Loopback,
    caches: Caches,
    queue: Arc<WorkQueue>,
}

fn namespace_of(key: &str) -> String {
    crate::kinds::for_key(key)
        .and_then(|(_, ns, _)| ns)
        .unwrap_or("")
        .to_owned()
}

impl Controller {
    fn services_in(&self, namespace: &str) -> Vec<String> {
        let prefix = format!("{}{namespace}/", self.caches.services.resource.key_prefix());
        self.caches
            .services
            .keys()
            .into_iter()
            .filter(|k| k.starts_with(&prefix))
            .collect()
    }

    async fn feed(self: Arc<Self>) {
        let c = &self.caches;
        let all = || c.services.keys();
        tokio::join!(
            forward(&c.services, &self.queue, |key| vec![key], all),
            forward(
                &c.pods,
                &self.queue,
                |key| self.services_in(&namespace_of(&key)),
                all
            ),
            resync_when_listed(&c.services, &self.queue),
        );
    }

    async fn work(self: Arc<Self>) {
        let queue = Arc::clone(&self.queue);
        let caches = [
            &self.caches.services,
            &self.caches.pods,
            &self.caches.slices,
            &self.caches.endpoints,
        ];
        wait_synced(&caches).await;
        work(queue, "endpoints", |key| {
            let this = Arc::clone(&self);
            async move { this.reconcile(&key).await.map(|()| None) }
        })
        .await
    }

    async fn reconcile(&self, key: &str) -> Result<(), ClientError> {
        let namespace = namespace_of(key);
        let name = key.rsplit('/').next().unwrap_or("").to_owned();
        let service = self.caches.services.get(key);
        let selector = service
            .as_ref()
            .filter(|s| s["metadata"]["deletionTimestamp"].is_null())
            .and_then(|s| {
                s["spec"]["selector"]
                    .as_object()
                    .filter(|m| !m.is_empty())
                    .cloned()
            });
        let Some(selector) = selector else {
            // Gone, or without a selector (its endpoints are the user's): drop what we made.
            if service.is_none() {
                self.delete_endpoints(&namespace, &name).await?;
            }
            return self.sync_slices(&namespace, &name, None, Vec::new()).await;
        };
        let Some(service) = service else {
            return Ok(());
        };
        let Ok(selector) = LabelSelector::from_object(&json!({ "matchLabels": selector })) else {
            return Ok(()); // validation refuses such selectors
        };
        let publish_all = service["spec"]["publishNotReadyAddresses"] == true;
        let mut groups: BTreeMap<String, (Value, Vec<Value>)> = BTreeMap::new();
        let mut pods = self.caches.pods.list(|p| {
            p["metadata"]["namespace"] == namespace.as_str()
                && selector.matches(p)
                && p["status"]["podIP"]
                    .as_str()
                    .is_some_and(|ip| !ip.is_empty())
                && !matches!(p["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
        });
        pods.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        for pod in pods {
            let ports = resolve_ports(&service, &pod);
            let group = groups
                .entry(ports.to_string())
                .or_insert_with(|| (ports, Vec::new()));
            group.1.push(endpoint(&service, &pod, publish_all));
        }
        let desired: Vec<(Value, Vec<Value>)> = groups.into_values().collect();
        self.sync_endpoints(&service, &desired).await?;
        self.sync_slices(&namespace, &name, Some(&service), desired)
            .await
    }

    /// Makes the Service's slices exactly `groups` (port list, endpoints).
    async fn sync_slices(
        &self,
        namespace: &str,
        service_name: &str,
        service: Option<&Value>,
        groups: Vec<(Value, Vec<Value>)>,
    ) -> Result<(), ClientError> {
        let resource = self.caches.slices.resource;
        let existing = self.caches.slices.list(|s| {
            s["metadata"]["namespace"] == namespace
                && s["metadata"]["labels"][SERVICE_NAME] == service_name
                && s["metadata"]["labels"][MANAGED_BY] == CONTROLLER
        });
        let mut wanted: Vec<String> = Vec::new();
        if let Some(service) = service {
            let base = format!(
                "{service_name}-{}",
                short_hash(service["metadata"]["uid"].as_str().unwrap_or(""))
            );
            let mut index = 0;
            for (ports, endpoints) in &groups {
                for chunk in endpoints.chunks(MAX_PER_SLICE) {
                    let name = if index == 0 {
                        base.clone()
                    } else {
                        format!("{base}-{index}")
                    };
                    index += 1;
                    let slice = json!({
                        "apiVersion": "discovery.k8s.io/v1", "kind": "EndpointSlice",
                        "metadata": {"name": name, "namespace": namespace,
                            "labels": {SERVICE_NAME: service_name, MANAGED_BY: CONTROLLER},
                            "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": service_name,
                                "uid": service["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true}]},
                        "addressType": "IPv4",
                        "endpoints": chunk,
                        "ports": ports,
                    });
                    let current = existing
                        .iter()
                        .find(|s| s["metadata"]["name"] == name.as_str());
                    match current {
                        Some(c)
                            if c["endpoints"] == slice["endpoints"]
                                && c["ports"] == slice["ports"] => {}
                        Some(_) => {
                            let patch =
                                json!({"endpoints": slice["endpoints"], "ports": slice["ports"]});
                            self.client
                                .merge_patch(resource, Some(namespace), &name, &patch)
                                .await?;
                        }
                        None => match self.client.create(resource, Some(namespace), &slice).await {
                            Err(e) if e.is_already_exists() => {} // the cache is behind: next pass
                            other => {
                                other?;
                            }
                        },
                    }
                    wanted.push(name);
                }
            }
        }
        for stale in existing
            .iter()
            .filter(|s| !wanted.iter().any(|w| s["metadata"]["name"] == w.as_str()))
        {
            let name = stale["metadata"]["name"].as_str().unwrap_or("");
            match self
                .client
                .delete(resource, Some(namespace), name, &json!({}))
                .await
            {
                Err(e) if !e.is_not_found() => return Err(e),
                _ => {}
            }
        }
        Ok(())
    }

    /// The legacy Endpoints object with the same addresses.
    async fn sync_endpoints(
        &self,
        service: &Value,
        groups: &[(Value, Vec<Value>)],
    ) -> Result<(), ClientError> {
        let resource = self.caches.endpoints.resource;
        let namespace = service["metadata"]["namespace"].as_str().unwrap_or("");
        let name = service["metadata"]["name"].as_str().unwrap_or("");
        let subsets: Vec<Value> = groups
            .iter()
            .map(|(ports, endpoints)| {
                let address = |e: &Value| {
                    let mut a = json!({"ip": e["addresses"][0], "targetRef": e["targetRef"]});
                    if let Some(node) = e["nodeName"].as_str() {
                        a["nodeName"] = json!(node);
                    }
                    if let Some(host) = e["hostname"].as_str() {
                        a["hostname"] = json!(host);
                    }
                    a
                };
                // kube's ShouldPodBeInEndpoints: a terminating pod is left out of Endpoints
                // unless the Service publishes not-ready addresses.
                let publish_all = service["spec"]["publishNotReadyAddresses"] == true;
                let endpoints: Vec<&Value> = endpoints
                    .iter()
                    .filter(|e| publish_all || e["conditions"]["terminating"] != true)
                    .collect();
                // Sorted by IP, then pod UID, as kube's RepackSubsets does.
                let addresses = |ready: bool| {
                    let mut list: Vec<Value> = endpoints
                        .iter()
                        .filter(|e| (e["conditions"]["ready"] == true) == ready)
                        .map(|e| address(e))
                        .collect();
                    list.sort_by(|a, b| {
                        let key = |v: &Value| {
                            (
                                v["ip"].as_str().unwrap_or("").to_owned(),
                                v["targetRef"]["uid"].as_str().unwrap_or("").to_owned(),
                            )
                        };
                        key(a).cmp(&key(b))
                    });
                    list
                };
                let ready = addresses(true);
                let not_ready = addresses(false);
                let mut subset = json!({"ports": ports});
                if !ready.is_empty() {
                    subset["addresses"] = json!(ready);
                }
                if !not_ready.is_empty() {
                    subset["notReadyAddresses"] = json!(not_ready);
                }
                subset
            })
            .filter(|s| !s["addresses"].is_null() || !s["notReadyAddresses"].is_null())
            .collect();
        let key = format!("{}{namespace}/{name}", resource.key_prefix());
        let current = self.caches.endpoints.get(&key);
        let subsets = if subsets.is_empty() {
            Value::Null
        } else {
            json!(subsets)
        };
        match current {
            Some(c) if c["subsets"] == subsets => Ok(()),
            Some(_) => self
                .client
                .merge_patch(
                    resource,
                    Some(namespace),
                    name,
                    &json!({"subsets": subsets}),
                )
                .await
                .map(drop),
            None => {
                let mut object = json!({"apiVersion": "v1", "kind": "Endpoints",
                    "metadata": {"name": name, "namespace": namespace, "labels": service["metadata"]["labels"]}});
                if !subsets.is_null() {
                    object["subsets"] = subsets;
                }
                if object["metadata"]["labels"].is_null() {
                    if let Some(m) = object["metadata"].as_object_mut() {
                        m.remove("labels");
                    }
                }
                match self.client.create(resource, Some(namespace), &object).await {
                    Err(e) if e.is_already_exists() => Ok(()),
                    other => other.map(drop),
                }
            }
        }
    }

    async fn delete_endpoints(&self, namespace: &str, name: &str) -> Result<(), ClientError> {
        let resource = self.caches.endpoints.resource;
        let key = format!("{}{namespace}/{name}", resource.key_prefix());
        if self.caches.endpoints.get(&key).is_none() {
            return Ok(());
        }
        match self
            .client
            .delete(resource, Some(namespace), name, &json!({}))
            .await
        {
            Err(e) if !e.is_not_found() => Err(e),
            _ => Ok(()),
        }
    }
}

/// Five characters from the Service's uid, so the slice name is stable per Service.
fn short_hash(uid: &str) -> String {
    let mut h: u32 = 0x811c_9dc5;
    for b in uid.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    use crate::names::SAFE_ALPHABET;
    (0..5)
        .map(|i| char::from(SAFE_ALPHABET[((h >> (i * 5)) as usize) % SAFE_ALPHABET.len()]))
        .collect()
}

/// The Service's ports as this pod serves them (a named targetPort resolved through the pod's
/// container ports; a name the pod lacks leaves the port out, as Kubernetes does).
fn resolve_ports(service: &Value, pod: &Value) -> Value {
    let containers = pod["spec"]["containers"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let ports: Vec<Value> = service["spec"]["ports"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| {
            let target = match &p["targetPort"] {
                Value::Number(n) => n.as_i64(),
                Value::String(name) => containers
                    .iter()
                    .flat_map(|c| c["ports"].as_array().cloned().unwrap_or_default())
                    .find(|cp| cp["name"] == name.as_str())
                    .and_then(|cp| cp["containerPort"].as_i64()),
                _ => p["port"].as_i64(),
            }?;
            let mut port =
                json!({"port": target, "protocol": p["protocol"].as_str().unwrap_or("TCP")});
            port["name"] = json!(p["name"].as_str().unwrap_or(""));
            if let Some(app) = p["appProtocol"].as_str() {
                port["appProtocol"] = json!(app);
            }
            Some(port)
        })
        .collect();
    json!(ports)
}

fn endpoint(service: &Value, pod: &Value, publish_all: bool) -> Value {
    let terminating = !pod["metadata"]["deletionTimestamp"].is_null();
    let serving = ready_since(pod).is_some();
    let mut e = json!({
        "addresses": [pod["status"]["podIP"]],
        "conditions": {"ready": publish_all || (serving && !terminating), "serving": serving,
                       "terminating": terminating},
        "targetRef": {"kind": "Pod", "namespace": pod["metadata"]["namespace"], "name": pod["metadata"]["name"],
                      "uid": pod["metadata"]["uid"]},
    });
    if let Some(node) = pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()) {
        e["nodeName"] = json!(node);
    }
    let hostname = pod["spec"]["hostname"].as_str().unwrap_or("");
    if !hostname.is_empty() && pod["spec"]["subdomain"] == service["metadata"]["name"] {
        e["hostname"] = json!(hostname);
    }
    e
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn named_target_ports_resolve_per_pod() {
        let service = json!({"metadata": {"name": "web"}, "spec": {"ports": [
            {"name": "http", "port": 80, "targetPort": "web", "protocol": "TCP"},
            {"name": "metrics", "port": 9090, "targetPort": 9100}]}});
        let pod =
            json!({"spec": {"containers": [{"ports": [{"name": "web", "containerPort": 8080}]}]}});
        assert_eq!(
            resolve_ports(&service, &pod),
            json!([{"name": "http", "port": 8080, "protocol": "TCP"}, {"name": "metrics", "port": 9100, "protocol": "TCP"}])
        );
        let other = json!({"spec": {"containers": [{}]}});
        assert_eq!(
            resolve_ports(&service, &other),
            json!([{"name": "metrics", "port": 9100, "protocol": "TCP"}])
        );
    }

    #[test]
    fn endpoints_carry_readiness_node_and_hostname() {
        let service = json!({"metadata": {"name": "db"}});
        let pod = json!({"metadata": {"name": "db-0", "namespace": "ns", "uid": "u"},
            "spec": {"nodeName": "n1", "hostname": "db-0", "subdomain": "db"},
            "status": {"podIP": "10.244.0.5", "conditions": [{"type": "Ready", "status": "True"}]}});
        let e = endpoint(&service, &pod, false);
        assert_eq!(
            e["conditions"],
            json!({"ready": true, "serving": true, "terminating": false})
        );
        assert_eq!(e["nodeName"], "n1");
        assert_eq!(e["hostname"], "db-0");
        assert_eq!(e["targetRef"]["name"], "db-0");
        let mut not_ready = pod.clone();
        not_ready["status"]["conditions"] = json!([]);
        assert_eq!(
            endpoint(&service, &not_ready, false)["conditions"]["ready"],
            false
        );
        assert_eq!(
            endpoint(&service, &not_ready, true)["conditions"],
            json!({"ready": true, "serving": false, "terminating": false})
        );
        let mut terminating = pod.clone();
        terminating["metadata"]["deletionTimestamp"] = json!("2026-12-02T12:00:00Z");
        assert_eq!(
            endpoint(&service, &terminating, false)["conditions"],
            json!({"ready": false, "serving": true, "terminating": true})
        );
        assert_eq!(short_hash("abc").len(), 5);
        assert_eq!(short_hash("abc"), short_hash("abc"));
    }
}
