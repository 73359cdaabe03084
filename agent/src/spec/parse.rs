//! Reading manifests: one Pod (`parse_pod`) or a multi-document YAML/JSON stream of any kinds
//! (`parse_manifests`). Every document goes through a JSON value first, so YAML and JSON
//! behave alike, and type errors name the field path (`spec.containers[0].ports[0].
//! containerPort`). A Pod's unknown and unhonoured fields are refused (`unknown`,
//! `unsupported`) before it is validated. Services and EndpointSlices are typed here but
//! validated by their users (one bad Service must not reject its file). It never reads files.

use serde::Deserialize;
use serde_json::Value;

use super::error::SpecError;
use super::pod::Pod;
use super::service::{EndpointSlice, Service};
use super::unknown::{deserialize_listing_unknown, refuse_unknown, Kind, UnknownField};
use super::unsupported::refuse_unhonoured;
use super::validate::validate;

/// One document of a manifest stream.
#[derive(Debug, Clone, PartialEq)]
#[allow(clippy::large_enum_variant)] // a handful per file; boxing would only add noise
pub enum Manifest {
    Pod(Pod),
    /// `v1.Service` (typed, not yet validated: see [`Service::validate`]).
    Service(Service),
    /// `discovery.k8s.io/v1.EndpointSlice` (typed, not yet validated).
    EndpointSlice(EndpointSlice),
    /// Any other kind (ConfigMap, Deployment, ...), kept raw for the modules that will
    /// interpret it. `name` is `metadata.name`, empty when absent.
    Other {
        kind: String,
        name: String,
        value: Value,
    },
}

/// Parses and validates a single-document Pod manifest (YAML or JSON).
pub fn parse_pod(yaml: &str) -> Result<Pod, SpecError> {
    let document: serde_yaml::Value =
        serde_yaml::from_str(yaml).map_err(|e| SpecError::new("", e.to_string()))?;
    let value = to_json(document)?;
    if value.is_null() {
        return Err(SpecError::new("", "the manifest is empty"));
    }
    pod_from_value(value)
}

/// Parses a stream of manifests: YAML documents separated by `---`, or concatenated JSON
/// objects. Empty documents are skipped; `kind: List` documents contribute their `items`.
/// Pods are validated. Errors carry the 0-based index of the document they come from.
pub fn parse_manifests(text: &str) -> Result<Vec<Manifest>, SpecError> {
    let documents = if text.trim_start().starts_with('{') {
        json_documents(text)?
    } else {
        yaml_documents(text)?
    };
    let mut manifests = Vec::new();
    for (index, value) in documents {
        if value.is_null() {
            continue;
        }
        manifests.extend(manifests_from_value(value).map_err(|e| e.in_document(index))?);
    }
    Ok(manifests)
}

fn yaml_documents(text: &str) -> Result<Vec<(usize, Value)>, SpecError> {
    let mut documents = Vec::new();
    for (index, document) in serde_yaml::Deserializer::from_str(text).enumerate() {
        let syntax_error =
            |e: serde_yaml::Error| SpecError::new("", e.to_string()).in_document(index);
        let value = serde_yaml::Value::deserialize(document).map_err(syntax_error)?;
        documents.push((index, to_json(value).map_err(|e| e.in_document(index))?));
    }
    Ok(documents)
}

fn json_documents(text: &str) -> Result<Vec<(usize, Value)>, SpecError> {
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    let mut documents = Vec::new();
    for (index, value) in stream.enumerate() {
        let value = value.map_err(|e| SpecError::new("", e.to_string()).in_document(index))?;
        documents.push((index, value));
    }
    Ok(documents)
}

/// Applies YAML merge keys (`<<: *anchor`) and converts to JSON (non-string keys become
/// strings).
fn to_json(mut value: serde_yaml::Value) -> Result<Value, SpecError> {
    value
        .apply_merge()
        .map_err(|e| SpecError::new("", e.to_string()))?;
    serde_json::to_value(value).map_err(|e| SpecError::new("", e.to_string()))
}

fn manifests_from_value(value: Value) -> Result<Vec<Manifest>, SpecError> {
    let kind = kind_of(&value)?;
    if kind == "List" {
        let Some(Value::Array(items)) = value.get("items") else {
            return Err(SpecError::new("items", "a List must have an `items` array"));
        };
        let mut manifests = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let at = |e: SpecError| e.at(&format!("items[{i}]"));
            manifests.extend(manifests_from_value(item.clone()).map_err(at)?);
        }
        return Ok(manifests);
    }
    if kind == "Pod" {
        return Ok(vec![Manifest::Pod(pod_from_value(value)?)]);
    }
    if kind == "Service" {
        let (mut service, unknown): (Service, _) = typed(value, "Service", "v1")?;
        service.unknown_fields = unknown;
        return Ok(vec![Manifest::Service(service)]);
    }
    if kind == "EndpointSlice" {
        let (mut slice, unknown): (EndpointSlice, _) =
            typed(value, "EndpointSlice", "discovery.k8s.io/v1")?;
        slice.unknown_fields = unknown;
        return Ok(vec![Manifest::EndpointSlice(slice)]);
    }
    let name = value
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    Ok(vec![Manifest::Other { kind, name, value }])
}

