//! Shared helpers of the printers: column definitions, reading fields of a JSON object without
//! panicking (a missing field reads as empty/zero, as Go's zero values do), Kubernetes' human
//! durations (`duration.HumanDuration`), label and selector formatting, container cells.

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// One column of a Table (`meta.k8s.io/v1` TableColumnDefinition).
#[derive(Clone, Copy, Debug)]
pub struct Column {
    pub name: &'static str,
    /// `string`, `integer`, `boolean`, `date`.
    pub kind: &'static str,
    /// `name` for the NAME column, else empty.
    pub format: &'static str,
    /// 0: always shown; 1: only with `-o wide`.
    pub priority: u8,
    pub description: &'static str,
}

pub const NAME_DESCRIPTION: &str = "Name must be unique within a namespace. Is required when creating resources, although some resources may allow a client to request the generation of an appropriate name automatically. Name is primarily intended for creation idempotence and configuration definition. Cannot be updated. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names";
pub const AGE_DESCRIPTION: &str = "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the system. Read-only. Null for lists. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata";

/// The NAME column.
pub const NAME: Column = Column {
    name: "Name",
    kind: "string",
    format: "name",
    priority: 0,
    description: NAME_DESCRIPTION,
};

/// The AGE column.
pub const AGE: Column = Column {
    name: "Age",
    kind: "string",
    format: "",
    priority: 0,
    description: AGE_DESCRIPTION,
};

/// A column shown by default.
pub const fn col(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 0,
        description,
    }
}

/// A column shown only with `-o wide`.
pub const fn wide(name: &'static str, kind: &'static str, description: &'static str) -> Column {
    Column {
        name,
        kind,
        format: "",
        priority: 1,
        description,
    }
}

pub const CONTAINERS: Column = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);
pub const IMAGES: Column = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// The value at `path`, or Null.
pub fn at<'a>(v: &'a Value, path: &[&str]) -> &'a Value {
    path.iter()
        .fold(v, |v, key| v.get(key).unwrap_or(&Value::Null))
}

/// The string at `path`, or "".
pub fn s<'a>(v: &'a Value, path: &[&str]) -> &'a str {
    at(v, path).as_str().unwrap_or("")
}

/// The integer at `path`, or 0.
pub fn int(v: &Value, path: &[&str]) -> i64 {
    at(v, path).as_i64().unwrap_or(0)
}

/// The array at `path`, or empty.
pub fn arr<'a>(v: &'a Value, path: &[&str]) -> &'a [Value] {
    at(v, path).as_array().map(Vec::as_slice).unwrap_or(&[])
}

/// The number of entries of the map at `path`.
pub fn map_len(v: &Value, path: &[&str]) -> i64 {
    at(v, path).as_object().map_or(0, |m| m.len() as i64)
}

/// An RFC 3339 timestamp at `path`, if present and valid.
pub fn timestamp(v: &Value, path: &[&str]) -> Option<OffsetDateTime> {
    OffsetDateTime::parse(s(v, path), &Rfc3339).ok()
}

/// Kubernetes' `translateTimestampSince`: the human duration from `ts` to `now`, or
/// `<unknown>` without a timestamp.
pub fn since(ts: Option<OffsetDateTime>, now: OffsetDateTime) -> String {
    match ts {
        Some(ts) => human_duration(now - ts),
        None => "<unknown>".to_owned(),
    }
}

/// The AGE cell of an object.
pub fn age(object: &Value, now: OffsetDateTime) -> Value {
    Value::from(since(
        timestamp(object, &["metadata", "creationTimestamp"]),
        now,
    ))
}

/// The NAME cell of an object.
pub fn name(object: &Value) -> Value {
    Value::from(s(object, &["metadata", "name"]))
}

/// Kubernetes' `duration.HumanDuration`: ~2-3 significant figures (`45s`, `3m20s`, `2d3h`,
/// `45d`, `2y10d`); up to 2 s in the future reads `0s` (clock skew), further is `<invalid>`.
pub fn human_duration(d: time::Duration) -> String {
    let seconds = d.whole_seconds();
    if seconds < -1 {
        return "<invalid>".to_owned();
    }
    if seconds < 0 {
        return "0s".to_owned();
    }
    if seconds < 60 * 2 {
        return format!("{seconds}s");
    }
    let minutes = seconds / 60;
    if minutes < 10 {
        return match seconds % 60 {
            0 => format!("{minutes}m"),
            s => format!("{minutes}m{s}s"),
        };
    }
    if minutes < 60 * 3 {
        return format!("{minutes}m");
    }
    let hours = seconds / 3600;
    if hours < 8 {
        return match minutes % 60 {
            0 => format!("{hours}h"),
            m => format!("{hours}h{m}m"),
        };
    }
    if hours < 48 {
        return format!("{hours}h");
    }
    if hours < 24 * 8 {
        return match hours % 24 {
            0 => format!("{}d", hours / 24),
            h => format!("{}d{h}h", hours / 24),
        };
    }
    if hours < 24 * 365 * 2 {
        return format!("{}d", hours / 24);
    }
    if hours < 24 * 365 * 8 {
        return match (hours / 24) % 365 {
            0 => format!("{}y", hours / 24 / 365),
            dy => format!("{}y{dy}d", hours / 24 / 365),
        };
    }
    format!("{}y", hours / 24 / 365)
}

