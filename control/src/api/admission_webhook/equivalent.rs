//! Which webhooks a request selects, and at which resource: its own, or — under kube's
//! default `matchPolicy: Equivalent` — an equivalent one the webhook's rules name (another
//! version of the kind: `autoscaling/v2` for an `autoscaling/v1` HorizontalPodAutoscaler, a
//! CRD's other versions; the other group's Events). A webhook selected at an equivalent
//! resource sees the objects converted to it, with `kind` and `resource` naming it while
//! `requestKind` and `requestResource` keep the request's; a mutating webhook's patch applies
//! to that form and the result is converted back.

use serde_json::Value;

use super::config::Webhook;
use super::invoke_and_patch;
use crate::api::admission_policy::equivalent::select;
pub(super) use crate::api::admission_policy::equivalent::{attributes_at, At};
use crate::api::admission_policy::Admission;
use crate::status::ApiError;

/// Whether `webhook` is called for the request, and at which resource; `None`: it is not.
pub(super) fn selects(
    admission: &Admission,
    webhook: &Webhook,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Option<At> {
    select(
        admission,
        &webhook.matching,
        webhook.equivalent,
        object,
        old,
    )
}

/// `object` and `old` (at the request's version) as a webhook called `at` sees them.
pub(super) async fn objects_at(
    admission: &Admission<'_>,
    at: At,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<(Option<Value>, Option<Value>), ApiError> {
    let Some(other) = at else {
        return Ok((object.cloned(), old.cloned()));
    };
    let call = admission.call;
    let object = match object {
        Some(o) => Some(call.shown_as(o.clone(), other).await?),
        None => None,
    };
    let old = match old {
        Some(o) => Some(call.shown_as(o.clone(), other).await?),
        None => None,
    };
    Ok((object, old))
}

/// Calls a mutating `webhook` if it selects the request, at the resource it selects it at,
/// and applies its patch to `shown` (the object at the request's version; `stored`: the
/// stored object of an update). Whether it changed the object; `None` when it was not called.
pub(super) async fn select_and_patch(
    admission: &Admission<'_>,
    webhook: &Webhook,
    shown: &mut Value,
    old_shown: Option<&Value>,
    stored: Option<&Value>,
) -> Result<Option<bool>, ApiError> {
    let Some(at) = selects(admission, webhook, Some(shown), old_shown) else {
        return Ok(None);
    };
    let Some(other) = at else {
        return invoke_and_patch(admission, webhook, shown, old_shown, None).await;
    };
    let (seen, old_seen) = objects_at(admission, at, Some(shown), old_shown).await?;
    let mut seen = seen.unwrap_or_default();
    let changed = invoke_and_patch(admission, webhook, &mut seen, old_seen.as_ref(), at).await?;
    if changed == Some(true) {
        *shown = admission.call.shown_from(seen, other, stored).await?;
    }
    Ok(changed)
}
