//! Where a strategic merge patch is in the object: the schema of the value at each path,
//! walked alongside the object through the k8s-openapi `schemars` schemas (`$ref`s to named
//! definitions, `allOf` wrappers, `items`, `additionalProperties`), and the patch strategy and
//! merge key of each field from the generated `merge_keys` table. Knows nothing of how a
//! patch is applied.

use std::sync::OnceLock;

use serde_json::{Map, Value};

use super::merge_keys::FIELDS;
use crate::openapi::schemas;

/// The schemas of every served kind, built once.
struct Catalog {
    schemas: Map<String, Value>,
    kinds: schemas::KindSchemas,
}

fn catalog() -> &'static Catalog {
    static CATALOG: OnceLock<Catalog> = OnceLock::new();
    CATALOG.get_or_init(|| {
        let (schemas, kinds) = schemas::catalog();
        Catalog { schemas, kinds }
    })
}

/// How a field's value is patched, from its `patchStrategy` tag.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Strategy {
    /// `merge`: lists merge element-wise (by the merge key, or as a set of primitives).
    pub merge: bool,
    /// `replace`: a map is replaced whole instead of merged.
    pub replace: bool,
    /// `retainKeys`: the patch may name the keys to keep with `$retainKeys`.
    pub retain_keys: bool,
}

impl Strategy {
    pub fn parse(text: &str) -> Strategy {
        let mut s = Strategy::default();
        for part in text.split(',') {
            match part.trim() {
                "merge" => s.merge = true,
                "replace" => s.replace = true,
                "retainKeys" => s.retain_keys = true,
                _ => {}
            }
        }
        s
    }
}

/// The schema of one value: its definition name when it is a named type, and its schema.
#[derive(Clone, Copy, Debug, Default)]
pub struct Shape {
    definition: Option<&'static str>,
    schema: Option<&'static Value>,
}

/// What the schema says about one field of an object.
#[derive(Clone, Copy, Debug, Default)]
pub struct Field {
    pub strategy: Strategy,
    pub merge_key: Option<&'static str>,
    pub shape: Shape,
}

impl Shape {
    /// A value of unknown schema: maps merge, lists are replaced.
    pub fn unknown() -> Shape {
        Shape::default()
    }

    /// The named definition, if the catalog has it.
    pub fn named(name: &str) -> Shape {
        match catalog().schemas.get_key_value(name) {
            Some((name, schema)) => Shape {
                definition: Some(name.as_str()),
                schema: Some(schema),
            },
            None => Shape::unknown(),
        }
    }

    /// The schema of a resource: its kind's, or a custom resource's from its CRD (whose
    /// lists merge as their `x-kubernetes-list-type` says).
    pub fn of_resource(resource: &crate::kinds::Resource) -> Shape {
        if !resource.custom {
            return Shape::of_kind(resource.group, resource.version, resource.kind);
        }
        match crate::crd::registry::version_of(resource) {
            Some(version) => Shape {
                definition: None,
                schema: Some(crate::crd::registry::static_schema(&version.schema)),
            },
            None => Shape::unknown(),
        }
    }

    /// The schema of a kind of the kinds table.
    pub fn of_kind(group: &str, version: &str, kind: &str) -> Shape {
        catalog()
            .kinds
            .get(&(group, version, kind))
            .map(|name| Shape::named(name))
            .unwrap_or_default()
    }

    /// The named definition this is, if any.
    pub fn definition(&self) -> Option<&'static str> {
        self.definition
    }

    /// Whether `name` is a declared property of this object that its schema does not list
    /// as required.
    pub fn is_optional(&self, name: &str) -> bool {
        let Some(schema) = self.schema else {
            return false;
        };
        let declared = schema
            .get("properties")
            .is_some_and(|p| p.get(name).is_some());
        let required = schema
            .get("required")
            .and_then(Value::as_array)
            .is_some_and(|r| r.iter().any(|n| n == name));
        declared && !required
    }

    /// Follows `$ref` (directly or as the first `allOf`) to a named definition.
    fn resolve(schema: Option<&'static Value>) -> Shape {
        let Some(schema) = schema else {
            return Shape::unknown();
        };
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            return Shape::named(reference.rsplit('/').next().unwrap_or(reference));
        }
        if let Some(first) = schema.get("allOf").and_then(|a| a.get(0)) {
            return Shape::resolve(Some(first));
        }
        Shape {
            definition: None,
            schema: Some(schema),
        }
    }

    /// The field `name` of this object (a declared property, or a value of a map).
    pub fn field(&self, name: &str) -> Field {
        let Some(schema) = self.schema else {
            return Field::default();
        };
        let property = schema.get("properties").and_then(|p| p.get(name));
        let shape = match property {
            Some(p) => Shape::resolve(Some(p)),
            None => Shape::resolve(schema.get("additionalProperties").filter(|a| a.is_object())),
        };
        let (strategy, merge_key) = match (self.definition, property) {
            (Some(definition), Some(_)) => lookup(definition, name),
            // A custom resource's schema says it itself.
            (None, Some(property)) => list_type(property),
            _ => (Strategy::default(), None),
        };
        Field {
            strategy,
            merge_key,
            shape,
        }
    }

    /// Whether this is a list (`type: array`).
    pub fn is_list(&self) -> bool {
        self.schema.is_some_and(|s| {
            s.get("type") == Some(&Value::from("array")) || s.get("items").is_some()
        })
    }

    /// Whether this is a map of free keys (`additionalProperties` and no declared properties):
    /// labels, annotations, data.
    pub fn is_map(&self) -> bool {
        self.schema.is_some_and(|s| {
            s.get("properties").is_none()
                && s.get("additionalProperties").is_some_and(Value::is_object)
        })
    }

    /// The elements of this list.
    pub fn items(&self) -> Shape {
        Shape::resolve(self.schema.and_then(|s| s.get("items")))
    }
}

