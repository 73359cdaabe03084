//! Admission webhooks (admissionregistration.k8s.io/v1 Validating- and
//! MutatingWebhookConfiguration), called as kube-apiserver calls them:
//!
//! - `config`: the configurations checked when written and compiled;
//! - `call`: one AdmissionReview over HTTPS;
//! - here: the configurations followed from the store (`WebhookCache`), and the two phases.
//!   `mutate` runs on creates and updates after bosun's own mutating admission (defaults,
//!   LimitRanges, ServiceAccounts…): the matching mutating webhooks in the order of their
//!   configurations' names, each JSON patch applied, and a webhook with
//!   `reinvocationPolicy: IfNeeded` called once more when a later one changed the object.
//!   `validate` runs after the built-in validation and the ValidatingAdmissionPolicies: the
//!   matching validating webhooks, called concurrently (and on DELETE and CONNECT — exec,
//!   attach, port-forward, whose object is the request's options — the mutating ones too,
//!   which cannot patch there).
//!
//! Matching is the admission policies' (rules, scope, namespace and object selectors), then
//! the webhook's `matchConditions` in CEL. A webhook that denies answers kube's `admission
//! webhook "<name>" denied the request: <message>` with its status code; one that cannot be
//! called, times out or answers nonsense fails the request (`Internal error occurred: failed
//! calling webhook …`) unless its `failurePolicy` is `Ignore`. Its `warnings` become
//! kubectl warnings. A `service` client config is called at a ready endpoint of the Service
//! (its EndpointSlices) and verified as `<service>.<namespace>.svc`, like kube-apiserver with
//! `--enable-aggregator-routing`. Webhook configurations and admission policies are never
//! sent to webhooks, so a broken webhook cannot lock itself in.

mod answer;
pub(crate) mod call;
pub mod config;
mod equivalent;
pub(crate) mod target;

use std::sync::Arc;

use cel::Value as CelValue;
use serde_json::{json, Value};

use self::answer::{denial, read_response, Response};
use self::config::Webhook;
use self::equivalent::{attributes_at, objects_at, select_and_patch, selects, At};
use self::target::destination;
use super::admission_policy::{self as policy, Admission, Operation};
use super::query::FieldValidation;
use super::store_mirror::Derived;
use super::Call;
use crate::crd::cel::{context, from_json, on_cel_thread};
use crate::kinds::{self, Resource};
use crate::server_metrics::WebhookCall;
use crate::status::{ApiError, FieldCause};
use crate::store::Store;

const PLURALS: [&str; 2] = [
    "mutatingwebhookconfigurations",
    "validatingwebhookconfigurations",
];

/// The webhooks of every configuration, mutating and validating, each in calling order.
#[derive(Default)]
pub struct Webhooks {
    mutating: Vec<Arc<Webhook>>,
    validating: Vec<Arc<Webhook>>,
}

fn resources() -> Result<[&'static Resource; 2], ApiError> {
    let find = |plural| {
        kinds::find(policy::GROUP, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("the kinds table has no {plural}")))
    };
    Ok([find(PLURALS[0])?, find(PLURALS[1])?])
}

/// kube's validation of a webhook configuration being written (the field causes of a 422).
pub fn validate_configuration(object: &Value, resource: &Resource, causes: &mut Vec<FieldCause>) {
    let mutating = resource.kind == "MutatingWebhookConfiguration";
    let found = on_cel_thread(|| config::configuration(object, mutating).1);
    causes.extend(found.unwrap_or_else(|| {
        let why = "its match conditions could not be compiled (internal error)";
        vec![FieldCause::invalid("webhooks", "\"object\"", why)]
    }));
}

/// The webhook configurations as the store's watch shows them, compiled.
#[derive(Default)]
pub struct WebhookCache {
    copies: Derived<Webhooks, 2>,
}

impl WebhookCache {
    /// The webhooks: the copies', or the store's while they are not listed.
    async fn webhooks(&self, store: &Arc<dyn Store>) -> Result<Arc<Webhooks>, ApiError> {
        let prefixes = resources()?.map(|r| r.key_prefix());
        self.copies
            .get_or_read(store, prefixes, |[mutating, validating]| {
                compile(mutating, validating)
            })
            .await
    }
}

