//! ValidatingAdmissionPolicy (admissionregistration.k8s.io/v1): CEL policies applied to the
//! writes they match through their bindings, as kube-apiserver's validating admission does.
//!
//! - `compiled`: the policy and binding objects checked when written and compiled;
//! - `matching`: which requests a policy and binding select;
//! - here: the policies and bindings followed from the store (`PolicyCache`, rebuilt when one
//!   changes; read from the store while not listed) and `admit`, run on every create, update
//!   (also of subresources) and delete after the built-in checks: each matching policy's
//!   `matchConditions`, then its `variables`, then its `validations`, with `object`,
//!   `oldObject`, `request`, `namespaceObject`, `variables` and — once per parameter object of
//!   the binding's `paramRef` (by name or selector, in its namespace or the request's; none
//!   found: its `parameterNotFoundAction`) — `params`. A failed validation of a `Deny`
//!   binding refuses the request with kube's text and the validation's reason (422 Invalid by
//!   default), a `Warn` binding's becomes a `Warning` header; an expression that fails to
//!   evaluate counts as a failure unless the policy's `failurePolicy` is `Ignore`.
//!
//! Policies and bindings themselves are never subject to policies (kube exempts them, so a
//! bad policy cannot lock itself in).

pub(super) mod compiled;
pub(super) mod equivalent;
mod evaluate;
pub(super) mod matching;

use std::sync::Arc;

use cel::Value as CelValue;
use http::StatusCode;
use serde_json::{json, Value};

use self::compiled::{Binding, Policy};
use self::equivalent::At;
use self::evaluate::{evaluate, Decision, Evaluation, Inputs};
pub(super) use self::evaluate::{failure_text, run};
use self::matching::Request;
use super::store_mirror::Derived;
use super::{decode_stored, map_store_error, Call};
use crate::crd::cel::{from_json, on_cel_thread};
use crate::kinds::{self, Resource};
use crate::status::{ApiError, FieldCause};
use crate::store::{ListOptions, Store};

pub const GROUP: &str = "admissionregistration.k8s.io";
const PLURALS: [&str; 2] = [
    "validatingadmissionpolicies",
    "validatingadmissionpolicybindings",
];

/// The write being admitted.
#[derive(Clone, Copy)]
pub enum Operation {
    Create,
    Update,
    Delete,
    /// `pods/exec`, `pods/attach`, `pods/portforward`: the object is the request's options.
    Connect,
}

impl Operation {
    pub fn name(self) -> &'static str {
        match self {
            Operation::Create => "CREATE",
            Operation::Update => "UPDATE",
            Operation::Delete => "DELETE",
            Operation::Connect => "CONNECT",
        }
    }
}

/// A binding with the policy it names.
type Pair = (Arc<Policy>, Arc<Binding>);

fn resources() -> Result<[&'static Resource; 2], ApiError> {
    let find = |plural| {
        kinds::find(GROUP, "v1", plural)
            .ok_or_else(|| ApiError::internal(format!("the kinds table has no {plural}")))
    };
    Ok([find(PLURALS[0])?, find(PLURALS[1])?])
}

/// kube's validation of a policy or binding being written (the field causes of a 422).
pub fn validate(object: &Value, resource: &Resource, causes: &mut Vec<FieldCause>) {
    let found = on_cel_thread(|| match resource.kind {
        "ValidatingAdmissionPolicy" => compiled::policy(object).1,
        _ => compiled::binding(object).1,
    });
    causes.extend(found.unwrap_or_else(|| {
        let why = "its expressions could not be compiled (internal error)";
        vec![FieldCause::invalid("spec", "\"object\"", why)]
    }));
}

/// The policies and bindings as the store's watch shows them, paired and compiled.
#[derive(Default)]
pub struct PolicyCache {
    copies: Derived<Vec<Pair>, 2>,
}

impl PolicyCache {
    /// The bound policies: the copies', or the store's while they are not listed.
    async fn pairs(&self, store: &Arc<dyn Store>) -> Result<Arc<Vec<Pair>>, ApiError> {
        let prefixes = resources()?.map(|r| r.key_prefix());
        self.copies
            .get_or_read(store, prefixes, |[policies, bindings]| {
                pair(policies, bindings)
            })
            .await
    }
}

/// Every binding whose policy exists, both compiled (on a CEL thread: the parser recurses).
fn pair(policies: &[Value], bindings: &[Value]) -> Vec<Pair> {
    if bindings.is_empty() || policies.is_empty() {
        return Vec::new();
    }
    on_cel_thread(|| {
        let policies: Vec<Arc<Policy>> = policies
            .iter()
            .filter_map(|p| compiled::policy(p).0.map(Arc::new))
            .collect();
        bindings
            .iter()
            .filter_map(|b| compiled::binding(b).0)
            .filter_map(|binding| {
                let policy = policies.iter().find(|p| p.name == binding.policy)?;
                Some((Arc::clone(policy), Arc::new(binding)))
            })
            .collect()
    })
    .unwrap_or_default()
}

