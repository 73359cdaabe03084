//! The query parameters of resource requests, decoded and checked once: selectors, paging,
//! watch options, dry run and field validation. An unknown value of a known parameter is a
//! 400 naming it.

use base64::Engine;
use serde_json::json;

use super::selector::{FieldSelector, LabelSelector};
use crate::kinds::Resource;
use crate::status::ApiError;

/// How unknown fields in a body are treated (`fieldValidation`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldValidation {
    Strict,
    Warn,
    Ignore,
}

/// The query of one request.
#[derive(Debug)]
pub struct Query {
    pub watch: bool,
    pub resource_version: Option<String>,
    pub labels: LabelSelector,
    pub fields: FieldSelector,
    pub limit: usize,
    pub continue_token: Option<Continue>,
    pub timeout_seconds: Option<u64>,
    pub allow_bookmarks: bool,
    pub dry_run: bool,
    pub field_validation: FieldValidation,
    /// `includeObject` for Tables: `None`, `Metadata` (the default) or `Object`.
    pub include_object: String,
    /// `fieldManager`: who makes a write (server-side apply's manager).
    pub field_manager: Option<String>,
    /// `force`: a server-side apply takes the fields other managers have.
    pub force: bool,
}

/// Where the next page of a list starts: the list's revision and the last key returned.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Continue {
    pub revision: i64,
    pub start: String,
}

impl Continue {
    /// kube-apiserver's format: base64 of `{"v":"meta.k8s.io/v1","rv":N,"start":"key"}`.
    pub fn encode(&self) -> String {
        let text = json!({"v": "meta.k8s.io/v1", "rv": self.revision, "start": self.start});
        base64::engine::general_purpose::URL_SAFE.encode(text.to_string())
    }

    pub fn decode(token: &str) -> Result<Continue, ApiError> {
        let bad = || ApiError::bad_request(format!("continue key is not valid: {token:?}"));
        let bytes = base64::engine::general_purpose::URL_SAFE
            .decode(token)
            .map_err(|_| bad())?;
        let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|_| bad())?;
        match (value["rv"].as_i64(), value["start"].as_str()) {
            (Some(revision), Some(start)) if revision > 0 => Ok(Continue {
                revision,
                start: start.to_owned(),
            }),
            _ => Err(bad()),
        }
    }
}

/// Percent-decodes a query component (`+` is a space).
fn decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).unwrap_or("");
                match u8::from_str_radix(hex, 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

impl Query {
    pub fn parse(raw: &str, resource: &Resource) -> Result<Query, ApiError> {
        let mut q = Query {
            watch: false,
            resource_version: None,
            labels: LabelSelector::default(),
            fields: FieldSelector::default(),
            limit: 0,
            continue_token: None,
            timeout_seconds: None,
            allow_bookmarks: false,
            dry_run: false,
            field_validation: FieldValidation::Warn,
            include_object: "Metadata".to_owned(),
            field_manager: None,
            force: false,
        };
        let bad = |name: &str, value: &str| {
            ApiError::bad_request(format!(
                "invalid value {value:?} for query parameter {name}"
            ))
        };
        for pair in raw.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (decode(name), decode(value));
            match name.as_str() {
                "watch" => q.watch = matches!(value.as_str(), "true" | "1" | ""),
                "resourceVersion" if !value.is_empty() => q.resource_version = Some(value),
                "labelSelector" => {
                    q.labels = LabelSelector::parse(&value).map_err(ApiError::bad_request)?
                }
                "fieldSelector" => {
                    q.fields =
                        FieldSelector::parse(&value, resource).map_err(ApiError::bad_request)?
                }
                "limit" => q.limit = value.parse().map_err(|_| bad(&name, &value))?,
                "continue" if !value.is_empty() => {
                    q.continue_token = Some(Continue::decode(&value)?)
                }
                "timeoutSeconds" => {
                    q.timeout_seconds = Some(value.parse().map_err(|_| bad(&name, &value))?)
                }
                "allowWatchBookmarks" => q.allow_bookmarks = value == "true" || value == "1",
                "dryRun" => match value.as_str() {
                    "All" => q.dry_run = true,
                    "" => {}
                    _ => return Err(bad(&name, &value)),
                },
                "fieldValidation" => {
                    q.field_validation = match value.as_str() {
                        "Strict" => FieldValidation::Strict,
                        "Warn" | "" => FieldValidation::Warn,
                        "Ignore" => FieldValidation::Ignore,
                        _ => return Err(bad(&name, &value)),
                    }
                }
                "fieldManager" => q.field_manager = Some(value),
                "force" => {
                    q.force = match value.as_str() {
                        "true" | "1" => true,
                        "false" | "0" | "" => false,
                        _ => return Err(bad(&name, &value)),
                    }
                }
                "includeObject" => match value.as_str() {
                    "None" | "Metadata" | "Object" => q.include_object = value,
                    _ => return Err(bad(&name, &value)),
                },
                _ => {}
            }
        }
        Ok(q)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn continue_tokens_carry_the_revision_and_the_last_key() {
        let c = Continue {
            revision: 42,
            start: "/registry/core/configmaps/a/x".into(),
        };
        assert_eq!(Continue::decode(&c.encode()).unwrap(), c);
        assert!(Continue::decode("not base64!").is_err());
        assert!(Continue::decode("e30=").is_err());
    }

    #[test]
    fn query_parameters_are_decoded() {
        let cms = crate::kinds::find("", "v1", "configmaps").unwrap();
        let q = Query::parse(
            "labelSelector=app%3Dweb%2Ctier+in+(a)&limit=500&watch=1&dryRun=All&fieldValidation=Strict",
            cms,
        )
        .unwrap();
        assert!(q.watch && q.dry_run && q.limit == 500);
        assert_eq!(q.field_validation, FieldValidation::Strict);
        assert!(q
            .labels
            .matches(&json!({"metadata": {"labels": {"app": "web", "tier": "a"}}})));
        assert!(Query::parse("limit=x", cms).is_err());
        assert!(Query::parse("dryRun=Some", cms).is_err());
        assert!(Query::parse("fieldSelector=spec.x%3D1", cms).is_err());
    }
}