fn kind_of(value: &Value) -> Result<String, SpecError> {
    if !value.is_object() {
        let message = format!("a manifest must be an object, got {}", json_type(value));
        return Err(SpecError::new("", message));
    }
    match value.get("kind") {
        Some(Value::String(kind)) if !kind.is_empty() => Ok(kind.clone()),
        None | Some(Value::Null) => Err(SpecError::new("kind", "must be set")),
        Some(other) => Err(SpecError::new(
            "kind",
            format!("must be a non-empty string, got {other}"),
        )),
    }
}

/// Deserializes a document of `kind` that must have `apiVersion: api_version`; also returns the
/// fields its type does not know.
fn typed<T: serde::de::DeserializeOwned>(
    value: Value,
    kind: &str,
    api_version: &str,
) -> Result<(T, Vec<UnknownField>), SpecError> {
    match value.get("apiVersion") {
        Some(Value::String(v)) if v == api_version => {}
        other => {
            let got = other.map(|v| format!(", got {v}")).unwrap_or_default();
            let msg = format!("must be {api_version:?} for a {kind}{got}");
            return Err(SpecError::new("apiVersion", msg));
        }
    }
    deserialize_listing_unknown(&value)
}

/// A Service as the API server sends it (typed, not yet validated: see [`Service::validate`]).
/// Its endpoints are the API's EndpointSlices, selector or not: they cover every node.
pub fn service_from_api(value: Value) -> Result<Service, SpecError> {
    let (mut service, unknown): (Service, _) = typed(value, "Service", "v1")?;
    service.unknown_fields = unknown;
    service.api_endpoints = true;
    Ok(service)
}

/// An EndpointSlice as the API server sends it (typed, not yet validated).
pub fn endpoint_slice_from_api(value: Value) -> Result<EndpointSlice, SpecError> {
    let (mut slice, unknown): (EndpointSlice, _) =
        typed(value, "EndpointSlice", "discovery.k8s.io/v1")?;
    slice.unknown_fields = unknown;
    Ok(slice)
}

/// A Pod as the API server sends it to the node it is bound to: the checks of a manifest
/// (unknown fields refused unless bookkeeping or Kubernetes' defaults, unhonoured ones refused by
/// name, validation), except that `spec.nodeName` must name `node` instead of being refused,
/// and `spec.nodeSelector` and `spec.affinity`, which the scheduler placed the pod by, are
/// honoured by the binding itself; `spec.automountServiceAccountToken` was acted on by the
/// control plane's ServiceAccount admission, and `spec.serviceAccount` is
/// `spec.serviceAccountName`'s deprecated twin.
/// The returned pod keeps its `spec.nodeName`: that is how an API pod is told from a static one.
pub fn pod_from_api(value: Value, node: &str) -> Result<Pod, SpecError> {
    check_pod_kind(&value)?;
    let (mut pod, mut unknown): (Pod, _) = deserialize_listing_unknown(&value)?;
    // What the scheduler placed the pod by, honoured by its being bound here.
    unknown.retain(|(path, _)| path != "spec.affinity" && !path.starts_with("spec.affinity."));
    // What the control plane's ServiceAccount admission acted on (the token volume is in the
    // spec), and v1's deprecated twin of `serviceAccountName` when it says the same.
    let account = pod.spec.service_account_name.clone().unwrap_or_default();
    unknown.retain(|(path, value)| {
        path != "spec.automountServiceAccountToken"
            && !(path == "spec.serviceAccount" && value.as_str().unwrap_or("") == account)
    });
    refuse_unknown(Kind::Pod, &unknown)?;
    let node_selector = std::mem::take(&mut pod.spec.node_selector);
    let bound = pod.spec.node_name.take();
    if bound.as_deref() != Some(node) {
        let got = bound.map(|b| format!(", got {b:?}")).unwrap_or_default();
        let message = format!("must be this node, {node:?}{got}");
        return Err(SpecError::new("spec.nodeName", message));
    }
    refuse_unhonoured(&pod)?;
    validate(&pod)?;
    pod.spec.node_name = bound;
    pod.spec.node_selector = node_selector;
    Ok(pod)
}

fn pod_from_value(value: Value) -> Result<Pod, SpecError> {
    check_pod_kind(&value)?;
    let (pod, unknown): (Pod, _) = deserialize_listing_unknown(&value)?;
    refuse_unknown(Kind::Pod, &unknown)?;
    refuse_unhonoured(&pod)?;
    validate(&pod)?;
    super::validate_env::refuse_api_references(&pod)?;
    Ok(pod)
}

fn check_pod_kind(value: &Value) -> Result<(), SpecError> {
    let kind = kind_of(value)?;
    if kind != "Pod" {
        return Err(SpecError::new(
            "kind",
            format!("must be \"Pod\", got {kind:?}"),
        ));
    }
    match value.get("apiVersion") {
        Some(Value::String(v)) if v == "v1" => {}
        Some(other) => {
            return Err(SpecError::new(
                "apiVersion",
                format!("must be \"v1\" for a Pod, got {other}"),
            ))
        }
        None => return Err(SpecError::new("apiVersion", "must be \"v1\" for a Pod")),
    }
    Ok(())
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
