//! Where a webhook is called: its URL, or — for a `service` client config — a ready
//! endpoint of the Service (its EndpointSlices), verified as `<service>.<namespace>.svc`.

use std::time::Duration;

use serde_json::Value;

use super::call::Destination;
use super::config::{Target, Webhook};
use crate::api::path::object_key;
use crate::api::{decode_stored, Call};
use crate::kinds;
use crate::store::{ListOptions, Store};

/// Where to call `webhook`: its URL, or a ready endpoint of its Service.
pub(super) async fn destination(call: &Call, webhook: &Webhook) -> Result<Destination, String> {
    destination_of(call.state.store.as_ref(), &webhook.target, webhook.timeout).await
}

/// Where to call `target` (with `timeout` in its query, as kube sends it): its URL, or a
/// ready endpoint of its Service, read from `store`.
pub(crate) async fn destination_of(
    store: &dyn Store,
    target: &Target,
    timeout: Duration,
) -> Result<Destination, String> {
    let timeout = format!("?timeout={}s", timeout.as_secs());
    match target {
        Target::Url { host, port, path } => {
            let bracketed = match host.contains(':') {
                true => format!("[{host}]"),
                false => host.clone(),
            };
            Ok(Destination {
                dial: format!("{bracketed}:{port}"),
                server_name: host.clone(),
                host: match port {
                    443 => bracketed,
                    port => format!("{bracketed}:{port}"),
                },
                path_and_query: format!("{path}{timeout}"),
                bearer_token: None,
                scheme: "https",
            })
        }
        Target::Service {
            namespace,
            name,
            path,
            port,
        } => {
            let server_name = format!("{name}.{namespace}.svc");
            let mut destination = Destination {
                dial: String::new(),
                host: format!("{server_name}:{port}"),
                server_name,
                path_and_query: format!("{path}{timeout}"),
                bearer_token: None,
                scheme: "https",
            };
            let endpoint = service_endpoint(store, namespace, name, *port)
                .await
                .map_err(|why| format!("Post \"{}\": {why}", destination.url()))?;
            destination.dial = endpoint;
            Ok(destination)
        }
    }
}

/// `ip:port` of a ready endpoint of Service `namespace/name` for its port `port`.
async fn service_endpoint(
    store: &dyn Store,
    namespace: &str,
    name: &str,
    port: u16,
) -> Result<String, String> {
    let services = kinds::find("", "v1", "services").ok_or("the kinds table has no services")?;
    let slices = kinds::find("discovery.k8s.io", "v1", "endpointslices")
        .ok_or("the kinds table has no endpointslices")?;
    let key = object_key(services, Some(namespace), name);
    let service = match store.get(&key).await.map_err(|e| e.to_string())? {
        Some(kv) => decode_stored(&kv).map_err(|e| e.message)?,
        None => return Err(format!("services {name:?} not found")),
    };
    let prefix = format!("{}{namespace}/", slices.key_prefix());
    let page = store
        .list(&prefix, &ListOptions::default())
        .await
        .map_err(|e| e.to_string())?;
    let mut listed = Vec::new();
    for kv in &page.items {
        listed.push(decode_stored(kv).map_err(|e| e.message)?);
    }
    ready_endpoint(&service, &listed, port)
        .ok_or_else(|| format!("no endpoints available for service {name:?}"))
}

/// The first ready address of the Service's EndpointSlices serving its port `port`.
pub(super) fn ready_endpoint(service: &Value, slices: &[Value], port: u16) -> Option<String> {
    let name = service["metadata"]["name"].as_str()?;
    let service_port = service["spec"]["ports"]
        .as_array()?
        .iter()
        .find(|p| p["port"].as_u64() == Some(u64::from(port)))?;
    let port_name = service_port["name"].as_str().unwrap_or("");
    for slice in slices {
        if slice["metadata"]["labels"]["kubernetes.io/service-name"].as_str() != Some(name) {
            continue;
        }
        let Some(number) = slice["ports"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|p| p["name"].as_str().unwrap_or("") == port_name)
            .and_then(|p| p["port"].as_u64())
        else {
            continue;
        };
        let ready = slice["endpoints"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|e| e["conditions"]["ready"].as_bool() != Some(false));
        for endpoint in ready {
            if let Some(address) = endpoint["addresses"][0].as_str() {
                return Some(match address.contains(':') {
                    true => format!("[{address}]:{number}"),
                    false => format!("{address}:{number}"),
                });
            }
        }
    }
    None
}