/// The configurations' webhooks in kube's order: configurations by name, then as listed.
fn compile(mutating: &[Value], validating: &[Value]) -> Webhooks {
    if mutating.is_empty() && validating.is_empty() {
        return Webhooks::default();
    }
    let all = |objects: &[Value], mutating: bool| {
        let mut sorted: Vec<&Value> = objects.iter().collect();
        sorted.sort_by(|a, b| {
            a["metadata"]["name"]
                .as_str()
                .cmp(&b["metadata"]["name"].as_str())
        });
        sorted
            .into_iter()
            .flat_map(|object| config::configuration(object, mutating).0)
            .map(Arc::new)
            .collect()
    };
    on_cel_thread(|| Webhooks {
        mutating: all(mutating, true),
        validating: all(validating, false),
    })
    .unwrap_or_default()
}

/// Whether `webhook`'s rules and selectors select the request for `object`/`old`.
/// What became of one call.
enum Outcome {
    /// Allowed, with the JSON patch of a mutating webhook, if any.
    Allowed(Option<json_patch::Patch>),
    Denied(ApiError),
    /// Not called (a match condition is false), or failed under `failurePolicy: Ignore`.
    Skipped,
}

/// Runs the matching mutating webhooks on `object` (to be created, or to replace `old`);
/// true when one of them changed it.
pub(crate) async fn mutate(
    call: &Call,
    operation: Operation,
    object: &mut Value,
    old: Option<&Value>,
) -> Result<bool, ApiError> {
    if call.resource().group == policy::GROUP {
        return Ok(false);
    }
    let webhooks = call
        .state
        .admission_webhooks
        .webhooks(&call.state.store)
        .await?;
    if webhooks.mutating.is_empty() {
        return Ok(false);
    }
    let admission = Admission::new(call, operation, Some(object)).await?;
    // Webhooks see (and patch) the object in the request's version; a Scale as it is.
    let scale = is_scale(call);
    let mut shown = match scale {
        true => object.clone(),
        false => call.shown(object.clone()).await?,
    };
    let old_shown = match old {
        Some(o) if scale => Some(o.clone()),
        Some(o) => Some(call.shown(o.clone()).await?),
        None => None,
    };
    let old_shown = old_shown.as_ref();
    let mut called = Vec::new();
    let mut last_change = None;
    for (index, webhook) in webhooks.mutating.iter().enumerate() {
        let Some(changed) =
            select_and_patch(&admission, webhook, &mut shown, old_shown, old).await?
        else {
            continue;
        };
        annotate_mutation(call, 0, index, webhook, changed);
        if changed {
            last_change = Some(index);
        }
        called.push(index);
    }
    // kube's reinvocation: once more, for the webhooks that asked for it and ran before the
    // last change.
    let Some(last) = last_change else {
        return Ok(false);
    };
    for index in called.into_iter().filter(|i| *i < last) {
        let webhook = &webhooks.mutating[index];
        if webhook.reinvoke {
            let changed = select_and_patch(&admission, webhook, &mut shown, old_shown, old).await?;
            if let Some(changed) = changed {
                annotate_mutation(call, 1, index, webhook, changed);
            }
        }
    }
    if scale {
        *object = shown;
        return Ok(true);
    }
    // The patched object decoded again as its type, defaulted, back in the storage version.
    let resource = call.resource();
    super::validate::check_typed(&mut shown, &[], resource, FieldValidation::Ignore)?;
    *object = call.to_storage(shown, old).await?;
    Ok(true)
}

/// Whether the call is to a scale subresource, whose objects are Scales (`api::scale`).
fn is_scale(call: &Call) -> bool {
    call.path.subresource.as_deref() == Some("scale")
}

/// kube's audit annotation of one mutating webhook call (round 0, or 1 when reinvoked).
fn annotate_mutation(call: &Call, round: usize, index: usize, webhook: &Webhook, mutated: bool) {
    let value = json!({"configuration": webhook.configuration, "webhook": webhook.name,
        "mutated": mutated});
    call.audit_annotate(
        &format!("mutation.webhook.admission.k8s.io/round_{round}_index_{index}"),
        &value.to_string(),
    );
}

