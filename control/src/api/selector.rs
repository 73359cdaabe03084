//! Label selectors (`=`, `==`, `!=`, `in`, `notin`, `key`, `!key`) and field selectors
//! (`=`, `==`, `!=` on the fields Kubernetes indexes per kind), parsed from query strings and
//! matched against object JSON. A field Kubernetes does not support is refused by name.

use serde_json::Value;

use crate::kinds::Resource;

/// One label requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
enum LabelReq {
    Eq(String, String),
    NotEq(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    NotExists(String),
}

/// A parsed label selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LabelSelector(Vec<LabelReq>);

/// A parsed field selector; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSelector(Vec<(String, bool, String)>);

/// Splits on commas outside parentheses.
fn split_top(text: &str) -> Vec<&str> {
    let (mut out, mut depth, mut start) = (Vec::new(), 0i32, 0);
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out.into_iter()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

fn check_key(key: &str, whole: &str) -> Result<String, String> {
    let ok = !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_./".contains(c));
    if ok {
        Ok(key.to_owned())
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {key:?} in {whole:?}"
        ))
    }
}

impl LabelSelector {
    pub fn parse(text: &str) -> Result<LabelSelector, String> {
        let mut reqs = Vec::new();
        for part in split_top(text) {
            reqs.push(parse_label_req(part)?);
        }
        Ok(LabelSelector(reqs))
    }

