//! Custom objects as kube-apiserver's CRD handler treats them: decoded against their
//! version's structural schema (unknown fields pruned — an error under
//! `fieldValidation=Strict`, a warning under `Warn` —, `metadata` kept to ObjectMeta's
//! fields, defaults filled), validated against it (422 with field causes; on an update, errors
//! in values left unchanged pass, as kube's validation ratcheting has it), shown at the
//! request's version (conversion `None`: only `apiVersion` differs) and printed with the
//! version's `additionalPrinterColumns`.

use serde_json::{json, Value};
use time::OffsetDateTime;

use super::definition::PrinterColumn;
use super::registry::{self, CustomVersion};
use super::schema;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

/// The served version behind `resource`, or a 404-like error when the CRD went away while
/// the request was on its way.
fn version(resource: &Resource) -> Result<std::sync::Arc<CustomVersion>, ApiError> {
    registry::version_of(resource)
        .ok_or_else(|| ApiError::not_found(resource.group, resource.plural, ""))
}

/// Prunes and defaults a custom object being written; returns the fields it dropped, in
/// kube's form (`spec.colour`), for the caller's unknown-field handling.
pub fn decode(object: &mut Value, resource: &Resource) -> Result<Vec<String>, ApiError> {
    let version = version(resource)?;
    let mut unknown = schema::prune(object, &version.schema);
    unknown.extend(prune_metadata(object));
    schema::apply_defaults(object, &version.schema);
    unknown.sort();
    Ok(unknown)
}

/// Keeps only ObjectMeta's fields in `metadata` (the names of those dropped, as kube reports
/// them: `metadata.colour`).
fn prune_metadata(object: &mut Value) -> Vec<String> {
    let Some(metadata) = object.get_mut("metadata") else {
        return Vec::new();
    };
    if metadata.is_null() {
        return Vec::new();
    }
    let typed: Result<k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta, _> =
        serde_json::from_value(metadata.clone());
    let Ok(typed) = typed else {
        return Vec::new(); // a type error is reported by `validate`
    };
    let round = serde_json::to_value(typed).unwrap_or_default();
    let mut dropped = Vec::new();
    if let (Some(fields), Some(known)) = (metadata.as_object_mut(), round.as_object()) {
        fields.retain(|key, value| {
            let keep = known.contains_key(key) || value.is_null();
            if !keep {
                dropped.push(format!("metadata.{key}"));
            }
            keep
        });
    }
    dropped
}

/// The schema's violations of a custom object being stored (`old`: the stored object of an
/// update, for transition rules), OpenAPI's and then the CEL rules'.
pub fn validate(
    object: &Value,
    old: Option<&Value>,
    resource: &Resource,
    causes: &mut Vec<FieldCause>,
) {
    let Some(version) = checking_version(object, resource) else {
        return;
    };
    if let Err(why) = check_metadata_types(object) {
        causes.push(why);
    }
    let mut found = schema::validate(object, &version.schema);
    if let Some(old) = old {
        found.retain(|cause| !unchanged(object, old, &cause.field));
    }
    causes.extend(found);
    super::cel::validate(&version.rules, &version.schema, object, old, causes);
}

/// The version whose schema checks a written object: the request's, or — when a conversion
/// webhook converted the object to the storage version before it is checked — the storage
/// version.
fn checking_version(object: &Value, resource: &Resource) -> Option<std::sync::Arc<CustomVersion>> {
    let version = registry::version_of(resource)?;
    if version.conversion["strategy"] != "Webhook" {
        return Some(version);
    }
    let written = object["apiVersion"]
        .as_str()
        .and_then(|v| v.rsplit('/').next());
    match written {
        Some(name) if name != resource.version => {
            registry::find(resource.group, name, resource.plural).and_then(registry::version_of)
        }
        _ => Some(version),
    }
}

/// Whether an update leaves the field a schema error names as it was — kube's validation
/// ratcheting then lets the error pass. Below a list the whole list must be unchanged (list
/// items are not correlated here, which only makes bosun stricter than kube).
fn unchanged(new: &Value, old: &Value, field: &str) -> bool {
    let path = field.split('[').next().unwrap_or("");
    if path.is_empty() || path == "<nil>" {
        return false;
    }
    let (mut new, mut old) = (new, old);
    for name in path.split('.') {
        match (new.get(name), old.get(name)) {
            (Some(n), Some(o)) => (new, old) = (n, o),
            _ => return false,
        }
    }
    new == old
}

fn check_metadata_types(object: &Value) -> Result<(), FieldCause> {
    let metadata = &object["metadata"];
    serde_path_to_error::deserialize::<_, k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta>(metadata)
        .map(|_| ())
        .map_err(|e| {
            let path = e.path().to_string();
            FieldCause::invalid(&format!("metadata.{path}"), "", &e.inner().to_string())
        })
}

/// 405 for a create while the CRD is being deleted (kube's words).
pub fn check_create(resource: &Resource) -> Result<(), ApiError> {
    match registry::version_of(resource) {
        Some(version) if version.terminating => Err(ApiError::new(
            http::StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "create not allowed while custom resource definition is terminating",
        )),
        _ => Ok(()),
    }
}

