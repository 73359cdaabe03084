//! What a written object must satisfy before it is stored (and the defaults it then gets,
//! `defaults`): a body in an encoding we decode,
//! kind and apiVersion matching the path, a value that decodes into the kind's `k8s-openapi`
//! type (a type error names the field path), no unknown fields under
//! `fieldValidation=Strict` (a `Warning` under `Warn`), and the basic semantic rules of
//! Kubernetes' validation (names, required fields, selectors matching templates) as 422
//! Invalid with field causes. Only reads JSON; never touches the store.

use serde::{de::DeserializeOwned, Serialize};
use serde_json::{json, Value};

use super::meta::name_problem;
use super::patch::shape::Shape;
use super::query::FieldValidation;
use super::validate_workload::{disruption_budget, job, pod_spec, pod_template_spec, workload};
use crate::kinds::Resource;
use crate::status::{ApiError, FieldCause};

/// A decoded request body and the keys it repeats (JSON only; YAML refuses them itself).
#[derive(Debug)]
pub struct Body {
    pub object: Value,
    pub duplicates: Vec<String>,
}

/// A create or update body decoded and checked against its type: the object and the
/// warnings for the client (`fieldValidation=Warn`).
pub fn decode_checked(
    content_type: &str,
    body: &[u8],
    resource: &Resource,
    validation: FieldValidation,
) -> Result<(Value, Vec<String>), ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    if !resource.takes_protobuf() && media == "application/vnd.kubernetes.protobuf" {
        return Err(ApiError::unsupported_media(
            media,
            &format!(
                "{} takes application/json or application/yaml",
                resource.group_resource()
            ),
        ));
    }
    let Body {
        mut object,
        duplicates,
    } = decode_body(content_type, body)?;
    let warnings = check_typed(&mut object, &duplicates, resource, validation)?;
    Ok((object, warnings))
}

/// Decodes a request body holding an object: JSON, YAML or Kubernetes protobuf (whose
/// envelope's apiVersion and kind land in the object, for `check_typed` to compare).
pub fn decode_body(content_type: &str, body: &[u8]) -> Result<Body, ApiError> {
    let media = content_type.split(';').next().unwrap_or("").trim();
    let value: Value = match media {
        "application/vnd.kubernetes.protobuf" => crate::protobuf::decode(body).map_err(|e| {
            ApiError::bad_request(format!("the body is not a valid protobuf object: {e}"))
        })?,
        "application/yaml" => serde_yaml::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid YAML: {e}")))?,
        "application/json" | "" | "*/*" => serde_json::from_slice(body)
            .map_err(|e| ApiError::bad_request(format!("the body is not valid JSON: {e}")))?,
        other => {
            return Err(ApiError::unsupported_media(
                other,
                "send application/json or application/yaml",
            ))
        }
    };
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    let duplicates = match media {
        "application/yaml" | "application/vnd.kubernetes.protobuf" => Vec::new(),
        _ => super::duplicates::duplicate_fields(body),
    };
    Ok(Body {
        object: value,
        duplicates,
    })
}