/// Calls one mutating webhook and applies its patch: whether it changed the object, `None`
/// when it was not called (a match condition is false, or it failed and is ignored).
async fn invoke_and_patch(
    admission: &Admission<'_>,
    webhook: &Webhook,
    object: &mut Value,
    old: Option<&Value>,
    at: At,
) -> Result<Option<bool>, ApiError> {
    match invoke(admission, webhook, Some(object), old, at).await? {
        Outcome::Allowed(Some(patch)) => {
            let mut patched = object.clone();
            json_patch::patch(&mut patched, &patch).map_err(|e| {
                ApiError::internal(format!(
                    "Internal error occurred: the patch of admission webhook {:?} does not apply: {e}",
                    webhook.name
                ))
            })?;
            if !patched.is_object() {
                return Err(ApiError::internal(format!(
                    "Internal error occurred: admission webhook {:?} patched the object into a {}",
                    webhook.name,
                    if patched.is_array() {
                        "list"
                    } else {
                        "non-object"
                    }
                )));
            }
            let changed = patched != *object;
            *object = patched;
            Ok(Some(changed))
        }
        Outcome::Denied(error) => Err(error),
        Outcome::Allowed(None) => Ok(Some(false)),
        Outcome::Skipped => Ok(None),
    }
}

/// Runs the matching validating webhooks (on DELETE and CONNECT also the mutating ones)
/// concurrently;
/// the first denial in calling order refuses the request.
pub(crate) async fn validate(
    call: &Call,
    operation: Operation,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    if call.resource().group == policy::GROUP {
        return Ok(());
    }
    let webhooks = call
        .state
        .admission_webhooks
        .webhooks(&call.state.store)
        .await?;
    let unpatchable = matches!(operation, Operation::Delete | Operation::Connect);
    let candidates: Vec<&Arc<Webhook>> = match unpatchable {
        true => webhooks
            .mutating
            .iter()
            .chain(&webhooks.validating)
            .collect(),
        false => webhooks.validating.iter().collect(),
    };
    if candidates.is_empty() {
        return Ok(());
    }
    let admission = Admission::new(call, operation, object.or(old)).await?;
    let scale = is_scale(call);
    let object = match object {
        Some(o) if scale => Some(o.clone()),
        Some(o) => Some(call.shown(o.clone()).await?),
        None => None,
    };
    let old = match old {
        Some(o) if scale => Some(o.clone()),
        Some(o) => Some(call.shown(o.clone()).await?),
        None => None,
    };
    let (object, old) = (object.as_ref(), old.as_ref());
    let mut calls = Vec::new();
    for webhook in candidates {
        if let Some(at) = selects(&admission, webhook, object, old) {
            let (seen, old_seen) = objects_at(&admission, at, object, old).await?;
            calls.push((webhook, at, seen, old_seen));
        }
    }
    let outcomes = futures::future::join_all(calls.iter().map(|(webhook, at, seen, old_seen)| {
        invoke(&admission, webhook, seen.as_ref(), old_seen.as_ref(), *at)
    }))
    .await;
    for outcome in outcomes {
        if let Outcome::Denied(error) = outcome? {
            return Err(error);
        }
    }
    Ok(())
}

/// Calls one webhook if its match conditions hold; failures follow its `failurePolicy`.
/// Each call is counted and timed in kube's webhook metrics.
async fn invoke(
    admission: &Admission<'_>,
    webhook: &Webhook,
    object: Option<&Value>,
    old: Option<&Value>,
    at: At,
) -> Result<Outcome, ApiError> {
    let attributes = attributes_at(admission, at);
    let failed = |why: String| match webhook.ignore_failures {
        true => {
            tracing::warn!(webhook = %webhook.name, %why, "admission webhook failed; ignored (failurePolicy Ignore)");
            Ok(Outcome::Skipped)
        }
        false => Err(ApiError::internal(format!(
            "Internal error occurred: failed calling webhook {:?}: {why}",
            webhook.name
        ))),
    };
    match conditions_hold(webhook, &attributes, object, old) {
        Ok(true) => {}
        Ok(false) => return Ok(Outcome::Skipped),
        Err(why) => return failed(format!("failed to evaluate match condition {why}")),
    }
    let started = std::time::Instant::now();
    let (code, result) = call_webhook(admission, webhook, &attributes, object, old).await;
    let labels = WebhookCall {
        name: webhook.name.clone(),
        operation: admission.operation.name(),
        r#type: if webhook.mutating {
            "admit"
        } else {
            "validating"
        },
        rejected: !matches!(result, Ok(Outcome::Allowed(_))),
    };
    let metrics = &admission.call.state.server_metrics;
    metrics.observe_webhook(labels, code, started.elapsed());
    result.or_else(failed)
}