/// Applies the bound policies matching this write; `object` is what is to be stored (none on
/// delete), `old` the stored object (none on create).
pub(crate) async fn admit(
    call: &Call,
    operation: Operation,
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<(), ApiError> {
    let resource = call.resource();
    if resource.group == GROUP {
        return Ok(());
    }
    let pairs = call
        .state
        .admission_policies
        .pairs(&call.state.store)
        .await?;
    if pairs.is_empty() {
        return Ok(());
    }
    let admission = Admission::new(call, operation, object).await?;
    let matched: Vec<(&Pair, At)> = pairs
        .iter()
        .filter_map(|pair| {
            let (policy, binding) = pair;
            let at = equivalent::select(
                &admission,
                &policy.constraints,
                policy.equivalent,
                object,
                old,
            )?;
            let request = equivalent::request_at(&admission, at, object, old);
            let bound = binding
                .matching
                .as_ref()
                .is_none_or(|m| matching::matches(m, &request));
            bound.then_some((pair, at))
        })
        .collect();
    if matched.is_empty() {
        return Ok(());
    }
    let views = views(&admission, &matched, object, old).await?;
    let mut work = Vec::with_capacity(matched.len());
    for (pair, at) in matched {
        let view = views.iter().position(|v| same(v.at, at)).unwrap_or(0);
        work.push((
            pair,
            view,
            params_of(call, pair, &admission.namespace).await?,
        ));
    }
    let found = on_cel_thread(|| {
        let namespace = admission
            .namespace_object
            .as_ref()
            .map_or(CelValue::Null, from_json);
        let inputs: Vec<Inputs> = views
            .iter()
            .map(|view| Inputs {
                object: view.object.as_ref().map_or(CelValue::Null, from_json),
                old: view.old.as_ref().map_or(CelValue::Null, from_json),
                request: from_json(&view.attributes),
                namespace: namespace.clone(),
            })
            .collect();
        let mut found = Evaluation::default();
        let mut add = |more: Evaluation| {
            found.failures.extend(more.failures);
            found.annotations.extend(more.annotations);
        };
        for (pair, view, params) in &work {
            let Some(inputs) = inputs.get(*view) else {
                continue;
            };
            match params {
                Params::Unused => add(evaluate(pair, inputs, CelValue::Null)),
                Params::Objects(objects) => {
                    for param in objects {
                        add(evaluate(pair, inputs, from_json(param)));
                    }
                }
                Params::Skip => {}
                Params::Failed(_) if pair.0.ignore_failures => {}
                Params::Failed(message) => add(Evaluation {
                    failures: vec![Decision {
                        policy: pair.0.name.clone(),
                        binding: pair.1.name.clone(),
                        message: message.clone(),
                        reason: "Invalid".to_owned(),
                        expression_index: 0,
                        deny: pair.1.deny,
                        warn: pair.1.warn,
                        audit: pair.1.audit,
                    }],
                    annotations: Vec::new(),
                }),
            }
        }
        found
    })
    .ok_or_else(|| ApiError::internal("the admission policies could not be evaluated"))?;
    let decisions = found.failures;
    for (key, value) in &found.annotations {
        call.audit_annotate(key, value);
    }
    let audited: Vec<Value> = decisions
        .iter()
        .filter(|d| d.audit)
        .map(|d| {
            let actions: Vec<&str> = [(d.deny, "Deny"), (d.warn, "Warn"), (d.audit, "Audit")]
                .into_iter()
                .filter_map(|(on, name)| on.then_some(name))
                .collect();
            json!({"message": d.message, "policy": d.policy, "binding": d.binding,
                "expressionIndex": d.expression_index, "validationActions": actions})
        })
        .collect();
    if !audited.is_empty() {
        call.audit_annotate(
            "validation.policy.admission.k8s.io/validation_failure",
            &Value::Array(audited).to_string(),
        );
    }
    for decision in decisions.iter().filter(|d| d.warn) {
        call.warn(format!(
            "Validation failed for ValidatingAdmissionPolicy '{}' with binding '{}': {}",
            decision.policy, decision.binding, decision.message
        ));
    }
    match decisions.iter().find(|d| d.deny) {
        Some(denied) => Err(denial(resource, &admission.name, denied)),
        None => Ok(()),
    }
}

/// The request as the policies matched at one resource see it.
struct View {
    at: At,
    object: Option<Value>,
    old: Option<Value>,
    attributes: Value,
}

fn same(a: At, b: At) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// One view per resource the matched policies see the request at: at its own, the objects
/// as they are (stored); at an equivalent one, converted to it.
async fn views(
    admission: &Admission<'_>,
    matched: &[(&Pair, At)],
    object: Option<&Value>,
    old: Option<&Value>,
) -> Result<Vec<View>, ApiError> {
    let mut views: Vec<View> = Vec::new();
    for (_, at) in matched {
        if views.iter().any(|v| same(v.at, *at)) {
            continue;
        }
        let (object, old) = match at {
            None => (object.cloned(), old.cloned()),
            Some(other) => {
                let call = admission.call;
                let object = match object {
                    Some(o) => Some(call.stored_as(o.clone(), other).await?),
                    None => None,
                };
                let old = match old {
                    Some(o) => Some(call.stored_as(o.clone(), other).await?),
                    None => None,
                };
                (object, old)
            }
        };
        views.push(View {
            at: *at,
            object,
            old,
            attributes: equivalent::attributes_at(admission, *at).into_owned(),
        });
    }
    Ok(views)
}

/// One admission request's facts, as the policies and the webhooks match and see them.
pub(super) struct Admission<'a> {
    pub call: &'a Call,
    pub operation: Operation,
    /// The object's name (the path's, or the body's on a create).
    pub name: String,
    pub namespace: String,
    /// The request's Namespace (for namespace selectors and `namespaceObject`).
    pub namespace_object: Option<Value>,
    /// The request as `request_attributes` shows it.
    pub attributes: Value,
    subresource: String,
}

