//! OpenAPI v3 documents, so `kubectl apply` (which reads the PATCH operation of a kind for its
//! `fieldValidation` parameter) and `kubectl explain` (which reads `components.schemas`) work.
//! `/openapi/v3` is the root document listing one URL per group-version (with a hash of its
//! bytes, as kube-apiserver does); `/openapi/v3/api/v1` and `/openapi/v3/apis/<g>/<v>` are the
//! group-version documents: schemas generated from the k8s-openapi types (`schemas`) and the
//! standard operations of each resource of the kinds table (`paths`). Everything is generated
//! once, on first use, and served from memory.

mod paths;
pub(crate) mod schemas;
mod v2;

use std::collections::BTreeMap;
use std::sync::OnceLock;

use bytes::Bytes;
use http::{Response, StatusCode};
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};

use crate::http_util::{typed_response, ResponseBody};
use crate::kinds;

pub use paths::PATCH_CONTENT_TYPES;

/// The generated documents, serialised.
pub struct Documents {
    /// `/openapi/v3`.
    pub root: Bytes,
    /// Group-version documents by path below `/openapi/v3/`: `api/v1`, `apis/apps/v1`.
    pub group_versions: BTreeMap<String, Bytes>,
}

/// The documents, generated on the first call.
pub fn documents() -> &'static Documents {
    static DOCUMENTS: OnceLock<Documents> = OnceLock::new();
    DOCUMENTS.get_or_init(generate)
}

/// Answers `GET /openapi/v3[/…]` and `/openapi/v2` (`v2`: the header kubectl needs to
/// validate a List manifest); None for any other path (the caller's 404).
pub fn respond(path: &str, accept: &str) -> Option<Response<ResponseBody>> {
    if path.trim_end_matches('/') == "/openapi/v2" {
        return Some(v2::respond(accept));
    }
    let rest = path.strip_prefix("/openapi/v3")?;
    let docs = documents();
    let body = match rest.trim_matches('/') {
        "" => root_with_custom(docs),
        gv => match docs.group_versions.get(gv) {
            Some(doc) => doc.clone(),
            None => custom_group_version(gv)?,
        },
    };
    Some(typed_response(StatusCode::OK, "application/json", body))
}

/// The custom resources being served, by the document path of their group-version.
fn custom_resources() -> BTreeMap<String, Vec<&'static kinds::Resource>> {
    let mut by_gv: BTreeMap<String, Vec<&'static kinds::Resource>> = BTreeMap::new();
    for r in crate::crd::registry::resources() {
        by_gv
            .entry(format!("apis/{}/{}", r.group, r.version))
            .or_default()
            .push(r);
    }
    by_gv
}

/// The document of a custom group-version (`apis/<group>/<version>`), made on each request
/// from the CRDs being served.
fn custom_group_version(gv: &str) -> Option<Bytes> {
    let resources = custom_resources().remove(gv)?;
    let with_schemas: Vec<(&kinds::Resource, Value)> = resources
        .iter()
        .map(|r| {
            let schema =
                crate::crd::registry::version_of(r).map_or(Value::Null, |v| v.schema.clone());
            (*r, schema)
        })
        .collect();
    let (schemas, names) = schemas::build_custom(&with_schemas);
    let mut path_map = Map::new();
    for (resource, name) in resources.iter().zip(&names) {
        paths::add(&mut path_map, resource, name);
    }
    Some(Bytes::from(
        serde_json::to_vec(&document(path_map, schemas)).unwrap_or_default(),
    ))
}

/// The root document, listing the custom group-versions too while CRDs serve some.
fn root_with_custom(docs: &Documents) -> Bytes {
    let custom = custom_resources();
    if custom.is_empty() {
        return docs.root.clone();
    }
    let Ok(mut root) = serde_json::from_slice::<Value>(&docs.root) else {
        return docs.root.clone();
    };
    for gv in custom.keys() {
        let Some(doc) = custom_group_version(gv) else {
            continue;
        };
        let hash = hex(&Sha256::digest(&doc));
        root["paths"][gv] = json!({"serverRelativeURL": format!("/openapi/v3/{gv}?hash={hash}")});
    }
    Bytes::from(serde_json::to_vec(&root).unwrap_or_default())
}

