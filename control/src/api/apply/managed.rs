//! `metadata.managedFields`: who manages which fields of an object, one entry per manager,
//! operation (`Apply` or `Update`) and subresource. Server-side apply reads and rewrites them
//! (`super::apply`); every other write of an object that has them records what it changed as
//! an `Update` by its manager, taking those fields from everyone else (`track_update`), as
//! kube-apiserver does. Objects nobody ever applied carry none, and writes to them cost
//! nothing here.

use serde_json::{json, Value};

use super::fields::{self, Fields};
use crate::api::meta;
use crate::api::patch::shape::Shape;
use crate::kinds::Resource;

/// The manager kube-apiserver names for the fields an object had before its first apply.
pub const BEFORE_FIRST_APPLY: &str = "before-first-apply";
/// The annotation of kubectl's client-side apply.
const LAST_APPLIED: &str = "kubectl.kubernetes.io/last-applied-configuration";

/// One entry of `managedFields`.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    /// `Apply` or `Update`.
    pub operation: &'static str,
    pub api_version: String,
    pub time: String,
    pub subresource: String,
    pub fields: Fields,
}

impl Entry {
    pub fn new(manager: &str, operation: &'static str, resource: &Resource) -> Entry {
        Entry {
            manager: manager.to_owned(),
            operation,
            api_version: resource.group_version(),
            time: meta::now(),
            subresource: String::new(),
            fields: Fields::new(),
        }
    }

    fn to_json(&self) -> Value {
        let mut entry = json!({
            "manager": self.manager,
            "operation": self.operation,
            "apiVersion": self.api_version,
            "time": self.time,
            "fieldsType": "FieldsV1",
            "fieldsV1": fields::to_fields_v1(&self.fields),
        });
        if !self.subresource.is_empty() {
            entry["subresource"] = json!(self.subresource);
        }
        entry
    }

    fn from_json(value: &Value) -> Option<Entry> {
        let operation = match value["operation"].as_str()? {
            "Apply" => "Apply",
            "Update" => "Update",
            _ => return None,
        };
        Some(Entry {
            manager: value["manager"].as_str().unwrap_or("").to_owned(),
            operation,
            api_version: value["apiVersion"].as_str().unwrap_or("").to_owned(),
            time: value["time"].as_str().unwrap_or("").to_owned(),
            subresource: value["subresource"].as_str().unwrap_or("").to_owned(),
            fields: fields::from_fields_v1(&value["fieldsV1"]).unwrap_or_default(),
        })
    }

    /// Whether this entry is the one of `manager` doing `operation` on `subresource`.
    pub fn is(&self, manager: &str, operation: &str, subresource: &str) -> bool {
        self.manager == manager && self.operation == operation && self.subresource == subresource
    }
}

/// The entries of `object`'s `managedFields` (unreadable entries are dropped).
pub fn entries(object: &Value) -> Vec<Entry> {
    object["metadata"]["managedFields"]
        .as_array()
        .map(|list| list.iter().filter_map(Entry::from_json).collect())
        .unwrap_or_default()
}

/// Writes `entries` (those that still manage something) as `object`'s `managedFields`.
pub fn set_entries(object: &mut Value, entries: &[Entry]) {
    let list: Vec<Value> = entries
        .iter()
        .filter(|e| !e.fields.is_empty())
        .map(Entry::to_json)
        .collect();
    if let Some(meta) = object["metadata"].as_object_mut() {
        if list.is_empty() {
            meta.remove("managedFields");
        } else {
            meta.insert("managedFields".to_owned(), Value::Array(list));
        }
    }
}

/// The entries of an object applied for the first time: its fields so far belong to
/// `before-first-apply`, except, when kubectl applies (manager `kubectl`) over its own
/// client-side apply, the fields of that last applied configuration, which are kubectl's
/// (kube-apiserver's upgrade from client-side apply).
pub fn first_apply(object: &Value, manager: &str, resource: &Resource) -> Vec<Entry> {
    let shape = Shape::of_resource(resource);
    let mut before = Entry::new(BEFORE_FIRST_APPLY, "Update", resource);
    before.fields = fields::of_object(object, shape, resource.has_status());
    let mut out = Vec::new();
    let last_applied = object["metadata"]["annotations"][LAST_APPLIED]
        .as_str()
        .and_then(|text| serde_json::from_str::<Value>(text).ok());
    if let (Some(last), "kubectl") = (last_applied, manager) {
        let mut applied = Entry::new(manager, "Apply", resource);
        applied.fields = fields::of_object(&last, shape, resource.has_status());
        before.fields.retain(|path| !applied.fields.contains(path));
        out.push(applied);
    }
    out.insert(0, before);
    out
}

/// Records a write that is not an apply: the fields whose value `new` changes from `old` now
/// belong to `manager` (an `Update` entry of `subresource`) and to nobody else; fields `new`
/// no longer has belong to nobody. Only for objects that have `managedFields`; an explicit
/// `managedFields: [{}]` in `new` clears them (kube's reset).
pub fn track_update(
    old: &Value,
    new: &mut Value,
    manager: &str,
    subresource: &str,
    resource: &Resource,
) {
    if new["metadata"]["managedFields"] == json!([{}]) {
        if let Some(meta) = new["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        return;
    }
    let mut list = entries(old);
    if list.is_empty() {
        if let Some(meta) = new["metadata"].as_object_mut() {
            meta.remove("managedFields");
        }
        return;
    }
    let shape = Shape::of_resource(resource);
    let without_status = subresource.is_empty() && resource.has_status();
    let mut all = fields::of_object(old, shape, without_status);
    all.extend(fields::of_object(new, shape, without_status));
    let changed: Fields = all
        .into_iter()
        .filter(|path| differs(old, new, path))
        .collect();
    if changed.is_empty() {
        set_entries(new, &list);
        return;
    }
    for entry in &mut list {
        entry
            .fields
            .retain(|path| !changed.contains(path) && fields::value_at(new, path).is_some());
    }
    let position = list
        .iter()
        .position(|e| e.is(manager, "Update", subresource));
    let index = position.unwrap_or_else(|| {
        let mut entry = Entry::new(manager, "Update", resource);
        entry.subresource = subresource.to_owned();
        list.push(entry);
        list.len() - 1
    });
    let mine = &mut list[index];
    mine.time = meta::now();
    mine.api_version = resource.group_version();
    mine.fields.extend(
        changed
            .into_iter()
            .filter(|path| fields::value_at(new, path).is_some()),
    );
    set_entries(new, &list);
}

/// Whether the value at `path` differs between `a` and `b`: one has it and the other not, or
/// both have a leaf value and they differ (a map or list element is the same member whatever
/// its children are).
pub fn differs(a: &Value, b: &Value, path: &[String]) -> bool {
    match (fields::value_at(a, path), fields::value_at(b, path)) {
        (Some(x), Some(y)) => {
            let member = |v: &Value| v.as_object().is_some_and(|m| !m.is_empty());
            !(member(x) && member(y)) && x != y
        }
        (None, None) => false,
        _ => true,
    }
}
