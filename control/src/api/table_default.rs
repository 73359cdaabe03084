//! The seam between the resource handler and Table printing: whether a client asks for
//! `meta.k8s.io/v1` Tables (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), and the
//! Table of some objects from the per-kind printers of `crate::table` (kube-apiserver's
//! columns; NAME and AGE for kinds without a printer). Each row's object follows
//! `includeObject`: PartialObjectMetadata (the default), the whole object, or none.

use serde_json::Value;

use crate::kinds::Resource;
use crate::table::{self, IncludeObject, TableOptions};

/// Whether `accept` asks for a `meta.k8s.io/v1` Table.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// The Table of `objects` (a list or one object), with its column definitions.
pub fn to_table(resource: &Resource, objects: &[Value], include_object: &str) -> Value {
    build(resource, objects, include_object, false)
}

/// The one-row Table of a watch event; only the first event of a watch carries the column
/// definitions, as kube-apiserver sends them.
pub fn to_event_table(
    resource: &Resource,
    object: Value,
    include_object: &str,
    first: bool,
) -> Value {
    build(resource, &[object], include_object, !first)
}

fn build(resource: &Resource, objects: &[Value], include_object: &str, no_headers: bool) -> Value {
    let options = TableOptions {
        include_object: IncludeObject::parse(include_object).unwrap_or_default(),
        no_headers,
        now: time::OffsetDateTime::now_utc(),
    };
    let mut table = table::to_table(resource, objects, &options);
    // Rows print the stored objects; an embedded whole object is shown at the request's
    // version, like every other answer.
    if options.include_object == IncludeObject::Object {
        let rows = table["rows"].as_array_mut().into_iter().flatten();
        for (row, object) in rows.zip(objects) {
            row["object"] = super::convert::to_served(object.clone(), resource);
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn kubectls_get_accept_asks_for_tables() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn tables_come_from_the_kinds_printer_and_watch_events_carry_headers_once() {
        let cms = crate::kinds::find("", "v1", "configmaps").unwrap();
        let o = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {"a": "b"}});
        let t = to_table(cms, std::slice::from_ref(&o), "Metadata");
        assert_eq!(t["kind"], "Table");
        assert_eq!(t["rows"][0]["cells"][0], "x");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert!(t["columnDefinitions"]
            .as_array()
            .is_some_and(|c| c.len() >= 2));
        assert_eq!(
            to_table(cms, std::slice::from_ref(&o), "Object")["rows"][0]["object"],
            o
        );
        assert!(to_event_table(cms, o.clone(), "Metadata", true)["columnDefinitions"].is_array());
        assert!(to_event_table(cms, o, "Metadata", false)["columnDefinitions"].is_null());
    }
}