impl<'a> Admission<'a> {
    pub async fn new(
        call: &'a Call,
        operation: Operation,
        object: Option<&Value>,
    ) -> Result<Admission<'a>, ApiError> {
        let resource = call.resource();
        let name = call
            .path
            .name
            .clone()
            .or_else(|| {
                object
                    .and_then(|o| o["metadata"]["name"].as_str())
                    .map(str::to_owned)
            })
            .unwrap_or_default();
        let namespace = call.path.namespace.clone().unwrap_or_default();
        let namespace_object = match resource.namespaced() && !namespace.is_empty() {
            true => namespace_object(call, &namespace).await?,
            false => None,
        };
        let attributes = request_attributes(call, operation, &name, &namespace);
        Ok(Admission {
            call,
            operation,
            name,
            namespace,
            namespace_object,
            attributes,
            subresource: call.path.subresource.clone().unwrap_or_default(),
        })
    }

    /// What the matcher looks at, for `object` (or `old`).
    pub fn request<'b>(&'b self, object: Option<&'b Value>, old: Option<&'b Value>) -> Request<'b> {
        let resource = self.call.resource();
        Request {
            operation: self.operation.name(),
            group: resource.group,
            version: resource.version,
            resource: resource.plural,
            subresource: &self.subresource,
            name: &self.name,
            namespaced: resource.namespaced(),
            object,
            old,
            namespace: self.namespace_object.as_ref(),
            is_namespace: resource.group.is_empty() && resource.kind == "Namespace",
        }
    }
}

/// The admission request as CEL's `request` and a webhook's AdmissionReview show it: the
/// kind and resource (as requested and as matched: the same here), the name, namespace,
/// operation, user and dry run.
pub(super) fn request_attributes(
    call: &Call,
    operation: Operation,
    name: &str,
    namespace: &str,
) -> Value {
    let resource = call.resource();
    let subresource = call.path.subresource.clone().unwrap_or_default();
    let kind = match (operation, subresource.as_str()) {
        (Operation::Connect, _) => connect_kind(&subresource).unwrap_or(resource.kind),
        // The scale subresource is admitted as its autoscaling/v1 Scale (`scale`).
        (_, "scale") => "Scale",
        _ => resource.kind,
    };
    let kind = match kind {
        "Scale" => json!({"group": "autoscaling", "version": "v1", "kind": kind}),
        _ => json!({"group": resource.group, "version": resource.version, "kind": kind}),
    };
    let gvr =
        json!({"group": resource.group, "version": resource.version, "resource": resource.plural});
    json!({
        "kind": kind, "resource": gvr, "subResource": subresource,
        "requestKind": kind, "requestResource": gvr, "requestSubResource": subresource,
        "name": name, "namespace": namespace, "operation": operation.name(),
        "userInfo": {"username": call.identity.user, "uid": call.identity.uid,
            "groups": call.identity.groups, "extra": call.identity.extra},
        "dryRun": call.query.dry_run,
    })
}

/// The kind of a CONNECT request's options object, by subresource.
pub(super) fn connect_kind(subresource: &str) -> Option<&'static str> {
    match subresource {
        "exec" => Some("PodExecOptions"),
        "attach" => Some("PodAttachOptions"),
        "portforward" => Some("PodPortForwardOptions"),
        _ => None,
    }
}

