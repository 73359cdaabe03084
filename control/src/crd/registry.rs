//! The custom resources this process serves: one entry per served version of every
//! Established CustomResourceDefinition, rebuilt from the CRDs (`follow`) whenever one
//! changes. Process-wide, as the kinds table is: one API server per process.
//!
//! The rest of the server knows resources as `&'static Resource`, so each distinct custom
//! resource is made once and kept (`intern`): a CRD that changes back and forth makes no new
//! one, and a deleted CRD's few bytes stay until the process ends.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError, RwLock};

use serde_json::Value;

use super::definition::{self, ServedVersion};
use crate::kinds::{Resource, Scope, Subresource, STATUS_VERBS};

/// One served version of a custom resource.
#[derive(Debug)]
pub struct CustomVersion {
    pub resource: &'static Resource,
    /// The CustomResourceDefinition's name (`widgets.example.com`).
    pub crd: String,
    /// The version objects are stored at (every version shares the objects; with conversion
    /// `None` they differ only in `apiVersion`).
    pub storage_version: String,
    /// The version's `openAPIV3Schema`.
    pub schema: Value,
    pub columns: Vec<definition::PrinterColumn>,
    /// Where the `scale` subresource's fields live, when the version has it.
    pub scale: Option<definition::ScalePaths>,
    /// The warning of a deprecated version, sent with every answer at it.
    pub deprecation: Option<String>,
    /// The CRD is being deleted: objects are read and deleted, never created.
    pub terminating: bool,
    /// The field-selector labels of the version's `selectableFields` (`spec.color`).
    pub selectable_fields: Vec<String>,
    /// The schema's CEL validation rules, compiled at first use.
    pub rules: super::cel::Rules,
    /// The CRD's `spec.conversion` (`api::crd_conversion` calls its webhook).
    pub conversion: Value,
}

#[derive(Default)]
struct Registry {
    versions: Vec<Arc<CustomVersion>>,
}

static REGISTRY: LazyLock<RwLock<Registry>> = LazyLock::new(RwLock::default);

/// Every custom resource ever made, by its identity (see the module docs).
static INTERNED: LazyLock<Mutex<HashMap<String, &'static Resource>>> =
    LazyLock::new(Mutex::default);

fn read<T>(f: impl FnOnce(&Registry) -> T) -> T {
    f(&REGISTRY.read().unwrap_or_else(PoisonError::into_inner))
}

/// Serves exactly the versions of `crds` that are Established (the previous set is replaced).
pub fn replace(crds: &[Value]) {
    let mut versions = Vec::new();
    for crd in crds {
        let mut served = definition::served_versions(crd);
        // Discovery names the first version of a group the preferred one.
        served.sort_by_key(|v| version_priority(&v.version));
        for served in served {
            versions.push(Arc::new(custom_version(served)));
        }
    }
    let mut registry = REGISTRY.write().unwrap_or_else(PoisonError::into_inner);
    registry.versions = versions;
}

/// kube's order of versions (`CompareKubeAwareVersionStrings`), as a sort key: GA before
/// beta before alpha, higher major then minor first (`v2`, `v1`, `v1beta2`, `v1beta1`,
/// `v1alpha1`), then any other name alphabetically.
fn version_priority(version: &str) -> (u8, std::cmp::Reverse<u64>, std::cmp::Reverse<u64>, String) {
    let parsed = version.strip_prefix('v').and_then(|rest| {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        match &rest[digits..] {
            "" => Some((0, major, 0)),
            tail => {
                let (stage, minor) = if let Some(m) = tail.strip_prefix("beta") {
                    (1, m)
                } else {
                    (2, tail.strip_prefix("alpha")?)
                };
                Some((stage, major, minor.parse().ok()?))
            }
        }
    });
    match parsed {
        Some((stage, major, minor)) => (
            stage,
            std::cmp::Reverse(major),
            std::cmp::Reverse(minor),
            String::new(),
        ),
        None => (
            3,
            std::cmp::Reverse(0),
            std::cmp::Reverse(0),
            version.to_owned(),
        ),
    }
}

fn custom_version(served: ServedVersion) -> CustomVersion {
    CustomVersion {
        resource: intern(&served),
        crd: served.crd,
        storage_version: served.storage_version,
        rules: super::cel::Rules::new(&served.schema),
        schema: served.schema,
        columns: served.columns,
        selectable_fields: served.selectable_fields,
        scale: served.scale,
        deprecation: served.deprecation,
        terminating: served.terminating,
        conversion: served.conversion,
    }
}

fn leak(text: &str) -> &'static str {
    Box::leak(text.to_owned().into_boxed_str())
}

