//! Reading a CustomResourceDefinition: the versions it serves once Established
//! (`served_versions`), and kube's validation of a CRD being written (`check`) — plus the
//! refusal, naming the field, of what bosun does not honour yet (conversion webhooks,
//! selectable fields). A schema's CEL rules are checked by `crd::cel::check`.

use serde_json::Value;

use super::jsonpath::{self, ColumnPath};
use super::schema;
use crate::status::FieldCause;

/// The API group of CustomResourceDefinitions.
pub const GROUP: &str = "apiextensions.k8s.io";

/// The finalizer a CRD being deleted carries until its objects are gone.
pub const CLEANUP_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrdScope {
    Namespaced,
    Cluster,
}

/// One `additionalPrinterColumns` entry.
#[derive(Clone, Debug)]
pub struct PrinterColumn {
    pub name: String,
    /// `integer`, `number`, `string`, `boolean` or `date`.
    pub kind: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: ColumnPath,
}

/// A version's `subresources.scale`: where the Scale's fields live in the object (simple
/// paths like `.spec.replicas`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ScalePaths {
    pub spec_replicas: Vec<String>,
    pub status_replicas: Vec<String>,
    pub label_selector: Option<Vec<String>>,
}

/// The fields of a simple path under `root` (`.spec.replicas` → `[spec, replicas]`); `None`
/// for anything else, as kube allows only those.
pub fn simple_path(path: &str, root: &str) -> Option<Vec<String>> {
    let rest = path.strip_prefix('.')?;
    let fields: Vec<String> = rest.split('.').map(str::to_owned).collect();
    let simple = fields.len() >= 2
        && fields[0] == root
        && fields.iter().all(|f| {
            !f.is_empty()
                && f.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
        });
    simple.then_some(fields)
}

fn scale_paths(scale: &Value) -> Option<ScalePaths> {
    Some(ScalePaths {
        spec_replicas: simple_path(scale["specReplicasPath"].as_str()?, "spec")?,
        status_replicas: simple_path(scale["statusReplicasPath"].as_str()?, "status")?,
        label_selector: match scale["labelSelectorPath"].as_str() {
            Some(path) => Some(simple_path(path, "status")?),
            None => None,
        },
    })
}

/// One version an Established CRD serves, as read from it.
#[derive(Debug)]
pub struct ServedVersion {
    pub crd: String,
    pub group: String,
    pub version: String,
    pub storage_version: String,
    pub kind: String,
    pub plural: String,
    pub singular: String,
    pub scope: CrdScope,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: Option<ScalePaths>,
    /// The warning every request to a `deprecated` version gets.
    pub deprecation: Option<String>,
    pub schema: Value,
    pub columns: Vec<PrinterColumn>,
    /// The version's `selectableFields`, as field-selector labels (`spec.color`).
    pub selectable_fields: Vec<String>,
    pub terminating: bool,
    /// The CRD's `spec.conversion`.
    pub conversion: Value,
}

/// Whether `object` is a CustomResourceDefinition.
pub fn is_crd(object: &Value) -> bool {
    object["kind"] == "CustomResourceDefinition"
        && object["apiVersion"].as_str() == Some("apiextensions.k8s.io/v1")
}

/// Whether the CRD's condition `kind` is `True`.
pub fn condition_true(crd: &Value, kind: &str) -> bool {
    crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// The strings of a JSON list (others skipped; not a list: none).
pub fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .map(str::to_owned)
        .collect()
}

