//! CRD conversion webhooks (`spec.conversion.strategy: Webhook`), called as kube-apiserver's
//! webhook converter calls them: objects stored at one version and asked for at another are
//! sent, all those of one answer in one ConversionReview, to the CRD's webhook (its URL, or a
//! ready endpoint of its Service, verified against its `caBundle`, within 30 s), and its
//! `convertedObjects` are checked (their count, apiVersion and kind; only labels and
//! annotations of their metadata may change — the rest is kept as stored) and pruned to the
//! target version's schema. A webhook that cannot be called or fails makes the request fail
//! with kube's `Internal error occurred: conversion webhook for <group/version>, Kind=<kind>
//! failed: …`. Written objects go the other way, to the storage version, before they are
//! validated (against that version's schema) and stored.
//!
//! The CRD's conversion settings are checked when it is written (`check_definition`: kube's
//! field errors) and compiled once per distinct setting (`webhook_of`).

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex, PoisonError};
use std::time::Duration;

use rustls::ClientConfig;
use serde_json::{json, Map, Value};

use super::admission_webhook::call::post;
use super::admission_webhook::config::{client_config, tls_config, Target, REVIEW_VERSIONS};
use super::admission_webhook::target::destination_of;
use crate::crd::definition::strings;
use crate::crd::registry::{self, CustomVersion};
use crate::crd::schema;
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};
use crate::store::Store;

/// kube-apiserver's timeout for a conversion webhook call.
const TIMEOUT: Duration = Duration::from_secs(30);
/// Distinct conversion settings kept compiled (CRDs are few; past this the cache restarts).
const CACHED: usize = 256;

/// A CRD's conversion webhook, ready to call.
pub struct ConversionWebhook {
    target: Target,
    tls: Result<Arc<ClientConfig>, String>,
    /// The ConversionReview version sent (`v1` or `v1beta1`).
    review_version: &'static str,
}