fn leak_all(texts: &[String]) -> &'static [&'static str] {
    Box::leak(
        texts
            .iter()
            .map(|t| leak(t))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// The `&'static Resource` of a served version: the one made before for the same identity,
/// else a new one.
fn intern(v: &ServedVersion) -> &'static Resource {
    let identity = format!(
        "{}|{}|{}|{}|{}|{:?}|{}|{}|{}|{}",
        v.group,
        v.version,
        v.kind,
        v.plural,
        v.singular,
        v.scope,
        v.short_names.join(","),
        v.categories.join(","),
        v.status,
        v.scale.is_some()
    );
    let mut interned = INTERNED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(resource) = interned.get(&identity) {
        return resource;
    }
    let (group, version, kind) = (leak(&v.group), leak(&v.version), leak(&v.kind));
    let mut subresources = Vec::new();
    if v.status {
        subresources.push(Subresource {
            name: "status",
            group,
            version,
            kind,
            verbs: STATUS_VERBS,
        });
    }
    if v.scale.is_some() {
        subresources.push(crate::kinds::scale());
    }
    let subresources: &'static [Subresource] = Box::leak(subresources.into_boxed_slice());
    let resource: &'static Resource = Box::leak(Box::new(Resource {
        group,
        version,
        kind,
        plural: leak(&v.plural),
        singular: leak(&v.singular),
        scope: match v.scope {
            definition::CrdScope::Namespaced => Scope::Namespaced,
            definition::CrdScope::Cluster => Scope::Cluster,
        },
        short_names: leak_all(&v.short_names),
        categories: leak_all(&v.categories),
        subresources,
        custom: true,
    }));
    interned.insert(identity, resource);
    resource
}

/// Schemas handed out as `&'static` (the strategic merge walks `&'static` schemas), by their
/// text: each distinct schema is kept once.
static STATIC_SCHEMAS: LazyLock<Mutex<HashMap<String, &'static Value>>> =
    LazyLock::new(Mutex::default);

/// A custom resource's schema as the merge walks it: `'static`, with `metadata` pointing at
/// ObjectMeta's schema (so finalizers merge as a set and ownerReferences by uid, as for any
/// kind).
pub fn static_schema(schema: &Value) -> &'static Value {
    let text = schema.to_string();
    let mut schemas = STATIC_SCHEMAS
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(kept) = schemas.get(&text) {
        return kept;
    }
    let mut walked = schema.clone();
    if !walked.is_object() {
        walked = serde_json::json!({"type": "object"});
    }
    if !walked["properties"].is_object() {
        walked["properties"] = serde_json::json!({});
    }
    walked["properties"]["metadata"] = serde_json::json!({
        "$ref": "#/components/schemas/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta"
    });
    let kept: &'static Value = Box::leak(Box::new(walked));
    schemas.insert(text, kept);
    kept
}

/// The served custom resource at `/apis/<group>/<version>/<plural>`.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static Resource> {
    read(|r| {
        r.versions
            .iter()
            .map(|v| v.resource)
            .find(|r| r.group == group && r.version == version && r.plural == plural)
    })
}

/// The served version behind a custom `resource`.
pub fn version_of(resource: &Resource) -> Option<Arc<CustomVersion>> {
    if !resource.custom {
        return None;
    }
    read(|r| {
        r.versions
            .iter()
            .find(|v| {
                let s = v.resource;
                (s.group, s.version, s.plural)
                    == (resource.group, resource.version, resource.plural)
            })
            .cloned()
    })
}

/// Every served custom resource (each version).
pub fn resources() -> Vec<&'static Resource> {
    read(|r| r.versions.iter().map(|v| v.resource).collect())
}

/// The custom resources at their storage version (one per CRD: what a store key holds).
pub fn storage_resources() -> Vec<&'static Resource> {
    read(|r| {
        r.versions
            .iter()
            .filter(|v| v.resource.version == v.storage_version)
            .map(|v| v.resource)
            .collect()
    })
}

/// Whether some CRD serves resources in `group` (cheap: no allocation).
pub fn serves_group(group: &str) -> bool {
    read(|r| r.versions.iter().any(|v| v.resource.group == group))
}

/// The storage version's resource of the CRD `crd` (an object), while it is served.
pub fn storage_resource_of(crd: &Value) -> Option<&'static Resource> {
    let name = crd["metadata"]["name"].as_str()?;
    read(|r| {
        r.versions
            .iter()
            .find(|v| v.crd == name && v.resource.version == v.storage_version)
            .map(|v| v.resource)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_sort_as_kube_prefers_them() {
        let mut versions = vec![
            "v1alpha1", "foo", "v1beta1", "v1", "v2", "v1beta2", "v10", "bar",
        ];
        versions.sort_by_key(|v| version_priority(v));
        assert_eq!(
            versions,
            ["v10", "v2", "v1", "v1beta2", "v1beta1", "v1alpha1", "bar", "foo"]
        );
    }
}