/// The versions an Established CRD serves (under its accepted names); none otherwise.
pub fn served_versions(crd: &Value) -> Vec<ServedVersion> {
    if !condition_true(crd, "Established") {
        return Vec::new();
    }
    let spec = &crd["spec"];
    let names = &crd["status"]["acceptedNames"];
    let (Some(group), Some(kind), Some(plural)) = (
        spec["group"].as_str(),
        names["kind"].as_str(),
        names["plural"].as_str(),
    ) else {
        return Vec::new();
    };
    let scope = match spec["scope"].as_str() {
        Some("Cluster") => CrdScope::Cluster,
        _ => CrdScope::Namespaced,
    };
    let versions = spec["versions"].as_array().cloned().unwrap_or_default();
    let Some(storage_version) = versions
        .iter()
        .find(|v| v["storage"] == true)
        .and_then(|v| v["name"].as_str())
    else {
        return Vec::new();
    };
    versions
        .iter()
        .filter(|v| v["served"] == true)
        .filter_map(|v| {
            Some(ServedVersion {
                crd: crd["metadata"]["name"].as_str().unwrap_or("").to_owned(),
                group: group.to_owned(),
                version: v["name"].as_str()?.to_owned(),
                storage_version: storage_version.to_owned(),
                kind: kind.to_owned(),
                plural: plural.to_owned(),
                singular: names["singular"]
                    .as_str()
                    .map_or_else(|| kind.to_lowercase(), str::to_owned),
                scope,
                short_names: strings(&names["shortNames"]),
                categories: strings(&names["categories"]),
                status: v["subresources"]["status"].is_object(),
                scale: scale_paths(&v["subresources"]["scale"]),
                deprecation: (v["deprecated"] == true).then(|| {
                    v["deprecationWarning"].as_str().map_or_else(
                        || {
                            format!(
                                "{group}/{} {kind} is deprecated",
                                v["name"].as_str().unwrap_or("")
                            )
                        },
                        str::to_owned,
                    )
                }),
                schema: v["schema"]["openAPIV3Schema"].clone(),
                columns: printer_columns(&v["additionalPrinterColumns"]),
                selectable_fields: v["selectableFields"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|f| f["jsonPath"].as_str()?.strip_prefix('.'))
                    .map(str::to_owned)
                    .collect(),
                terminating: !crd["metadata"]["deletionTimestamp"].is_null(),
                conversion: spec["conversion"].clone(),
            })
        })
        .collect()
}

/// The printer columns of a version (the ones whose path parses; `check` refused others).
fn printer_columns(columns: &Value) -> Vec<PrinterColumn> {
    let text = |c: &Value, key: &str| c[key].as_str().unwrap_or("").to_owned();
    columns
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| {
            Some(PrinterColumn {
                name: text(c, "name"),
                kind: text(c, "type"),
                format: text(c, "format"),
                description: text(c, "description"),
                priority: c["priority"].as_i64().unwrap_or(0),
                path: jsonpath::parse(c["jsonPath"].as_str()?).ok()?,
            })
        })
        .collect()
}

