//! The seam to Table printing: whether a client asks for `meta.k8s.io/v1` Tables
//! (`Accept: application/json;as=Table;v=v1;g=meta.k8s.io`), and the default Table every kind
//! gets until the per-kind printers (`crate::table`) are routed here: NAME and AGE, with each
//! row's object as PartialObjectMetadata (`includeObject=Metadata`, the default), the full
//! object (`Object`) or nothing (`None`).

use serde_json::{json, Value};
use time::format_description::well_known::Rfc3339;

use crate::kinds::Resource;

/// Whether `accept` asks for a `meta.k8s.io/v1` Table first.
pub fn wants_table(accept: &str) -> bool {
    accept.split(',').any(|item| {
        let params: Vec<&str> = item.split(';').map(str::trim).collect();
        params.contains(&"as=Table")
            && params.contains(&"g=meta.k8s.io")
            && params.contains(&"v=v1")
    })
}

/// The Table of `objects`.
pub fn to_table(resource: &Resource, objects: &[Value], include_object: &str) -> Value {
    let _ = resource;
    let rows: Vec<Value> = objects
        .iter()
        .map(|o| {
            let meta = &o["metadata"];
            let mut row = json!({
                "cells": [meta["name"], age(meta["creationTimestamp"].as_str().unwrap_or(""))],
            });
            match include_object {
                "Object" => row["object"] = o.clone(),
                "None" => {}
                _ => {
                    row["object"] = json!({
                        "kind": "PartialObjectMetadata",
                        "apiVersion": "meta.k8s.io/v1",
                        "metadata": meta,
                    })
                }
            }
            row
        })
        .collect();
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": {},
        "columnDefinitions": [
            {"name": "Name", "type": "string", "format": "name", "priority": 0,
             "description": "Name must be unique within a namespace."},
            {"name": "Age", "type": "string", "format": "", "priority": 0,
             "description": "CreationTimestamp is the time the object was created."},
        ],
        "rows": rows,
    })
}

/// The age of an object created at `timestamp`, as kubectl prints it (`5s`, `3m2s`, `4d`).
pub fn age(timestamp: &str) -> String {
    let Ok(created) = time::OffsetDateTime::parse(timestamp, &Rfc3339) else {
        return "<unknown>".to_owned();
    };
    let seconds = (time::OffsetDateTime::now_utc() - created).whole_seconds();
    human_duration(seconds)
}

/// Kubernetes' `duration.HumanDuration`.
pub fn human_duration(seconds: i64) -> String {
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    let s = seconds.max(0);
    let (m, h, d) = (s / 60, s / 3600, s / 86400);
    match () {
        _ if s < 120 => format!("{s}s"),
        _ if m < 10 && s % 60 != 0 => format!("{m}m{}s", s % 60),
        _ if m < 180 => format!("{m}m"),
        _ if h < 8 && m % 60 != 0 => format!("{h}h{}m", m % 60),
        _ if h < 48 => format!("{h}h"),
        _ if h < 192 && h % 24 != 0 => format!("{d}d{}h", h % 24),
        _ if d < 730 => format!("{d}d"),
        _ if d < 2920 && d % 365 != 0 => format!("{}y{}d", d / 365, d % 365),
        _ => format!("{}y", d / 365),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubectls_get_accept_asks_for_tables() {
        assert!(wants_table("application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"));
        assert!(!wants_table("application/json"));
    }

    #[test]
    fn default_tables_hold_name_age_and_the_object() {
        let cms = crate::kinds::find("", "v1", "configmaps").unwrap();
        let o = json!({"metadata": {"name": "x", "creationTimestamp": "2020-01-01T00:00:00Z"}, "data": {}});
        let t = to_table(cms, std::slice::from_ref(&o), "Metadata");
        assert_eq!(t["rows"][0]["cells"][0], "x");
        assert_eq!(t["rows"][0]["object"]["kind"], "PartialObjectMetadata");
        assert_eq!(
            to_table(cms, std::slice::from_ref(&o), "Object")["rows"][0]["object"],
            o
        );
        assert_eq!(human_duration(5), "5s");
        assert_eq!(human_duration(185), "3m5s");
        assert_eq!(human_duration(3 * 86400), "3d");
    }
}