/// Checks `object` as a `resource`, filling a missing kind/apiVersion; returns the warnings
/// to send (unknown and `duplicates` fields under `Warn`).
pub fn check_typed(
    object: &mut Value,
    duplicates: &[String],
    resource: &Resource,
    validation: FieldValidation,
) -> Result<Vec<String>, ApiError> {
    let gv = resource.group_version();
    let cannot = |why: String| {
        ApiError::bad_request(format!(
            "{} in version {:?} cannot be handled as a {}: {why}",
            resource.kind, resource.version, resource.kind
        ))
    };
    for field in ["apiVersion", "kind"] {
        if !object[field].is_null() && !object[field].is_string() {
            return Err(cannot(format!("{field}: expected a string")));
        }
    }
    match object["apiVersion"].as_str() {
        None | Some("") => object["apiVersion"] = json!(gv),
        Some(v) if v == gv => {}
        Some(v) => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({v}) does not match the expected API version ({gv})"
            )))
        }
    }
    match object["kind"].as_str() {
        None | Some("") => object["kind"] = json!(resource.kind),
        Some(k) if k == resource.kind => {}
        Some(k) => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({k}) does not match the expected kind ({})",
                resource.kind
            )))
        }
    }
    let unknown = if resource.custom {
        crate::crd::custom::decode(object, resource)?
    } else {
        let round = typed_roundtrip(resource, object).map_err(cannot)?;
        let mut unknown = Vec::new();
        unknown_fields(object, &round, "", &mut unknown);
        super::omit_empty::omit_empty(object, Shape::of_resource(resource));
        unknown.sort();
        unknown
    };
    if resource.group.is_empty() && resource.kind == "Secret" {
        merge_string_data(object);
    }
    super::defaults::apply(object, resource);
    let texts: Vec<String> = duplicates
        .iter()
        .map(|f| format!("duplicate field {f:?}"))
        .chain(unknown.iter().map(|f| format!("unknown field {f:?}")))
        .collect();
    if texts.is_empty() {
        return Ok(Vec::new());
    }
    match validation {
        FieldValidation::Strict => Err(cannot(format!(
            "strict decoding error: {}",
            texts.join(", ")
        ))),
        FieldValidation::Warn => Ok(texts),
        FieldValidation::Ignore => Ok(Vec::new()),
    }
}

/// A Secret's write-only `stringData` goes into `data`, base64-encoded, as Kubernetes does.
fn merge_string_data(secret: &mut Value) {
    use base64::Engine;
    let Some(map) = secret.as_object_mut() else {
        return;
    };
    let Some(Value::Object(strings)) = map.remove("stringData") else {
        return;
    };
    if !map.get("data").is_some_and(Value::is_object) {
        map.insert("data".into(), json!({}));
    }
    if let Some(Value::Object(data)) = map.get_mut("data") {
        for (k, v) in strings {
            let text = v.as_str().unwrap_or_default();
            let encoded = base64::engine::general_purpose::STANDARD.encode(text);
            data.insert(k, Value::String(encoded));
        }
    }
}

fn roundtrip<T: DeserializeOwned + Serialize>(value: &Value) -> Result<Value, String> {
    let typed: T = serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        if path == "." {
            e.inner().to_string()
        } else {
            format!("{path}: {}", e.inner())
        }
    })?;
    serde_json::to_value(&typed).map_err(|e| e.to_string())
}