    /// The selector a `metav1.LabelSelector` object (matchLabels, matchExpressions) means.
    pub fn from_object(selector: &Value) -> Result<LabelSelector, String> {
        LabelSelector::parse(&crate::table::selector_string(selector))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `object`'s labels satisfy every requirement.
    pub fn matches(&self, object: &Value) -> bool {
        let labels = &object["metadata"]["labels"];
        let get = |k: &str| labels.get(k).and_then(Value::as_str);
        self.0.iter().all(|req| match req {
            LabelReq::Eq(k, v) => get(k) == Some(v.as_str()),
            LabelReq::NotEq(k, v) => get(k) != Some(v.as_str()),
            LabelReq::In(k, vs) => get(k).is_some_and(|l| vs.iter().any(|v| v == l)),
            LabelReq::NotIn(k, vs) => get(k).is_none_or(|l| vs.iter().all(|v| v != l)),
            LabelReq::Exists(k) => get(k).is_some(),
            LabelReq::NotExists(k) => get(k).is_none(),
        })
    }
}

fn parse_label_req(part: &str) -> Result<LabelReq, String> {
    if let Some(key) = part.strip_prefix('!') {
        return Ok(LabelReq::NotExists(check_key(key.trim(), part)?));
    }
    for (op, negate) in [("!=", true), ("==", false), ("=", false)] {
        if let Some((k, v)) = part.split_once(op) {
            let (k, v) = (check_key(k.trim(), part)?, v.trim().to_owned());
            return Ok(if negate {
                LabelReq::NotEq(k, v)
            } else {
                LabelReq::Eq(k, v)
            });
        }
    }
    let words: Vec<&str> = part.splitn(2, char::is_whitespace).collect();
    if let [key, rest] = words[..] {
        let rest = rest.trim();
        let (negate, list) = if let Some(l) = rest.strip_prefix("notin") {
            (true, l)
        } else if let Some(l) = rest.strip_prefix("in") {
            (false, l)
        } else {
            return Err(format!("unable to parse requirement: {part:?}"));
        };
        let list = list
            .trim()
            .strip_prefix('(')
            .and_then(|l| l.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: expected a (list) in {part:?}"))?;
        let values: Vec<String> = list
            .split(',')
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect();
        let key = check_key(key, part)?;
        return Ok(if negate {
            LabelReq::NotIn(key, values)
        } else {
            LabelReq::In(key, values)
        });
    }
    Ok(LabelReq::Exists(check_key(part, part)?))
}

/// The fields Kubernetes lets a kind be selected by, beyond `metadata.name` and
/// `metadata.namespace`.
fn kind_fields(resource: &Resource) -> &'static [&'static str] {
    match (resource.group, resource.kind) {
        ("", "Event") => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        ("", "Pod") => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        ("", "Secret") => &["type"],
        ("", "Node") => &["spec.unschedulable"],
        ("", "Namespace") => &["status.phase"],
        ("", "PersistentVolumeClaim") => &["spec.volumeName"],
        ("batch", "Job") => &["status.successful"],
        ("apps", "ReplicaSet") | ("", "ReplicationController") => &["status.replicas"],
        _ => &[],
    }
}

impl FieldSelector {
    pub fn parse(text: &str, resource: &Resource) -> Result<FieldSelector, String> {
        let mut reqs = Vec::new();
        for part in split_top(text) {
            let (field, negate, value) = if let Some((f, v)) = part.split_once("!=") {
                (f, true, v)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, false, v)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, false, v)
            } else {
                return Err(format!("invalid selector: {part:?}; can't understand it"));
            };
            let field = field.trim();
            let known = ["metadata.name", "metadata.namespace"].contains(&field)
                || kind_fields(resource).contains(&field)
                || (resource.custom
                    && crate::crd::registry::version_of(resource)
                        .is_some_and(|v| v.selectable_fields.iter().any(|f| f == field)));
            if !known {
                return Err(format!(
                    "field label not supported: {field} for {}",
                    resource.kind
                ));
            }
            reqs.push((field.to_owned(), negate, value.trim().to_owned()));
        }
        Ok(FieldSelector(reqs))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The `metadata.name` this selector pins, if it does (a list can then get one key).
    pub fn name(&self) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, negate, _)| f == "metadata.name" && !negate)
            .map(|(_, _, v)| v.as_str())
    }

    pub fn matches(&self, object: &Value) -> bool {
        self.0.iter().all(|(field, negate, want)| {
            let mut at = object;
            for part in field.split('.') {
                at = &at[part];
            }
            // `source` on events is the component name.
            if field == "source" {
                at = &object["source"]["component"];
            }
            let have = match at {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (have == *want) != *negate
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(labels: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "a", "labels": labels}})
    }

    #[test]
    fn label_selectors_match_every_operator() {
        let o = obj(json!({"app": "web", "tier": "front"}));
        let m = |s: &str| LabelSelector::parse(s).unwrap().matches(&o);
        assert!(m(""));
        assert!(m("app=web") && m("app==web") && !m("app=db"));
        assert!(m("app!=db") && !m("app!=web") && m("missing!=x"));
        assert!(m("app in (web, db)") && !m("app in (db)"));
        assert!(m("app notin (db)") && !m("app notin (db,web)") && m("x notin (y)"));
        assert!(m("tier") && !m("missing") && m("!missing") && !m("!tier"));
        assert!(m("app=web,tier in (front,back),!x") && !m("app=web,tier=back"));
        assert!(LabelSelector::parse("app in web").is_err());
        assert!(LabelSelector::parse("a b=c").is_err());
    }

    #[test]
    fn field_selectors_match_supported_fields_and_refuse_others() {
        let pods = crate::kinds::find("", "v1", "pods").unwrap();
        let o = json!({"metadata": {"name": "web", "namespace": "a"}, "spec": {"nodeName": "n1"}});
        let m = |s: &str| FieldSelector::parse(s, pods).unwrap().matches(&o);
        assert!(m("metadata.name=web") && !m("metadata.name=x"));
        assert!(m("metadata.namespace!=b,spec.nodeName==n1"));
        assert!(m("status.phase="));
        let err = FieldSelector::parse("spec.replicas=1", pods).unwrap_err();
        assert!(
            err.contains("field label not supported: spec.replicas"),
            "{err}"
        );
        let events = crate::kinds::find("", "v1", "events").unwrap();
        let e =
            json!({"involvedObject": {"name": "web", "uid": "u"}, "source": {"component": "k"}});
        let s = FieldSelector::parse(
            "involvedObject.name=web,involvedObject.uid=u,source=k",
            events,
        )
        .unwrap();
        assert!(s.matches(&e));
        assert_eq!(
            FieldSelector::parse("metadata.name=web", pods)
                .unwrap()
                .name(),
            Some("web")
        );
    }
}