/// A stored custom object as `resource`'s version shows it.
pub fn to_served(mut object: Value, resource: &Resource) -> Value {
    if object.is_object() {
        object["apiVersion"] = json!(resource.group_version());
    }
    object
}

/// A written custom object at its storage version.
pub fn to_storage(mut object: Value, resource: &Resource) -> Value {
    let storage = registry::version_of(resource).map_or_else(
        || resource.version.to_owned(),
        |v| v.storage_version.clone(),
    );
    if object.is_object() {
        object["apiVersion"] = json!(format!("{}/{storage}", resource.group));
    }
    object
}

/// The column definitions and the cells of a custom resource's Table: NAME, then the
/// version's printer columns (AGE when it has none), as kube's CRD table convertor prints
/// them.
pub fn table_columns(resource: &Resource) -> (Vec<Value>, Vec<PrinterColumn>) {
    let columns = registry::version_of(resource)
        .map(|v| v.columns.clone())
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| {
            vec![PrinterColumn {
                name: "Age".into(),
                kind: "date".into(),
                format: String::new(),
                description: "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata".into(),
                priority: 0,
                path: super::jsonpath::parse(".metadata.creationTimestamp")
                    .unwrap_or_else(|_| unreachable!("a valid path")),
            }]
        });
    let mut definitions = vec![json!({
        "name": "Name", "type": "string", "format": "name",
        "description": "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names",
        "priority": 0,
    })];
    definitions.extend(columns.iter().map(|c| {
        json!({"name": c.name, "type": c.kind, "format": c.format,
            "description": c.description, "priority": c.priority})
    }));
    (definitions, columns)
}

/// One row's cells for `columns` (after the NAME cell).
pub fn cells(object: &Value, columns: &[PrinterColumn], now: OffsetDateTime) -> Vec<Value> {
    let mut cells = vec![object["metadata"]["name"].clone()];
    for column in columns {
        let cell = match column.path.first(object) {
            None => Value::Null,
            Some(value) => cell(&column.kind, value, now),
        };
        cells.push(cell);
    }
    cells
}

/// kube's `cellForJSONValue`: the value as the column's type says, or null.
fn cell(kind: &str, value: &Value, now: OffsetDateTime) -> Value {
    match (kind, value) {
        ("integer", Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f as i64))
            .map_or(Value::Null, Value::from),
        ("number", Value::Number(n)) => n.as_f64().map_or(Value::Null, Value::from),
        ("boolean", Value::Bool(b)) => Value::Bool(*b),
        ("date", Value::String(text)) => {
            let parsed =
                OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339);
            match parsed {
                Ok(at) => Value::from(crate::table::human_duration(now - at)),
                Err(_) => Value::from("<invalid>"),
            }
        }
        ("string", Value::String(text)) => Value::from(text.clone()),
        ("string", other @ (Value::Number(_) | Value::Bool(_))) => Value::from(other.to_string()),
        ("string", other @ (Value::Object(_) | Value::Array(_))) => Value::from(other.to_string()),
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_column_types() {
        let now = OffsetDateTime::parse(
            "2026-01-01T00:10:00Z",
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert_eq!(cell("integer", &json!(3), now), json!(3));
        assert_eq!(cell("integer", &json!("3"), now), Value::Null);
        assert_eq!(cell("number", &json!(1.5), now), json!(1.5));
        assert_eq!(cell("boolean", &json!(true), now), json!(true));
        assert_eq!(cell("string", &json!("x"), now), json!("x"));
        assert_eq!(cell("string", &json!(7), now), json!("7"));
        assert_eq!(
            cell("date", &json!("2026-01-01T00:00:00Z"), now),
            json!("10m")
        );
        assert_eq!(cell("date", &json!("yesterday"), now), json!("<invalid>"));
    }

    #[test]
    fn only_object_meta_fields_stay_in_metadata() {
        let mut object = json!({"metadata": {"name": "a", "labels": {"x": "y"}, "colour": "red"}});
        assert_eq!(prune_metadata(&mut object), ["metadata.colour"]);
        assert_eq!(
            object,
            json!({"metadata": {"name": "a", "labels": {"x": "y"}}})
        );
    }

    #[test]
    fn schema_errors_in_unchanged_values_ratchet() {
        let old = json!({"spec": {"size": 0, "ports": [{"n": 1}]}});
        let new = json!({"spec": {"size": 0, "ports": [{"n": 1}], "note": "x"}});
        assert!(super::unchanged(&new, &old, "spec.size"));
        assert!(super::unchanged(&new, &old, "spec.ports[0].n"));
        assert!(!super::unchanged(&new, &old, "spec.note"));
        assert!(!super::unchanged(&new, &old, "<nil>"));
        let moved = json!({"spec": {"size": 1, "ports": [{"n": 2}]}});
        assert!(!super::unchanged(&moved, &old, "spec.size"));
        assert!(!super::unchanged(&moved, &old, "spec.ports[0].n"));
    }
}