/// `labels.FormatLabels`: `k=v,k2=v2` sorted by key, `<none>` when empty.
pub fn format_labels(map: &Value) -> String {
    let mut pairs: Vec<String> = map
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
        .collect();
    pairs.sort();
    if pairs.is_empty() {
        "<none>".to_owned()
    } else {
        pairs.join(",")
    }
}

/// A LabelSelector as `metav1.LabelSelectorAsSelector(...).String()`: requirements sorted by
/// key, `k=v`, `k in (a,b)`, `k notin (a,b)`, `k`, `!k`; "" for none.
pub fn selector_string(selector: &Value) -> String {
    let mut reqs: Vec<(String, String)> = Vec::new();
    for (k, v) in at(selector, &["matchLabels"])
        .as_object()
        .into_iter()
        .flatten()
    {
        reqs.push((k.clone(), format!("{k}={}", v.as_str().unwrap_or(""))));
    }
    for expr in arr(selector, &["matchExpressions"]) {
        let key = s(expr, &["key"]);
        let mut values: Vec<&str> = arr(expr, &["values"])
            .iter()
            .filter_map(Value::as_str)
            .collect();
        values.sort_unstable();
        values.dedup();
        let text = match s(expr, &["operator"]) {
            "In" => format!("{key} in ({})", values.join(",")),
            "NotIn" => format!("{key} notin ({})", values.join(",")),
            "Exists" => key.to_owned(),
            "DoesNotExist" => format!("!{key}"),
            _ => continue,
        };
        reqs.push((key.to_owned(), text));
    }
    reqs.sort_by(|a, b| a.0.cmp(&b.0));
    reqs.into_iter()
        .map(|(_, text)| text)
        .collect::<Vec<_>>()
        .join(",")
}

/// `metav1.FormatLabelSelector`: the selector string, `<none>` when empty.
pub fn format_selector(selector: &Value) -> String {
    match selector_string(selector) {
        text if text.is_empty() => "<none>".to_owned(),
        text => text,
    }
}

/// The CONTAINERS and IMAGES cells of a pod template: names and images joined by commas.
pub fn container_cells(template: &Value) -> [Value; 2] {
    let containers = arr(template, &["spec", "containers"]);
    let names: Vec<&str> = containers.iter().map(|c| s(c, &["name"])).collect();
    let images: Vec<&str> = containers.iter().map(|c| s(c, &["image"])).collect();
    [Value::from(names.join(",")), Value::from(images.join(","))]
}

/// `listWithMoreString`: the first `max` entries, `+ N more...` for the rest, `<unset>` for
/// none.
pub fn list_with_more(list: &[String], count: usize, max: usize) -> String {
    let text = list.join(",");
    if count > max {
        format!("{text} + {} more...", count - max)
    } else if text.is_empty() {
        "<unset>".to_owned()
    } else {
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn human_durations_follow_kubernetes() {
        let cases: &[(i64, &str)] = &[
            (-3, "<invalid>"),
            (-1, "0s"),
            (0, "0s"),
            (5, "5s"),
            (119, "119s"),
            (120, "2m"),
            (200, "3m20s"),
            (599, "9m59s"),
            (600, "10m"),
            (179 * 60 + 59, "179m"),
            (3 * 3600, "3h"),
            (3 * 3600 + 25 * 60 + 9, "3h25m"),
            (8 * 3600, "8h"),
            (47 * 3600 + 59 * 60, "47h"),
            (48 * 3600, "2d"),
            (51 * 3600, "2d3h"),
            (8 * 86400 - 1, "7d23h"),
            (45 * 86400, "45d"),
            (729 * 86400, "729d"),
            (730 * 86400, "2y"),
            (740 * 86400, "2y10d"),
            (9 * 365 * 86400, "9y"),
        ];
        for (secs, want) in cases {
            assert_eq!(
                human_duration(time::Duration::seconds(*secs)),
                *want,
                "{secs}s"
            );
        }
        assert_eq!(since(None, OffsetDateTime::UNIX_EPOCH), "<unknown>");
    }

    #[test]
    fn selectors_and_labels_format_like_kubectl() {
        let sel = json!({
            "matchLabels": {"tier": "web", "app": "shop"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "dev"]},
                {"key": "canary", "operator": "DoesNotExist"},
            ],
        });
        assert_eq!(
            selector_string(&sel),
            "app=shop,!canary,env in (dev,prod),tier=web"
        );
        assert_eq!(format_selector(&json!({})), "<none>");
        assert_eq!(format_selector(&Value::Null), "<none>");
        assert_eq!(format_labels(&json!({"b": "2", "a": "1"})), "a=1,b=2");
        assert_eq!(format_labels(&Value::Null), "<none>");
        assert_eq!(list_with_more(&[], 0, 3), "<unset>");
        let three: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        assert_eq!(list_with_more(&three, 5, 3), "a,b,c + 2 more...");
    }
}
