//! kube's `matchPolicy: Equivalent` (the default of admission webhooks and policies): rules
//! naming another version of the request's kind (`autoscaling/v2` for an `autoscaling/v1`
//! HorizontalPodAutoscaler, a CRD's other versions; the other group's Events) select the
//! request too, and the webhook or policy then sees it at that version: `kind` and `resource`
//! name it, `requestKind` and `requestResource` keep the request's, and the objects are
//! converted to it.

use std::borrow::Cow;

use serde_json::{json, Value};

use super::compiled::Match;
use super::matching::matches;
use super::{Admission, Operation};
use crate::api::convert::equivalents;
use crate::kinds::Resource;

/// Where a selected webhook or policy sees the request: `None` at the request's own resource.
pub type At = Option<&'static Resource>;

/// Whether `matching` selects the request, and at which resource (`equivalent`: its
/// matchPolicy is Equivalent); `None`: it does not.
pub fn select(
    admission: &Admission,
    matching: &Match,
    equivalent: bool,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Option<At> {
    if matches(matching, &admission.request(object, old)) {
        return Some(None);
    }
    // A scale subresource's Scale and a CONNECT's options have no other versions.
    let converts = admission.call.path.subresource.as_deref() != Some("scale")
        && !matches!(admission.operation, Operation::Connect);
    if !equivalent || !converts {
        return None;
    }
    equivalents(admission.call.resource())
        .into_iter()
        .find(|other| matches(matching, &request_at(admission, Some(other), object, old)))
        .map(Some)
}

/// What the matcher looks at for the request seen `at`.
pub fn request_at<'b>(
    admission: &'b Admission,
    at: At,
    object: Option<&'b Value>,
    old: Option<&'b Value>,
) -> super::matching::Request<'b> {
    let mut request = admission.request(object, old);
    if let Some(other) = at {
        (request.group, request.version, request.resource) =
            (other.group, other.version, other.plural);
    }
    request
}

/// The request's attributes as seen `at`.
pub fn attributes_at<'a>(admission: &'a Admission, at: At) -> Cow<'a, Value> {
    let Some(other) = at else {
        return Cow::Borrowed(&admission.attributes);
    };
    let mut attributes = admission.attributes.clone();
    attributes["kind"] =
        json!({"group": other.group, "version": other.version, "kind": other.kind});
    attributes["resource"] =
        json!({"group": other.group, "version": other.version, "resource": other.plural});
    Cow::Owned(attributes)
}