/// One call: the webhook's HTTP code (0: none came) and what it decided, or why the call
/// failed (kube's words after "failed calling webhook …: ").
async fn call_webhook(
    admission: &Admission<'_>,
    webhook: &Webhook,
    attributes: &Value,
    object: Option<&Value>,
    old: Option<&Value>,
) -> (u16, Result<Outcome, String>) {
    let calling = |why: String| (0, Err(format!("failed to call webhook: {why}")));
    let tls = match &webhook.tls {
        Ok(tls) => Arc::clone(tls),
        Err(why) => return calling(why.clone()),
    };
    let uid = uuid::Uuid::new_v4().to_string();
    let destination = match destination(admission.call, webhook).await {
        Ok(destination) => destination,
        Err(why) => return calling(why),
    };
    let review = review(admission, webhook, attributes, &uid, object, old);
    let (code, answer) = match call::post(tls, &destination, &review, webhook.timeout).await {
        Ok(answered) => answered,
        Err(error) => {
            return (
                error.code,
                Err(format!("failed to call webhook: {}", error.text)),
            )
        }
    };
    let response = match read_response(&answer, webhook, &uid) {
        Ok(response) => response,
        Err(why) => {
            return (
                code,
                Err(format!("received invalid webhook response: {why}")),
            )
        }
    };
    let Response {
        allowed,
        status,
        patch,
        warnings,
        audit_annotations,
    } = response;
    for warning in warnings {
        admission.call.warn(warning);
    }
    for (key, value) in audit_annotations {
        let key = format!("{}/{key}", webhook.name);
        admission.call.audit_annotate(&key, &value);
    }
    let outcome = match (allowed, webhook.mutating) {
        (false, _) => Outcome::Denied(denial(webhook, &status)),
        (true, false) => Outcome::Allowed(None),
        (true, true) => Outcome::Allowed(patch),
    };
    (code, Ok(outcome))
}

/// Evaluates the match conditions: all true → call; one false → skip; an error → `Err`.
fn conditions_hold(
    webhook: &Webhook,
    attributes: &Value,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<bool, String> {
    if webhook.conditions.is_empty() {
        return Ok(true);
    }
    on_cel_thread(|| {
        let mut root = context();
        root.add_variable_from_value("object", object.map_or(CelValue::Null, from_json));
        root.add_variable_from_value("oldObject", old.map_or(CelValue::Null, from_json));
        root.add_variable_from_value("request", from_json(attributes));
        for (name, program) in &webhook.conditions {
            match policy::run(program, &root) {
                Ok(CelValue::Bool(true)) => {}
                Ok(CelValue::Bool(false)) => return Ok(false),
                other => return Err(policy::failure_text(name, other)),
            }
        }
        Ok(true)
    })
    .unwrap_or_else(|| Err("internal error".to_owned()))
}

/// The AdmissionReview sent.
fn review(
    admission: &Admission<'_>,
    webhook: &Webhook,
    attributes: &Value,
    uid: &str,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Value {
    let mut request = attributes.clone();
    request["uid"] = json!(uid);
    request["object"] = object.cloned().unwrap_or(Value::Null);
    request["oldObject"] = old.cloned().unwrap_or(Value::Null);
    let options = match admission.operation {
        Operation::Create => Some("CreateOptions"),
        Operation::Update => Some("UpdateOptions"),
        Operation::Delete => Some("DeleteOptions"),
        Operation::Connect => None, // the options are the object
    };
    request["options"] = match options {
        Some(kind) => {
            let mut shown = json!({"apiVersion": "meta.k8s.io/v1", "kind": kind});
            if admission.call.query.dry_run {
                shown["dryRun"] = json!(["All"]);
            }
            shown
        }
        None => Value::Null,
    };
    json!({
        "apiVersion": format!("admission.k8s.io/{}", webhook.review_version),
        "kind": "AdmissionReview",
        "request": request,
    })
}

#[cfg(test)]
mod tests;