/// The strategy and merge key of a list a structural schema annotates: `set` merges as a set
/// of values, `map` with one key by that key (a list map of several keys is replaced whole,
/// as an atomic list).
fn list_type(property: &'static Value) -> (Strategy, Option<&'static str>) {
    let merge = Strategy {
        merge: true,
        ..Strategy::default()
    };
    match property
        .get("x-kubernetes-list-type")
        .and_then(Value::as_str)
    {
        Some("set") => (merge, None),
        Some("map") => match property
            .get("x-kubernetes-list-map-keys")
            .and_then(Value::as_array)
        {
            Some(keys) if keys.len() == 1 => match keys[0].as_str() {
                Some(key) => (merge, Some(key)),
                None => (Strategy::default(), None),
            },
            _ => (Strategy::default(), None),
        },
        _ => (Strategy::default(), None),
    }
}

/// The strategy and merge key of `definition.field` from the generated table.
fn lookup(definition: &str, field: &str) -> (Strategy, Option<&'static str>) {
    match FIELDS.binary_search_by(|(d, f, _, _)| (*d, *f).cmp(&(definition, field))) {
        Ok(i) => {
            let (_, _, strategy, key) = FIELDS[i];
            (
                Strategy::parse(strategy),
                Some(key).filter(|k| !k.is_empty()),
            )
        }
        Err(_) => (Strategy::default(), None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_is_sorted_for_binary_search() {
        for pair in FIELDS.windows(2) {
            assert!((pair[0].0, pair[0].1) < (pair[1].0, pair[1].1), "{pair:?}");
        }
    }

    #[test]
    fn walks_a_deployment_down_to_container_ports() {
        let deployment = Shape::of_kind("apps", "v1", "Deployment");
        assert_eq!(
            deployment.definition(),
            Some("io.k8s.api.apps.v1.Deployment")
        );
        let spec = deployment.field("spec").shape;
        let strategy = spec.field("strategy");
        assert!(strategy.strategy.retain_keys && !strategy.strategy.merge);
        let pod = spec.field("template").shape.field("spec").shape;
        let containers = pod.field("containers");
        assert!(containers.strategy.merge);
        assert_eq!(containers.merge_key, Some("name"));
        let volumes = pod.field("volumes");
        assert!(volumes.strategy.merge && volumes.strategy.retain_keys);
        let container = containers.shape.items();
        assert_eq!(container.definition(), Some("io.k8s.api.core.v1.Container"));
        assert_eq!(container.field("ports").merge_key, Some("containerPort"));
        assert_eq!(container.field("env").merge_key, Some("name"));
        assert_eq!(container.field("volumeMounts").merge_key, Some("mountPath"));
        let tolerations = pod.field("tolerations");
        assert!(!tolerations.strategy.merge);
        let meta = deployment.field("metadata").shape;
        let finalizers = meta.field("finalizers");
        assert!(finalizers.strategy.merge && finalizers.merge_key.is_none());
        assert_eq!(meta.field("ownerReferences").merge_key, Some("uid"));
        let labels = meta.field("labels").shape;
        assert_eq!(labels.field("app").merge_key, None);
    }

    #[test]
    fn the_scale_is_in_the_catalog() {
        let scale = Shape::named(schemas::SCALE);
        assert_eq!(scale.definition(), Some(schemas::SCALE));
        assert!(scale.field("spec").shape.definition().is_some());
    }
}