/// `value` decoded into the kind's type and encoded again.
fn typed_roundtrip(resource: &Resource, value: &Value) -> Result<Value, String> {
    use k8s_openapi::api::{
        apps::v1 as apps, autoscaling::v2 as autoscaling, batch::v1 as batch,
        certificates::v1 as certificates, coordination::v1 as coordination, core::v1 as core,
        discovery::v1 as discovery, events::v1 as events, networking::v1 as networking,
        policy::v1 as policy, rbac::v1 as rbac, scheduling::v1 as scheduling,
        storage::v1 as storage,
    };
    if (resource.group, resource.version, resource.kind)
        == ("autoscaling", "v1", "HorizontalPodAutoscaler")
    {
        return roundtrip::<k8s_openapi::api::autoscaling::v1::HorizontalPodAutoscaler>(value);
    }
    macro_rules! by_kind {
        ($($group:literal $kind:literal => $ty:ty,)*) => {
            match (resource.group, resource.kind) {
                $(($group, $kind) => roundtrip::<$ty>(value),)*
                _ => Err(format!("no type is known for {}", resource.kind)),
            }
        };
    }
    by_kind! {
        "" "Namespace" => core::Namespace,
        "" "Pod" => core::Pod,
        "" "Service" => core::Service,
        "" "Endpoints" => core::Endpoints,
        "" "ConfigMap" => core::ConfigMap,
        "" "Secret" => core::Secret,
        "" "Node" => core::Node,
        "" "Event" => core::Event,
        "" "PersistentVolume" => core::PersistentVolume,
        "" "PersistentVolumeClaim" => core::PersistentVolumeClaim,
        "" "ResourceQuota" => core::ResourceQuota,
        "" "LimitRange" => core::LimitRange,
        "" "ServiceAccount" => core::ServiceAccount,
        "" "ReplicationController" => core::ReplicationController,
        "apps" "Deployment" => apps::Deployment,
        "apps" "ReplicaSet" => apps::ReplicaSet,
        "apps" "StatefulSet" => apps::StatefulSet,
        "apps" "DaemonSet" => apps::DaemonSet,
        "apps" "ControllerRevision" => apps::ControllerRevision,
        "batch" "Job" => batch::Job,
        "batch" "CronJob" => batch::CronJob,
        "discovery.k8s.io" "EndpointSlice" => discovery::EndpointSlice,
        "networking.k8s.io" "Ingress" => networking::Ingress,
        "networking.k8s.io" "IngressClass" => networking::IngressClass,
        "storage.k8s.io" "StorageClass" => storage::StorageClass,
        "storage.k8s.io" "CSIDriver" => storage::CSIDriver,
        "storage.k8s.io" "CSINode" => storage::CSINode,
        "coordination.k8s.io" "Lease" => coordination::Lease,
        "certificates.k8s.io" "CertificateSigningRequest" => certificates::CertificateSigningRequest,
        "autoscaling" "HorizontalPodAutoscaler" => autoscaling::HorizontalPodAutoscaler,
        "events.k8s.io" "Event" => events::Event,
        "policy" "PodDisruptionBudget" => policy::PodDisruptionBudget,
        "scheduling.k8s.io" "PriorityClass" => scheduling::PriorityClass,
        "rbac.authorization.k8s.io" "Role" => rbac::Role,
        "rbac.authorization.k8s.io" "ClusterRole" => rbac::ClusterRole,
        "rbac.authorization.k8s.io" "RoleBinding" => rbac::RoleBinding,
        "rbac.authorization.k8s.io" "ClusterRoleBinding" => rbac::ClusterRoleBinding,
        "admissionregistration.k8s.io" "ValidatingAdmissionPolicy" => k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy,
        "admissionregistration.k8s.io" "ValidatingAdmissionPolicyBinding" => k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding,
        "admissionregistration.k8s.io" "MutatingWebhookConfiguration" => k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration,
        "admissionregistration.k8s.io" "ValidatingWebhookConfiguration" => k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration,
        "apiextensions.k8s.io" "CustomResourceDefinition" => k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    }
}

