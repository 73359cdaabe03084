//! Pod priority, as kube's Priority admission plugin and the scheduling.k8s.io PriorityClass
//! rules:
//!
//! - at a pod's create, `spec.priorityClassName` names a PriorityClass (else the one marked
//!   `globalDefault`, whose name the pod then gets; else priority 0): `spec.priority` and
//!   `spec.preemptionPolicy` come from it, a class that does not exist is 403 in kube's words,
//!   and a pod that states a different priority or policy itself is refused;
//! - the two system classes (`system-cluster-critical` 2000000000, `system-node-critical`
//!   2000001000) exist from the start (`bootstrap`); other names starting `system-` are
//!   refused, a user class's value is at most 1000000000, and only one class may be the
//!   global default.
//!
//! The classes come from a watch of the store ([`PriorityClassCache`]), so a pod's create
//! pays no extra store read; a class the cache does not know yet is read from the store.

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock, RwLock};

use serde_json::{json, Value};

use super::path::object_key;
use super::store_mirror::{Follower, Mirror};
use super::{decode_stored, map_store_error, meta, ApiState, Call};
use crate::authz::admission::admission_forbidden;
use crate::kinds::{self, Resource};
use crate::status::{ApiError, FieldCause};
use crate::store::{self, Event, EventKind, KeyValue, ListOptions};

/// The highest value of a class a user makes.
const HIGHEST_USER_PRIORITY: i64 = 1_000_000_000;
const DEFAULT_POLICY: &str = "PreemptLowerPriority";

/// kube's system classes: name, value, description.
pub const SYSTEM_CLASSES: [(&str, i64, &str); 2] = [
    (
        "system-node-critical",
        2_000_001_000,
        "Used for system critical pods that must not be moved from their current node.",
    ),
    (
        "system-cluster-critical",
        2_000_000_000,
        "Used for system critical pods that must run in the cluster, but can be moved to another node if necessary.",
    ),
];

fn classes() -> Result<&'static Resource, ApiError> {
    kinds::find("scheduling.k8s.io", "v1", "priorityclasses")
        .ok_or_else(|| ApiError::internal("the kinds table has no priorityclasses"))
}

/// What a pod takes from a class.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Class {
    value: i64,
    policy: String,
    global_default: bool,
}

impl Class {
    fn of(object: &Value) -> Class {
        Class {
            value: object["value"].as_i64().unwrap_or(0),
            policy: object["preemptionPolicy"]
                .as_str()
                .unwrap_or(DEFAULT_POLICY)
                .to_owned(),
            global_default: object["globalDefault"] == true,
        }
    }
}

/// The PriorityClasses by name, while the watch is healthy.
#[derive(Default)]
pub struct PriorityClassCache {
    classes: RwLock<Option<BTreeMap<String, Class>>>,
    prefix: OnceLock<String>,
    follower: Follower,
}

impl PriorityClassCache {
    /// The classes as the cache knows them (`None`: not listed yet or the watch broke); the
    /// first call starts following the store.
    fn known(
        self: &Arc<Self>,
        state: &ApiState,
        resource: &'static Resource,
    ) -> Option<BTreeMap<String, Class>> {
        let prefix = self.prefix.get_or_init(|| resource.key_prefix()).clone();
        self.follower
            .start(Arc::downgrade(self), &state.store, prefix);
        self.classes
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    fn name_of<'a>(&self, key: &'a str) -> &'a str {
        self.prefix
            .get()
            .and_then(|prefix| key.strip_prefix(prefix.as_str()))
            .unwrap_or(key)
    }
}

impl Mirror for PriorityClassCache {
    fn reset(&self, items: Option<&[KeyValue]>) {
        let classes = items.map(|items| {
            items
                .iter()
                .filter_map(|kv| {
                    let object = decode_stored(kv).ok()?;
                    Some((self.name_of(&kv.key).to_owned(), Class::of(&object)))
                })
                .collect()
        });
        *self
            .classes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = classes;
    }

    fn apply(&self, event: &Event) {
        let name = self.name_of(&event.kv.key).to_owned();
        let mut guard = self
            .classes
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let classes = guard.get_or_insert_with(BTreeMap::new);
        match (&event.kind, decode_stored(&event.kv)) {
            (EventKind::Put, Ok(object)) => {
                classes.insert(name, Class::of(&object));
            }
            _ => {
                classes.remove(&name);
            }
        }
    }
}

/// Every class: the cache's, or the store's when the cache does not know them.
async fn all_classes(call: &Call) -> Result<BTreeMap<String, Class>, ApiError> {
    let resource = classes()?;
    if let Some(known) = call.state.priority_classes.known(&call.state, resource) {
        return Ok(known);
    }
    let page = call
        .state
        .store
        .list(&resource.key_prefix(), &ListOptions::default())
        .await
        .map_err(map_store_error)?;
    let mut out = BTreeMap::new();
    for kv in &page.items {
        let object = decode_stored(kv)?;
        out.insert(meta::name_of(&object).to_owned(), Class::of(&object));
    }
    Ok(out)
}

