//! Protobuf request bodies (`application/vnd.kubernetes.protobuf`, what `kubectl create` and
//! `kubectl autoscale` send): the `k8s\0` magic, the `runtime.Unknown` envelope naming the
//! apiVersion and kind, and the object's own message in `raw`, decoded with `prost-reflect`
//! through `kubernetes.binpb` (a descriptor set generated from `k8s-pb` by `generate.rs`) and
//! turned into the Kubernetes JSON the rest of the API checks (`json.rs`). A field number the
//! descriptor does not know is refused, never dropped.

#[cfg(test)]
mod generate;
mod json;
#[cfg(test)]
mod tests;

use std::sync::OnceLock;

use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, Value as PValue};
use serde_json::Value;

/// The descriptor set of every message reachable from the kinds table (`generate.rs`).
const DESCRIPTOR: &[u8] = include_bytes!("kubernetes.binpb");

/// What every protobuf body starts with.
pub const MAGIC: &[u8] = b"k8s\0";

/// The envelope message.
const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";

/// The options of a DELETE (client-go sends them as protobuf, e.g. `kubectl drain`), under
/// any group version's apiVersion: meta/v1's DeleteOptions is registered in every group.
const DELETE_OPTIONS: &str = "k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions";

/// Why a protobuf body could not be read.
#[derive(Debug, thiserror::Error)]
pub enum ProtoError {
    #[error("the body does not start with the protobuf magic k8s\\0")]
    Magic,
    #[error("the protobuf descriptor set does not load: {0}")]
    Descriptor(String),
    #[error("the envelope names {api_version:?} {kind:?}, which has no protobuf message here")]
    NoMessage { api_version: String, kind: String },
    #[error("contentEncoding {0:?} of the envelope is not supported")]
    Encoding(String),
    #[error("contentType {0:?} of the envelope's raw object is not protobuf")]
    ContentType(String),
    #[error("decoding {message}: {source}")]
    Decode {
        message: String,
        source: prost::DecodeError,
    },
    #[error("{message} has no field number {number}")]
    UnknownField { message: String, number: u32 },
    #[error("{message}: {why}")]
    Value { message: String, why: String },
}

fn pool() -> Result<&'static DescriptorPool, ProtoError> {
    static POOL: OnceLock<Result<DescriptorPool, String>> = OnceLock::new();
    POOL.get_or_init(|| DescriptorPool::decode(DESCRIPTOR).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| ProtoError::Descriptor(e.clone()))
}

/// The protobuf message of a group/version/kind: `k8s.io.api.apps.v1.Deployment`; the core
/// group is `core`, a dotted group is named by its first label (`networking.k8s.io`).
pub fn message_name(group: &str, version: &str, kind: &str) -> String {
    let package = match group.split('.').next() {
        None | Some("") => "core",
        Some(first) => first,
    };
    format!("k8s.io.api.{package}.{version}.{kind}")
}

fn descriptor(name: &str) -> Result<MessageDescriptor, ProtoError> {
    pool()?
        .get_message_by_name(name)
        .ok_or_else(|| ProtoError::Descriptor(format!("no message {name}")))
}

fn decode_message(desc: MessageDescriptor, bytes: &[u8]) -> Result<DynamicMessage, ProtoError> {
    let message = desc.full_name().to_owned();
    DynamicMessage::decode(desc, bytes).map_err(|source| ProtoError::Decode { message, source })
}

fn string_field(message: &DynamicMessage, number: u32) -> String {
    match message.get_field_by_number(number).as_deref() {
        Some(PValue::String(s)) => s.clone(),
        _ => String::new(),
    }
}

/// The object a protobuf body holds, as Kubernetes JSON with the envelope's apiVersion and
/// kind (the caller checks them against the URL).
pub fn decode(body: &[u8]) -> Result<Value, ProtoError> {
    let envelope = body.strip_prefix(MAGIC).ok_or(ProtoError::Magic)?;
    let envelope = decode_message(descriptor(UNKNOWN)?, envelope)?;
    json::refuse_unknown(&envelope)?;
    let type_meta = match envelope.get_field_by_number(1).as_deref() {
        Some(PValue::Message(m)) => {
            json::refuse_unknown(m)?;
            m.clone()
        }
        _ => DynamicMessage::new(descriptor("k8s.io.apimachinery.pkg.runtime.TypeMeta")?),
    };
    let api_version = string_field(&type_meta, 1);
    let kind = string_field(&type_meta, 2);
    let encoding = string_field(&envelope, 3);
    if !encoding.is_empty() {
        return Err(ProtoError::Encoding(encoding));
    }
    let content_type = string_field(&envelope, 4);
    if !matches!(
        content_type.as_str(),
        "" | "application/vnd.kubernetes.protobuf"
    ) {
        return Err(ProtoError::ContentType(content_type));
    }
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", &api_version));
    let name = match kind.as_str() {
        "DeleteOptions" => DELETE_OPTIONS.to_owned(),
        _ => message_name(group, version, &kind),
    };
    let desc = pool()?
        .get_message_by_name(&name)
        .filter(|_| !kind.is_empty() && !version.is_empty())
        .ok_or_else(|| ProtoError::NoMessage {
            api_version: api_version.clone(),
            kind: kind.clone(),
        })?;
    let raw = match envelope.get_field_by_number(2).as_deref() {
        Some(PValue::Bytes(b)) => b.clone(),
        _ => Default::default(),
    };
    let object = decode_message(desc, &raw)?;
    let mut value = json::message(&object)?;
    if let Value::Object(map) = &mut value {
        map.insert("apiVersion".into(), Value::String(api_version));
        map.insert("kind".into(), Value::String(kind));
    }
    Ok(value)
}