/// The parameter objects a bound policy runs with.
enum Params {
    /// The policy has no `paramKind`.
    Unused,
    Objects(Vec<Value>),
    /// None found, and the binding allows that: the policy does not run.
    Skip,
    /// The binding cannot be applied (kube's "failed to configure binding" texts).
    Failed(String),
}

/// Reads the parameter objects of a binding's `paramRef`: by name or selector, in
/// `paramRef.namespace` or else the request's namespace for a namespaced kind.
async fn params_of(
    call: &Call,
    (policy, binding): &Pair,
    namespace: &str,
) -> Result<Params, ApiError> {
    let Some(kind) = &policy.param_kind else {
        return Ok(Params::Unused);
    };
    let Some(reference) = &binding.param_ref else {
        return Ok(Params::Failed(format!(
            "failed to configure binding: no paramRef specified while the policy has paramKind {}",
            kind.kind
        )));
    };
    let Some(resource) = kinds::all()
        .find(|r| r.group == kind.group && r.version == kind.version && r.kind == kind.kind)
    else {
        let group_version = match kind.group.as_str() {
            "" => kind.version.clone(),
            group => format!("{group}/{}", kind.version),
        };
        return Ok(Params::Failed(format!(
            "failed to configure policy: failed to find resource referenced by paramKind: '{group_version}, Kind={}'",
            kind.kind
        )));
    };
    let namespace = match resource.namespaced() {
        true => reference
            .namespace
            .clone()
            .unwrap_or_else(|| namespace.to_owned()),
        false => String::new(),
    };
    if resource.namespaced() && namespace.is_empty() {
        return Ok(Params::Failed(
            "failed to configure binding: cannot use a namespaced paramRef without a namespace for a cluster-scoped request".to_owned(),
        ));
    }
    let store = &call.state.store;
    let objects = match &reference.name {
        Some(name) => {
            let key = super::path::object_key(resource, Some(&namespace), name);
            match store.get(&key).await.map_err(map_store_error)? {
                Some(kv) => vec![decode_stored(&kv)?],
                None => Vec::new(),
            }
        }
        None => {
            let prefix = match resource.namespaced() {
                true => format!("{}{namespace}/", resource.key_prefix()),
                false => resource.key_prefix(),
            };
            let page = store
                .list(&prefix, &ListOptions::default())
                .await
                .map_err(map_store_error)?;
            let mut found = Vec::new();
            for kv in &page.items {
                let object = decode_stored(kv)?;
                if reference
                    .selector
                    .as_ref()
                    .is_none_or(|s| s.matches(&object))
                {
                    found.push(object);
                }
            }
            found
        }
    };
    Ok(match (objects.is_empty(), reference.deny_when_missing) {
        (false, _) => Params::Objects(objects),
        (true, false) => Params::Skip,
        (true, true) => Params::Failed(
            "failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction".to_owned(),
        ),
    })
}

pub(super) async fn namespace_object(call: &Call, name: &str) -> Result<Option<Value>, ApiError> {
    let Some(namespaces) = kinds::find("", "v1", "namespaces") else {
        return Ok(None);
    };
    let key = format!("{}{name}", namespaces.key_prefix());
    match call.state.store.get(&key).await.map_err(map_store_error)? {
        Some(kv) => Ok(Some(decode_stored(&kv)?)),
        None => Ok(None),
    }
}

/// kube's refusal: `deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'p' with
/// binding 'b' denied request: <message>`, with the validation's reason and its code.
fn denial(resource: &Resource, name: &str, decision: &Decision) -> ApiError {
    let text = format!(
        "ValidatingAdmissionPolicy '{}' with binding '{}' denied request: {}",
        decision.policy, decision.binding, decision.message
    );
    let (code, reason) = match decision.reason.as_str() {
        "Unauthorized" => (StatusCode::UNAUTHORIZED, "Unauthorized"),
        "Forbidden" => (StatusCode::FORBIDDEN, "Forbidden"),
        "RequestEntityTooLarge" => (StatusCode::PAYLOAD_TOO_LARGE, "RequestEntityTooLarge"),
        _ => (StatusCode::UNPROCESSABLE_ENTITY, "Invalid"),
    };
    let message = match name {
        "" => format!("{} is forbidden: {text}", resource.group_resource()),
        name => format!(
            "{} {name:?} is forbidden: {text}",
            resource.group_resource()
        ),
    };
    let mut error = ApiError::new(code, reason, message);
    error.details = Some(
        json!({"name": name, "group": resource.group, "kind": resource.plural,
        "causes": [{"message": text}]}),
    );
    error
}