/// The group-version document of `api/v1` or `apis/<group>/<version>`, parsed (for tests and
/// tools).
pub fn group_version_document(gv_path: &str) -> Option<Value> {
    let bytes = documents().group_versions.get(gv_path)?;
    serde_json::from_slice(bytes).ok()
}

fn generate() -> Documents {
    let mut gvs: Vec<(&str, &str)> = Vec::new();
    for r in kinds::RESOURCES {
        if !gvs.contains(&(r.group, r.version)) {
            gvs.push((r.group, r.version));
        }
    }
    let mut documents: Vec<(String, Value)> = gvs
        .into_iter()
        .map(|(group, version)| {
            let key = if group.is_empty() {
                format!("api/{version}")
            } else {
                format!("apis/{group}/{version}")
            };
            (key, group_version(group, version))
        })
        .collect();
    documents.extend(review_group_versions());
    let mut group_versions = BTreeMap::new();
    let mut root_paths = Map::new();
    for (key, doc) in documents {
        let bytes = Bytes::from(serde_json::to_vec(&doc).unwrap_or_default());
        let hash = hex(&Sha256::digest(&bytes));
        root_paths.insert(
            key.clone(),
            json!({"serverRelativeURL": format!("/openapi/v3/{key}?hash={hash}")}),
        );
        group_versions.insert(key, bytes);
    }
    let root = json!({ "paths": root_paths });
    Documents {
        root: Bytes::from(serde_json::to_vec(&root).unwrap_or_default()),
        group_versions,
    }
}

fn group_version(group: &str, version: &str) -> Value {
    let mut resources: Vec<&kinds::Resource> = kinds::in_group_version(group, version).collect();
    let stored = resources.len();
    let read_only = &crate::api::component_status::RESOURCE;
    if (group, version) == (read_only.group, read_only.version) {
        resources.push(read_only);
    }
    let (schemas, names) = schemas::build(&resources);
    let mut path_map = Map::new();
    for (index, (resource, name)) in resources.iter().zip(&names).enumerate() {
        match name {
            Some(name) if index < stored => paths::add(&mut path_map, resource, name),
            Some(name) => paths::add_read_only(&mut path_map, resource, name),
            None => {}
        }
    }
    document(path_map, schemas)
}

/// `apis/<group>/<version>` of each review group (`discovery::REVIEW_GROUPS`: reviews are
/// not stored and so not in the kinds table): their create operations and schemas.
fn review_group_versions() -> Vec<(String, Value)> {
    crate::discovery::REVIEW_GROUPS
        .iter()
        .map(|(group, version, reviews)| {
            let resources: Vec<kinds::Resource> = reviews
                .iter()
                .map(|(kind, plural)| kinds::Resource {
                    group,
                    version,
                    kind,
                    plural,
                    singular: "",
                    scope: match crate::discovery::review_namespaced(kind) {
                        true => kinds::Scope::Namespaced,
                        false => kinds::Scope::Cluster,
                    },
                    short_names: &[],
                    categories: &[],
                    subresources: &[],
                    custom: false,
                })
                .collect();
            let (schemas, names) = schemas::build_reviews(&resources);
            let mut path_map = Map::new();
            for (resource, name) in resources.iter().zip(&names) {
                if let Some(name) = name {
                    paths::add_create_only(&mut path_map, resource, name);
                }
            }
            (
                format!("apis/{group}/{version}"),
                document(path_map, schemas),
            )
        })
        .collect()
}

/// A group-version document of these paths and schemas.
fn document(path_map: Map<String, Value>, schemas: Map<String, Value>) -> Value {
    json!({
        "openapi": "3.0.0",
        "info": {
            "title": "Kubernetes",
            "version": format!("v1.{}.0", crate::router::KUBERNETES_MINOR),
        },
        "paths": path_map,
        "components": {
            "schemas": schemas,
            "securitySchemes": {
                "BearerToken": {"type": "apiKey", "description": "Bearer Token authentication", "name": "authorization", "in": "header"},
            },
        },
        "security": [{"BearerToken": []}],
    })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

#[cfg(test)]
mod tests;