/// Removes from `input` the fields the typed round trip dropped (the type does not know
/// them, so Kubernetes would not store them) and names the non-null ones in `out`, as
/// Kubernetes prints them: `spec.template.spec.containers[0].imagez`.
fn unknown_fields(input: &mut Value, round: &Value, path: &str, out: &mut Vec<String>) {
    match (input, round) {
        (Value::Object(a), Value::Object(b)) => {
            a.retain(|key, value| {
                let known = b.contains_key(key);
                if !known && !value.is_null() {
                    out.push(if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    });
                }
                known
            });
            for (key, value) in a.iter_mut() {
                if let Some(r) = b.get(key) {
                    let here = if path.is_empty() {
                        key.clone()
                    } else {
                        format!("{path}.{key}")
                    };
                    unknown_fields(value, r, &here, out);
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter_mut().zip(b).enumerate() {
                unknown_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Kubernetes' basic semantic rules for `object` (already typed-checked and named); `old` is
/// the stored object of an update (a custom resource's transition rules compare with it).
pub fn check_semantics(
    object: &Value,
    old: Option<&Value>,
    resource: &Resource,
) -> Result<(), ApiError> {
    let mut causes = Vec::new();
    let name = object["metadata"]["name"].as_str().unwrap_or("");
    let label_only = resource.group.is_empty() && matches!(resource.kind, "Namespace" | "Service");
    if resource.group == super::validate_rbac::GROUP {
        let problem = super::validate_rbac::name_problem(name);
        causes.extend(
            problem.map(|why| FieldCause::invalid("metadata.name", &format!("{name:?}"), why)),
        );
    } else {
        causes.extend(name_problem(name, label_only));
    }
    if resource.custom {
        crate::crd::custom::validate(object, old, resource, &mut causes);
    }
    match (resource.group, resource.kind) {
        (
            super::admission_policy::GROUP,
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => super::admission_webhook::validate_configuration(object, resource, &mut causes),
        (super::admission_policy::GROUP, _) => {
            super::admission_policy::validate(object, resource, &mut causes)
        }
        ("apiextensions.k8s.io", "CustomResourceDefinition") => {
            crate::crd::definition::check(object, old, &mut causes);
            super::crd_conversion::check_definition(&object["spec"], &mut causes);
        }
        ("apps", "Deployment" | "ReplicaSet" | "DaemonSet") => workload(object, &mut causes),
        ("", "ReplicationController") => {
            super::validate_replication::replication_controller(object, &mut causes)
        }
        ("policy", "PodDisruptionBudget") => disruption_budget(&object["spec"], &mut causes),
        ("scheduling.k8s.io", "PriorityClass") => {
            super::priority::validate_class(object, &mut causes)
        }
        ("", "ResourceQuota") => super::quota::validate::quota(object, &mut causes),
        ("", "LimitRange") => super::limit_range::validate(object, &mut causes),
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => {
            super::validate_rbac::role(object, resource.kind == "Role", &mut causes)
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            super::validate_rbac::binding(object, resource.kind == "RoleBinding", &mut causes)
        }
        ("apps", "StatefulSet") => {
            workload(object, &mut causes);
            super::validate_statefulset::stateful_set(object, &mut causes);
        }
        ("batch", "Job") => {
            pod_template_spec(
                &object["spec"]["template"]["spec"],
                "spec.template.spec",
                &mut causes,
            );
            job(&object["spec"], "spec", &mut causes);
        }
        ("batch", "CronJob") => {
            match object["spec"]["schedule"]
                .as_str()
                .filter(|s| !s.is_empty())
            {
                None => causes.push(FieldCause::required("spec.schedule")),
                Some(text) => {
                    if let Err(why) = crate::schedule::Schedule::parse(text) {
                        causes.push(FieldCause::invalid("spec.schedule", text, &why));
                    }
                }
            }
            if let Some(zone) = object["spec"]["timeZone"]
                .as_str()
                .filter(|z| !matches!(*z, "UTC" | "Etc/UTC"))
            {
                causes.push(FieldCause::invalid(
                    "spec.timeZone",
                    zone,
                    "bosun schedules CronJobs in UTC only",
                ));
            }
            job(
                &object["spec"]["jobTemplate"]["spec"],
                "spec.jobTemplate.spec",
                &mut causes,
            );
            pod_template_spec(
                &object["spec"]["jobTemplate"]["spec"]["template"]["spec"],
                "spec.jobTemplate.spec.template.spec",
                &mut causes,
            )
        }
        ("autoscaling", "HorizontalPodAutoscaler") => {
            super::validate_hpa::horizontal_pod_autoscaler(object, &mut causes)
        }
        ("", "Pod") => {
            pod_spec(&object["spec"], "spec", &mut causes);
            super::pod_ephemeral::check(object, old, &mut causes);
        }
        ("", "PersistentVolume") => super::validate_storage::persistent_volume(object, &mut causes),
        ("", "PersistentVolumeClaim") => {
            super::validate_storage::persistent_volume_claim(object, &mut causes)
        }
        ("storage.k8s.io", "StorageClass") => {
            super::validate_storage::storage_class(object, &mut causes)
        }
        ("", "Service") => {
            let external = object["spec"]["type"] == "ExternalName";
            let headless = object["spec"]["clusterIP"] == "None";
            let no_ports = object["spec"]["ports"].as_array().is_none_or(Vec::is_empty);
            if no_ports && !external && !headless {
                causes.push(FieldCause::required("spec.ports"));
            }
        }
        _ => {}
    }
    if causes.is_empty() {
        return Ok(());
    }
    Err(ApiError::invalid(
        &resource.group_kind(),
        resource.kind,
        name,
        &causes,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployments() -> &'static Resource {
        crate::kinds::find("apps", "v1", "deployments").unwrap()
    }

    fn check_typed_t(
        object: &mut Value,
        resource: &Resource,
        validation: FieldValidation,
    ) -> Result<Vec<String>, ApiError> {
        check_typed(object, &[], resource, validation)
    }

    #[test]
    fn duplicate_fields_are_refused_under_strict() {
        let body = br#"{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"web","name":"web"}}"#;
        let mut decoded = decode_body("application/json", body).unwrap();
        let e = check_typed(
            &mut decoded.object,
            &decoded.duplicates,
            deployments(),
            FieldValidation::Strict,
        )
        .unwrap_err();
        assert!(
            e.message
                .ends_with(r#"strict decoding error: duplicate field "metadata.name""#),
            "{}",
            e.message
        );
    }

    fn deployment() -> Value {
        json!({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
            "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "web"}},
              "template": {"metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "c", "image": "i"}]}}}})
    }

    #[test]
    fn type_errors_name_the_field_path() {
        let mut d = deployment();
        d["spec"]["replicas"] = json!("x");
        let e = check_typed_t(&mut d, deployments(), FieldValidation::Strict).unwrap_err();
        assert_eq!(e.code, 400);
        assert!(
            e.message
                .contains("spec.replicas: invalid type: string \"x\""),
            "{}",
            e.message
        );
        let mut d = deployment();
        d["kind"] = json!("ReplicaSet");
        assert!(check_typed_t(&mut d, deployments(), FieldValidation::Strict).is_err());
    }

    #[test]
    fn unknown_fields_are_refused_warned_or_ignored() {
        let mut d = deployment();
        d["spec"]["replicaz"] = json!(1);
        d["spec"]["template"]["spec"]["containers"][0]["imagez"] = json!("x");
        let e = check_typed_t(&mut d.clone(), deployments(), FieldValidation::Strict).unwrap_err();
        assert!(
            e.message.ends_with("strict decoding error: unknown field \"spec.replicaz\", unknown field \"spec.template.spec.containers[0].imagez\""),
            "{}",
            e.message
        );
        let mut warned = d.clone();
        let warnings = check_typed_t(&mut warned, deployments(), FieldValidation::Warn).unwrap();
        assert_eq!(warnings.len(), 2);
        assert!(
            warned["spec"].get("replicaz").is_none(),
            "unknown fields are not stored"
        );
        assert!(
            check_typed_t(&mut d, deployments(), FieldValidation::Ignore)
                .unwrap()
                .is_empty()
        );
        let mut ok = deployment();
        assert!(
            check_typed_t(&mut ok, deployments(), FieldValidation::Strict)
                .unwrap()
                .is_empty()
        );
        let secrets = crate::kinds::find("", "v1", "secrets").unwrap();
        let mut s = json!({"metadata": {"name": "s"}, "data": {"k": "dmFsdWU="}, "stringData": {"a": "b"}, "type": "Opaque"});
        assert!(check_typed_t(&mut s, secrets, FieldValidation::Strict)
            .unwrap()
            .is_empty());
        assert_eq!(s["data"], json!({"k": "dmFsdWU=", "a": "Yg=="}));
        assert!(s.get("stringData").is_none());
    }

    #[test]
    fn semantic_errors_are_invalid_with_causes() {
        assert!(check_semantics(&deployment(), None, deployments()).is_ok());
        let mut d = deployment();
        d["spec"]["selector"] = json!({});
        let e = check_semantics(&d, None, deployments()).unwrap_err();
        assert_eq!(
            e.message,
            "Deployment.apps \"web\" is invalid: spec.selector: Required value"
        );
        let mut d = deployment();
        d["spec"]["template"]["metadata"]["labels"] = json!({"app": "db"});
        let e = check_semantics(&d, None, deployments()).unwrap_err();
        assert!(
            e.message
                .contains("`selector` does not match template `labels`"),
            "{}",
            e.message
        );
        let empty_envelope = decode_body("application/vnd.kubernetes.protobuf", b"k8s\0");
        assert_eq!(empty_envelope.unwrap_err().code, 400);
        assert_eq!(
            decode_body("application/cbor", b"{}").unwrap_err().code,
            415
        );
    }
}