/// kube's validation of a CRD being created or updated, and bosun's refusals; `old` is the
/// stored CRD on an update.
pub fn check(crd: &Value, old: Option<&Value>, causes: &mut Vec<FieldCause>) {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or("");
    let plural = spec["names"]["plural"].as_str().unwrap_or("");
    let name = crd["metadata"]["name"].as_str().unwrap_or("");
    if group.is_empty() {
        causes.push(FieldCause::required("spec.group"));
    } else if !group.contains('.') {
        causes.push(FieldCause::invalid(
            "spec.group",
            &format!("{group:?}"),
            "should be a domain with at least one dot",
        ));
    } else if crate::kinds::RESOURCES.iter().any(|r| r.group == group) {
        causes.push(FieldCause::invalid(
            "spec.group",
            &format!("{group:?}"),
            "is served by the built-in API",
        ));
    }
    if !group.is_empty() && !plural.is_empty() && name != format!("{plural}.{group}") {
        causes.push(FieldCause::invalid(
            "metadata.name",
            &format!("{name:?}"),
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    super::approval::check(crd, old, causes);
    check_names(&spec["names"], causes);
    match spec["scope"].as_str() {
        Some("Namespaced" | "Cluster") => {}
        None => causes.push(FieldCause::required("spec.scope")),
        Some(other) => causes.push(FieldCause::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    if let Some(old) = old {
        if old["spec"]["scope"] != spec["scope"] && !old["spec"]["scope"].is_null() {
            causes.push(FieldCause::invalid(
                "spec.scope",
                &format!("{:?}", spec["scope"].as_str().unwrap_or("")),
                "field is immutable",
            ));
        }
    }
    if spec["preserveUnknownFields"] == true {
        causes.push(FieldCause::invalid(
            "spec.preserveUnknownFields",
            "true",
            "must be false in order to use defaults in the schema",
        ));
    }
    match spec["conversion"]["strategy"].as_str() {
        None | Some("None") => {}
        // Its webhook is checked by `api::crd_conversion`, which calls it.
        Some("Webhook") => {}
        Some(other) => causes.push(FieldCause::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
    check_versions(&spec["versions"], causes);
}

fn check_names(names: &Value, causes: &mut Vec<FieldCause>) {
    for (field, required) in [("plural", true), ("singular", false), ("kind", true)] {
        let path = format!("spec.names.{field}");
        match names[field].as_str() {
            None | Some("") if required => causes.push(FieldCause::required(&path)),
            None | Some("") => {}
            Some(value) if field == "kind" => {
                if !value.starts_with(|c: char| c.is_ascii_alphabetic())
                    || !value.chars().all(|c| c.is_ascii_alphanumeric())
                {
                    causes.push(FieldCause::invalid(
                        &path,
                        &format!("{value:?}"),
                        "must be an alphanumeric name starting with a letter",
                    ));
                }
            }
            Some(value) => {
                if let Some(why) = dns_label_problem(value) {
                    causes.push(FieldCause::invalid(&path, &format!("{value:?}"), why));
                }
            }
        }
    }
    for (i, short) in strings(&names["shortNames"]).iter().enumerate() {
        if let Some(why) = dns_label_problem(short) {
            causes.push(FieldCause::invalid(
                &format!("spec.names.shortNames[{i}]"),
                &format!("{short:?}"),
                why,
            ));
        }
    }
}

fn dns_label_problem(value: &str) -> Option<&'static str> {
    let ok = !value.is_empty()
        && value.len() <= 63
        && value
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !value.starts_with('-')
        && !value.ends_with('-');
    (!ok).then_some("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character")
}

fn check_versions(versions: &Value, causes: &mut Vec<FieldCause>) {
    let Some(versions) = versions.as_array().filter(|v| !v.is_empty()) else {
        causes.push(FieldCause::required("spec.versions").with_message(
            "Required value: must have exactly one version marked as storage version",
        ));
        return;
    };
    let storage = versions.iter().filter(|v| v["storage"] == true).count();
    if storage != 1 {
        causes.push(FieldCause::invalid(
            "spec.versions",
            &format!("{storage}"),
            "must have exactly one version marked as storage version",
        ));
    }
    let mut seen = Vec::new();
    for (i, version) in versions.iter().enumerate() {
        let at = |field: &str| format!("spec.versions[{i}].{field}");
        let name = version["name"].as_str().unwrap_or("");
        if name.is_empty() {
            causes.push(FieldCause::required(&at("name")));
        } else if seen.contains(&name) {
            causes.push(FieldCause {
                field: at("name"),
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {name:?}"),
            });
        } else if let Some(why) = dns_label_problem(name) {
            causes.push(FieldCause::invalid(&at("name"), &format!("{name:?}"), why));
        }
        seen.push(name);
        let schema_at = at("schema.openAPIV3Schema");
        match &version["schema"]["openAPIV3Schema"] {
            Value::Null => causes.push(
                FieldCause::required(&schema_at)
                    .with_message("Required value: schemas are required"),
            ),
            schema_value => {
                causes.extend(schema::check_schema(schema_value, &schema_at));
                causes.extend(super::cel::check(schema_value, &schema_at));
            }
        }
        check_scale(
            &version["subresources"]["scale"],
            &at("subresources.scale"),
            causes,
        );
        check_selectable(
            &version["selectableFields"],
            &version["schema"]["openAPIV3Schema"],
            &at("selectableFields"),
            causes,
        );
        check_columns(
            &version["additionalPrinterColumns"],
            &at("additionalPrinterColumns"),
            causes,
        );
    }
}

/// kube's rules for `selectableFields`: at most 8, each a `jsonPath` of dotted names to a
/// string, integer or boolean field of the schema, outside `metadata`, none twice.
fn check_selectable(fields: &Value, schema: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    let Some(fields) = fields.as_array() else {
        if !fields.is_null() {
            causes.push(FieldCause::invalid(
                at,
                &fields.to_string(),
                "must be a list",
            ));
        }
        return;
    };
    if fields.len() > 8 {
        causes.push(FieldCause {
            field: at.to_owned(),
            reason: "FieldValueTooMany",
            message: format!("Too many: {}: must have at most 8 items", fields.len()),
        });
    }
    let mut seen = Vec::new();
    for (index, field) in fields.iter().enumerate() {
        let here = format!("{at}[{index}].jsonPath");
        let Some(path) = field["jsonPath"].as_str().filter(|p| !p.is_empty()) else {
            causes.push(FieldCause::required(&here));
            continue;
        };
        let shown = format!("{path:?}");
        if seen.contains(&path) {
            causes.push(FieldCause {
                field: here,
                reason: "FieldValueDuplicate",
                message: format!("Duplicate value: {shown}"),
            });
            continue;
        }
        seen.push(path);
        let mut node = schema;
        let names = path.strip_prefix('.').map(|rest| rest.split('.'));
        let mut valid = names.is_some();
        for name in names.into_iter().flatten() {
            match node["properties"].get(name) {
                Some(sub) if !name.is_empty() => node = sub,
                _ => valid = false,
            }
        }
        if !valid {
            let why = "is an invalid path: does not refer to a valid field";
            causes.push(FieldCause::invalid(&here, &shown, why));
        } else if path == ".metadata" || path.starts_with(".metadata.") {
            let why = "is an invalid path: must not point to metadata";
            causes.push(FieldCause::invalid(&here, &shown, why));
        } else if !matches!(
            node["type"].as_str(),
            Some("string" | "integer" | "boolean")
        ) {
            let why = "must point to a field of type string, boolean or integer. Enum string fields and strings with formats are allowed.";
            causes.push(FieldCause::invalid(&here, &shown, why));
        }
    }
}

/// kube's rules for `subresources.scale`: the replicas paths required, each a simple path
/// under `.spec` (specReplicasPath) or `.status` (the others).
fn check_scale(scale: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    if scale.is_null() {
        return;
    }
    for (field, root, required) in [
        ("specReplicasPath", "spec", true),
        ("statusReplicasPath", "status", true),
        ("labelSelectorPath", "status", false),
    ] {
        let path = format!("{at}.{field}");
        match scale[field].as_str() {
            None | Some("") if required => causes.push(FieldCause::required(&path)),
            None | Some("") => {}
            Some(value) => {
                if simple_path(value, root).is_none() {
                    causes.push(FieldCause::invalid(
                        &path,
                        &format!("{value:?}"),
                        &format!("should be a json path under .{root}"),
                    ));
                }
            }
        }
    }
}

fn check_columns(columns: &Value, at: &str, causes: &mut Vec<FieldCause>) {
    for (i, column) in columns.as_array().into_iter().flatten().enumerate() {
        let field = |name: &str| format!("{at}[{i}].{name}");
        if column["name"].as_str().unwrap_or("").is_empty() {
            causes.push(FieldCause::required(&field("name")));
        }
        match column["type"].as_str() {
            Some("integer" | "number" | "string" | "boolean" | "date") => {}
            None => causes.push(FieldCause::required(&field("type"))),
            Some(other) => causes.push(FieldCause::not_supported(
                &field("type"),
                other,
                &["boolean", "date", "integer", "number", "string"],
            )),
        }
        match column["jsonPath"].as_str() {
            None | Some("") => causes.push(FieldCause::required(&field("jsonPath"))),
            Some(path) => {
                if let Err(why) = jsonpath::parse(path) {
                    causes.push(FieldCause::invalid(
                        &field("jsonPath"),
                        &format!("{path:?}"),
                        &why,
                    ));
                }
            }
        }
    }
}