/// kube's checks of a CRD's `spec.conversion` beyond its strategy (which `definition` checks).
pub fn check_definition(spec: &Value, causes: &mut Vec<FieldCause>) {
    let conversion = &spec["conversion"];
    let webhook = &conversion["webhook"];
    if conversion["strategy"] != "Webhook" {
        for (field, value) in [
            ("clientConfig", &webhook["clientConfig"]),
            (
                "conversionReviewVersions",
                &webhook["conversionReviewVersions"],
            ),
        ] {
            if !value.is_null() {
                causes.push(FieldCause::forbidden(
                    &format!("spec.conversion.webhook.{field}"),
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        return;
    }
    if spec["preserveUnknownFields"] == true {
        causes.push(FieldCause::invalid(
            "spec.conversion.strategy",
            "\"Webhook\"",
            "must be None if spec.preserveUnknownFields is true",
        ));
    }
    compile(conversion, causes);
}

/// The webhook of a `spec.conversion` with strategy Webhook, and kube's errors in it.
fn compile(conversion: &Value, causes: &mut Vec<FieldCause>) -> Option<ConversionWebhook> {
    let at = "spec.conversion.webhook";
    let config = &conversion["webhook"]["clientConfig"];
    let target = if config.is_null() {
        causes.push(
            FieldCause::required(&format!("{at}.clientConfig"))
                .with_message("Required value: required when strategy is set to Webhook"),
        );
        None
    } else {
        client_config(config, &format!("{at}.clientConfig"), causes)
    };
    let versions = strings(&conversion["webhook"]["conversionReviewVersions"]);
    let review_version = versions
        .iter()
        .find_map(|v| REVIEW_VERSIONS.iter().find(|known| **known == v.as_str()))
        .copied();
    let field = format!("{at}.conversionReviewVersions");
    if versions.is_empty() {
        causes.push(FieldCause::required(&field));
    } else if review_version.is_none() {
        let listed: Vec<String> = versions.iter().map(|v| format!("{v:?}")).collect();
        causes.push(FieldCause::invalid(
            &field,
            &format!("[]string{{{}}}", listed.join(", ")),
            "must include at least one of v1, v1beta1",
        ));
    }
    Some(ConversionWebhook {
        target: target?,
        tls: tls_config(&config["caBundle"]),
        review_version: review_version?,
    })
}

static COMPILED: LazyLock<Mutex<HashMap<String, Option<Arc<ConversionWebhook>>>>> =
    LazyLock::new(Mutex::default);

/// The compiled webhook of a stored CRD's `spec.conversion` (none unless its strategy is
/// Webhook and it compiles, which `check_definition` saw to when it was written).
fn webhook_of(conversion: &Value) -> Option<Arc<ConversionWebhook>> {
    if conversion["strategy"] != "Webhook" {
        return None;
    }
    let text = conversion.to_string();
    let mut compiled = COMPILED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(webhook) = compiled.get(&text) {
        return webhook.clone();
    }
    if compiled.len() >= CACHED {
        compiled.clear();
    }
    let webhook = compile(conversion, &mut Vec::new()).map(Arc::new);
    compiled.insert(text, webhook.clone());
    webhook
}

/// A custom resource version whose objects are converted by a webhook, with that webhook.
pub struct Converting {
    version: Arc<CustomVersion>,
    webhook: Arc<ConversionWebhook>,
}

/// The conversion webhook behind `resource`, if its CRD has one.
pub fn converting(resource: &Resource) -> Option<Converting> {
    let version = registry::version_of(resource)?;
    let webhook = webhook_of(&version.conversion)?;
    Some(Converting { version, webhook })
}

impl Converting {
    /// `group/version` of the storage version.
    pub fn storage_api_version(&self) -> String {
        format!(
            "{}/{}",
            self.version.resource.group, self.version.storage_version
        )
    }

    /// `objects` at `desired` (`group/version`), in their order: those at another version
    /// sent to the webhook in one review, the rest as they are.
    pub async fn convert(
        &self,
        store: &dyn Store,
        objects: Vec<Value>,
        desired: &str,
    ) -> Result<Vec<Value>, ApiError> {
        let pending: Vec<usize> = (0..objects.len())
            .filter(|i| objects[*i]["apiVersion"].as_str() != Some(desired))
            .collect();
        let Some(first) = pending.first() else {
            return Ok(objects);
        };
        let from = format!(
            "{}, Kind={}",
            objects[*first]["apiVersion"].as_str().unwrap_or(""),
            self.version.resource.kind
        );
        let sent: Vec<&Value> = pending.iter().map(|i| &objects[*i]).collect();
        let converted = self.exchange(store, &sent, desired).await.map_err(|why| {
            ApiError::internal(format!("conversion webhook for {from} failed: {why}"))
        })?;
        let schema = target_schema(self.version.resource, desired);
        let mut objects = objects;
        for (index, mut object) in pending.into_iter().zip(converted) {
            if let Some(schema) = &schema {
                schema::prune(&mut object, schema);
            }
            objects[index] = object;
        }
        Ok(objects)
    }

    /// One ConversionReview: the converted objects, checked against the ones sent, or why
    /// not (kube's words after "conversion webhook for … failed: ").
    async fn exchange(
        &self,
        store: &dyn Store,
        sent: &[&Value],
        desired: &str,
    ) -> Result<Vec<Value>, String> {
        let webhook = &self.webhook;
        let tls = webhook.tls.clone()?;
        let destination = destination_of(store, &webhook.target, TIMEOUT).await?;
        let uid = uuid::Uuid::new_v4().to_string();
        let review_api_version = format!("apiextensions.k8s.io/{}", webhook.review_version);
        let review = json!({
            "apiVersion": review_api_version,
            "kind": "ConversionReview",
            "request": {"uid": uid, "desiredAPIVersion": desired, "objects": sent},
        });
        let (_, answer) = post(tls, &destination, &review, TIMEOUT)
            .await
            .map_err(|e| e.text)?;
        if answer["apiVersion"] != review_api_version.as_str()
            || answer["kind"] != "ConversionReview"
        {
            return Err(format!(
                "expected webhook response of {review_api_version}, Kind=ConversionReview, got {}, Kind={}",
                answer["apiVersion"].as_str().unwrap_or(""),
                answer["kind"].as_str().unwrap_or("")
            ));
        }
        let response = &answer["response"];
        if !response.is_object() {
            return Err("no response provided".to_owned());
        }
        let answered = response["uid"].as_str().unwrap_or("");
        if answered != uid {
            return Err(format!("expected response uid {uid:?}, got {answered:?}"));
        }
        let result = &response["result"];
        if result["status"] != "Success" {
            return Err(match result["message"].as_str().filter(|m| !m.is_empty()) {
                Some(message) => message.to_owned(),
                None => format!(
                    "response.result.status was '{}', not 'Success'",
                    result["status"].as_str().unwrap_or("")
                ),
            });
        }
        let converted = response["convertedObjects"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if converted.len() != sent.len() {
            return Err(format!(
                "expected {} converted objects, got {}",
                sent.len(),
                converted.len()
            ));
        }
        let kind = self.version.resource.kind;
        sent.iter()
            .zip(converted)
            .enumerate()
            .map(|(i, (original, object))| checked(i, original, object, desired, kind))
            .collect()
    }
}

/// A converted object as kube takes it: the desired apiVersion, the same kind, and the
/// original's metadata with only the labels and annotations the webhook set.
fn checked(
    index: usize,
    original: &Value,
    mut object: Value,
    desired: &str,
    kind: &str,
) -> Result<Value, String> {
    if !object.is_object() {
        return Err(format!("converted object[{index}] is not an object"));
    }
    if object["apiVersion"] != desired {
        return Err(format!(
            "invalid converted object[{index}]: apiVersion {:?}, expected {desired:?}",
            object["apiVersion"].as_str().unwrap_or("")
        ));
    }
    if object["kind"] != kind {
        return Err(format!(
            "invalid converted object[{index}]: kind {:?}, expected {kind:?}",
            object["kind"].as_str().unwrap_or("")
        ));
    }
    let mut metadata = original["metadata"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    for key in ["labels", "annotations"] {
        match &object["metadata"][key] {
            Value::Null => {
                metadata.remove(key);
            }
            Value::Object(map) if map.values().all(Value::is_string) => {
                metadata.insert(key.to_owned(), Value::Object(map.clone()));
            }
            _ => {
                return Err(format!(
                    "invalid metadata of converted object[{index}]: metadata.{key} must be a map of strings"
                ))
            }
        }
    }
    object["metadata"] = Value::Object(metadata.into_iter().collect::<Map<_, _>>());
    Ok(object)
}

/// The schema of `resource`'s sibling version named by `api_version` (`group/version`).
fn target_schema(resource: &Resource, api_version: &str) -> Option<Value> {
    let version = api_version.rsplit('/').next()?;
    let sibling = registry::find(resource.group, version, resource.plural)?;
    registry::version_of(sibling).map(|v| v.schema.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn causes(spec: Value) -> Vec<String> {
        let mut causes = Vec::new();
        check_definition(&spec, &mut causes);
        causes
            .into_iter()
            .map(|c| format!("{}: {}", c.field, c.message))
            .collect()
    }

    #[test]
    fn a_webhook_conversion_needs_a_client_config_and_a_known_review_version() {
        assert_eq!(
            causes(json!({"conversion": {"strategy": "Webhook"}})),
            [
                "spec.conversion.webhook.clientConfig: Required value: required when strategy is set to Webhook",
                "spec.conversion.webhook.conversionReviewVersions: Required value",
            ]
        );
        let spec = json!({"conversion": {"strategy": "Webhook", "webhook": {
            "clientConfig": {"url": "http://convert.example.com/"},
            "conversionReviewVersions": ["v2"]}}});
        assert_eq!(
            causes(spec),
            [
                "spec.conversion.webhook.clientConfig.url: Invalid value: \"http://convert.example.com/\": 'https' is the only allowed URL scheme",
                "spec.conversion.webhook.conversionReviewVersions: Invalid value: []string{\"v2\"}: must include at least one of v1, v1beta1",
            ]
        );
        let spec = json!({"conversion": {"strategy": "None", "webhook": {
            "conversionReviewVersions": ["v1"]}}});
        assert_eq!(
            causes(spec),
            ["spec.conversion.webhook.conversionReviewVersions: Forbidden: should not be set when strategy is not set to Webhook"]
        );
        let spec = json!({"preserveUnknownFields": true, "conversion": {"strategy": "Webhook",
            "webhook": {"clientConfig": {"service": {"namespace": "ns", "name": "conv"}},
            "conversionReviewVersions": ["v1beta1", "v1"]}}});
        assert_eq!(
            causes(spec.clone()),
            ["spec.conversion.strategy: Invalid value: \"Webhook\": must be None if spec.preserveUnknownFields is true"]
        );
        let mut good = spec;
        good["preserveUnknownFields"] = json!(false);
        assert!(causes(good.clone()).is_empty());
        let compiled = webhook_of(&good["conversion"]).expect("compiled");
        assert_eq!(compiled.review_version, "v1beta1");
        assert!(matches!(
            &compiled.target,
            Target::Service { port: 443, .. }
        ));
    }

    #[test]
    fn converted_objects_keep_their_metadata_but_labels_and_annotations() {
        let original = json!({"apiVersion": "x.io/v1", "kind": "W", "metadata": {
            "name": "a", "uid": "u1", "resourceVersion": "7", "labels": {"old": "1"}}});
        let answer = json!({"apiVersion": "x.io/v2", "kind": "W", "metadata": {
            "name": "renamed", "uid": "u2", "labels": {"new": "2"},
            "annotations": {"converted": "yes"}}, "spec": {"size": 2}});
        let object = checked(0, &original, answer.clone(), "x.io/v2", "W").expect("valid");
        assert_eq!(
            object["metadata"],
            json!({"name": "a", "uid": "u1", "resourceVersion": "7", "labels": {"new": "2"},
                "annotations": {"converted": "yes"}})
        );
        assert_eq!(object["spec"]["size"], 2);
        let wrong = checked(1, &original, answer.clone(), "x.io/v3", "W").unwrap_err();
        assert_eq!(
            wrong,
            "invalid converted object[1]: apiVersion \"x.io/v2\", expected \"x.io/v3\""
        );
        let mut bad_labels = answer;
        bad_labels["metadata"]["labels"] = json!({"n": 1});
        assert!(checked(0, &original, bad_labels, "x.io/v2", "W")
            .unwrap_err()
            .contains("metadata.labels must be a map of strings"));
    }
}