/// Priority admission of a pod being created.
pub async fn admit_pod(call: &Call, pod: &mut Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if (resource.group, resource.kind) != ("", "Pod") {
        return Ok(());
    }
    let pod_name = meta::name_of(pod).to_owned();
    let forbidden = |why: String| admission_forbidden(resource, &pod_name, &why);
    let named = pod["spec"]["priorityClassName"]
        .as_str()
        .filter(|n| !n.is_empty())
        .map(str::to_owned);
    let classes = all_classes(call).await?;
    let (class_name, class) = match named {
        Some(name) => match classes.get(&name) {
            Some(class) => (Some(name), class.clone()),
            None => match read_class(call, &name).await? {
                Some(class) => (Some(name), class),
                None => {
                    return Err(forbidden(format!(
                        "no PriorityClass with name {name} was found"
                    )))
                }
            },
        },
        None => match classes.iter().find(|(_, c)| c.global_default) {
            Some((name, class)) => (Some(name.clone()), class.clone()),
            None => (
                None,
                Class {
                    value: 0,
                    policy: DEFAULT_POLICY.to_owned(),
                    global_default: false,
                },
            ),
        },
    };
    let spec = &mut pod["spec"];
    if let Some(stated) = spec["priority"].as_i64() {
        if stated != class.value {
            return Err(forbidden(format!(
                "the integer value of priority ({stated}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                class.value
            )));
        }
    }
    if let Some(stated) = spec["preemptionPolicy"].as_str() {
        if stated != class.policy {
            return Err(forbidden(format!(
                "the string value of PreemptionPolicy ({stated}) must not be provided in pod spec; priority admission controller computed {} from the given PriorityClass name",
                class.policy
            )));
        }
    }
    if let Some(name) = class_name {
        spec["priorityClassName"] = json!(name);
    }
    spec["priority"] = json!(class.value);
    spec["preemptionPolicy"] = json!(class.policy);
    Ok(())
}

async fn read_class(call: &Call, name: &str) -> Result<Option<Class>, ApiError> {
    let key = object_key(classes()?, None, name);
    match call.state.store.get(&key).await.map_err(map_store_error)? {
        Some(kv) => Ok(Some(Class::of(&decode_stored(&kv)?))),
        None => Ok(None),
    }
}

/// A PriorityClass's own rules (validation).
pub fn validate_class(class: &Value, causes: &mut Vec<FieldCause>) {
    let name = meta::name_of(class);
    let system = SYSTEM_CLASSES.iter().find(|(n, _, _)| *n == name);
    let value = class["value"].as_i64().unwrap_or(0);
    match system {
        Some((_, wanted, _)) if value != *wanted => causes.push(FieldCause::invalid(
            "value",
            &value.to_string(),
            &format!("value of {name} PriorityClass must be {wanted}"),
        )),
        Some(_) => {}
        None if name.starts_with("system-") => causes.push(FieldCause::invalid(
            "metadata.name",
            &format!("{name:?}"),
            "priority class names with 'system-' prefix are reserved for system use only",
        )),
        None if value > HIGHEST_USER_PRIORITY => causes.push(FieldCause::invalid(
            "value",
            &value.to_string(),
            &format!("maximum allowed value of a user defined priority is {HIGHEST_USER_PRIORITY}"),
        )),
        None => {}
    }
    if let Some(policy) = class["preemptionPolicy"].as_str() {
        if !matches!(policy, "PreemptLowerPriority" | "Never") {
            causes.push(super::validate_storage::not_supported(
                "preemptionPolicy",
                policy,
                &["Never", "PreemptLowerPriority"],
            ));
        }
    }
}

/// A PriorityClass's value and preemption policy may not change (kube's
/// ValidatePriorityClassUpdate).
pub fn check_update(old: &Value, new: &Value, resource: &Resource) -> Result<(), ApiError> {
    if (resource.group, resource.kind) != ("scheduling.k8s.io", "PriorityClass") {
        return Ok(());
    }
    let mut causes = Vec::new();
    if old["value"] != new["value"] {
        causes.push(FieldCause {
            field: "value".to_owned(),
            reason: "FieldValueForbidden",
            message: "Forbidden: may not be changed in an update.".to_owned(),
        });
    }
    let policy = |o: &Value| {
        o["preemptionPolicy"]
            .as_str()
            .unwrap_or(DEFAULT_POLICY)
            .to_owned()
    };
    if policy(old) != policy(new) {
        causes.push(FieldCause::invalid(
            "preemptionPolicy",
            &format!("{:?}", policy(new)),
            "field is immutable",
        ));
    }
    match causes.is_empty() {
        true => Ok(()),
        false => Err(ApiError::invalid(
            &format!("{}.{}", resource.kind, resource.group),
            resource.kind,
            meta::name_of(new),
            &causes,
        )),
    }
}

/// kube's admission of a class being created or updated: only one global default.
pub async fn admit_class(call: &Call, class: &Value) -> Result<(), ApiError> {
    let resource = call.resource();
    if (resource.group, resource.kind) != ("scheduling.k8s.io", "PriorityClass")
        || class["globalDefault"] != true
    {
        return Ok(());
    }
    let name = meta::name_of(class);
    let classes = all_classes(call).await?;
    if let Some((other, _)) = classes
        .iter()
        .find(|(other, c)| c.global_default && other.as_str() != name)
    {
        return Err(admission_forbidden(
            resource,
            name,
            &format!(
                "PriorityClass {other} is already marked as default. Only one default can exist"
            ),
        ));
    }
    Ok(())
}

/// Creates the system classes that are missing.
pub async fn bootstrap(state: &ApiState) -> Result<(), store::Error> {
    let Ok(resource) = classes() else {
        return Ok(());
    };
    for (name, value, description) in SYSTEM_CLASSES {
        let object = json!({"apiVersion": "scheduling.k8s.io/v1", "kind": "PriorityClass",
            "metadata": {"name": name}, "value": value, "globalDefault": false,
            "description": description, "preemptionPolicy": DEFAULT_POLICY});
        super::create_missing(state, resource, object).await?;
    }
    Ok(())
}
