//! `components.schemas` of one group-version document, generated from the k8s-openapi types'
//! `schemars` implementations (named the Kubernetes way, `io.k8s.api.apps.v1.Deployment`, so
//! `#/components/schemas/…` references resolve). Each kind of the kinds table maps to its Rust
//! type here, in one table; its schema gets `x-kubernetes-group-version-kind`, and a `…List`
//! schema is added beside it. Fields with a patch strategy get `x-kubernetes-patch-strategy`
//! and `x-kubernetes-patch-merge-key` from the strategic merge patch's table, as in
//! Kubernetes' own documents: kubectl builds its strategic merge patches from them.

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, certificates::v1 as certificates, coordination::v1 as coordination,
    core::v1 as core, discovery::v1 as discovery, events::v1 as events,
    networking::v1 as networking, policy::v1 as policy, rbac::v1 as rbac,
    scheduling::v1 as scheduling, storage::v1 as storage,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use schemars::gen::{SchemaGenerator, SchemaSettings};
use schemars::schema::Schema;
use schemars::JsonSchema;
use serde_json::{json, Map, Value};

use crate::kinds::Resource;

/// Adds the schema of one type (and everything it references) to the generator and returns
/// its schema name.
type AddSchema = fn(&mut SchemaGenerator) -> String;

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name()
}

/// Every kind of the kinds table and its k8s-openapi type: (group, version, kind, adder).
#[rustfmt::skip]
const TYPES: &[(&str, &str, &str, AddSchema)] = &[
    ("", "v1", "Namespace", add::<core::Namespace>),
    ("", "v1", "Pod", add::<core::Pod>),
    ("", "v1", "Service", add::<core::Service>),
    ("", "v1", "Endpoints", add::<core::Endpoints>),
    ("", "v1", "ConfigMap", add::<core::ConfigMap>),
    ("", "v1", "Secret", add::<core::Secret>),
    ("", "v1", "Node", add::<core::Node>),
    ("", "v1", "Event", add::<core::Event>),
    ("", "v1", "PersistentVolume", add::<core::PersistentVolume>),
    ("", "v1", "PersistentVolumeClaim", add::<core::PersistentVolumeClaim>),
    ("", "v1", "ResourceQuota", add::<core::ResourceQuota>),
    ("", "v1", "LimitRange", add::<core::LimitRange>),
    ("", "v1", "ServiceAccount", add::<core::ServiceAccount>),
    ("", "v1", "ReplicationController", add::<core::ReplicationController>),
    // Not stored, so not in the kinds table: served by `api::component_status`.
    ("", "v1", "ComponentStatus", add::<core::ComponentStatus>),
    ("apps", "v1", "Deployment", add::<apps::Deployment>),
    ("apps", "v1", "ReplicaSet", add::<apps::ReplicaSet>),
    ("apps", "v1", "StatefulSet", add::<apps::StatefulSet>),
    ("apps", "v1", "DaemonSet", add::<apps::DaemonSet>),
    ("apps", "v1", "ControllerRevision", add::<apps::ControllerRevision>),
    ("batch", "v1", "Job", add::<batch::Job>),
    ("batch", "v1", "CronJob", add::<batch::CronJob>),
    ("discovery.k8s.io", "v1", "EndpointSlice", add::<discovery::EndpointSlice>),
    ("networking.k8s.io", "v1", "Ingress", add::<networking::Ingress>),
    ("networking.k8s.io", "v1", "IngressClass", add::<networking::IngressClass>),
    ("storage.k8s.io", "v1", "StorageClass", add::<storage::StorageClass>),
    ("storage.k8s.io", "v1", "CSIDriver", add::<storage::CSIDriver>),
    ("storage.k8s.io", "v1", "CSINode", add::<storage::CSINode>),
    ("coordination.k8s.io", "v1", "Lease", add::<coordination::Lease>),
    ("certificates.k8s.io", "v1", "CertificateSigningRequest", add::<certificates::CertificateSigningRequest>),
    ("policy", "v1", "PodDisruptionBudget", add::<policy::PodDisruptionBudget>),
    ("scheduling.k8s.io", "v1", "PriorityClass", add::<scheduling::PriorityClass>),
    ("rbac.authorization.k8s.io", "v1", "Role", add::<rbac::Role>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRole", add::<rbac::ClusterRole>),
    ("rbac.authorization.k8s.io", "v1", "RoleBinding", add::<rbac::RoleBinding>),
    ("rbac.authorization.k8s.io", "v1", "ClusterRoleBinding", add::<rbac::ClusterRoleBinding>),
    ("autoscaling", "v2", "HorizontalPodAutoscaler", add::<autoscaling_v2::HorizontalPodAutoscaler>),
    ("autoscaling", "v1", "HorizontalPodAutoscaler", add::<autoscaling_v1::HorizontalPodAutoscaler>),
    ("events.k8s.io", "v1", "Event", add::<events::Event>),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicy", add::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicy>),
    ("admissionregistration.k8s.io", "v1", "ValidatingAdmissionPolicyBinding", add::<k8s_openapi::api::admissionregistration::v1::ValidatingAdmissionPolicyBinding>),
    ("admissionregistration.k8s.io", "v1", "MutatingWebhookConfiguration", add::<k8s_openapi::api::admissionregistration::v1::MutatingWebhookConfiguration>),
    ("admissionregistration.k8s.io", "v1", "ValidatingWebhookConfiguration", add::<k8s_openapi::api::admissionregistration::v1::ValidatingWebhookConfiguration>),
    ("apiextensions.k8s.io", "v1", "CustomResourceDefinition", add::<k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition>),
];

/// The adder of a resource's kind, if the table has it.
pub fn adder(resource: &Resource) -> Option<AddSchema> {
    TYPES
        .iter()
        .find(|(g, v, k, _)| *g == resource.group && *v == resource.version && *k == resource.kind)
        .map(|entry| entry.3)
}

/// Schema names of the shared types every document's operations reference.
pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";

/// The k8s-openapi type of each review kind (`discovery::REVIEW_GROUPS`).
#[rustfmt::skip]
const REVIEW_TYPES: &[(&str, AddSchema)] = &[
    ("SelfSubjectReview", add::<k8s_openapi::api::authentication::v1::SelfSubjectReview>),
    ("SelfSubjectAccessReview", add::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>),
    ("SelfSubjectRulesReview", add::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>),
    ("TokenReview", add::<k8s_openapi::api::authentication::v1::TokenReview>),
    ("SubjectAccessReview", add::<k8s_openapi::api::authorization::v1::SubjectAccessReview>),
    ("LocalSubjectAccessReview", add::<k8s_openapi::api::authorization::v1::LocalSubjectAccessReview>),
];

/// The schemas of a review group's document (`reviews` describe its review kinds) and the
/// name of each review's schema (None for a kind without a type here).
pub fn build_reviews(reviews: &[Resource]) -> (Map<String, Value>, Vec<Option<String>>) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    add::<meta::Status>(&mut generator);
    let names: Vec<Option<String>> = reviews
        .iter()
        .map(|r| {
            REVIEW_TYPES
                .iter()
                .find(|(kind, _)| *kind == r.kind)
                .map(|(_, adder)| adder(&mut generator))
        })
        .collect();
    let mut schemas = finish(generator);
    for (review, name) in reviews.iter().zip(&names) {
        if let Some(schema) = name.as_ref().and_then(|n| schemas.get_mut(n)) {
            schema["x-kubernetes-group-version-kind"] = json!([gvk(review, review.kind)]);
        }
    }
    (schemas, names)
}

/// The schema name kube gives a custom resource's kind: the reversed group, the version and
/// the kind (`com.example.v1.Widget`).
pub fn custom_schema_name(resource: &Resource) -> String {
    let group: Vec<&str> = resource.group.split('.').rev().collect();
    format!("{}.{}.{}", group.join("."), resource.version, resource.kind)
}

/// The schemas of a custom group-version document: the shared meta types, and per resource
/// its CRD version's schema (with `apiVersion`, `kind` and ObjectMeta `metadata`, tagged
/// with its group-version-kind) and its list; returns them and each kind schema's name.
pub fn build_custom(resources: &[(&Resource, Value)]) -> (Map<String, Value>, Vec<String>) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    add::<meta::Status>(&mut generator);
    add::<meta::DeleteOptions>(&mut generator);
    add::<meta::ListMeta>(&mut generator);
    add::<meta::Patch>(&mut generator);
    let object_meta = add::<meta::ObjectMeta>(&mut generator);
    let mut schemas = finish(generator);
    let mut names = Vec::new();
    for (resource, schema) in resources {
        let name = custom_schema_name(resource);
        let mut kind_schema = schema.clone();
        if !kind_schema.is_object() {
            kind_schema = json!({"type": "object"});
        }
        if !kind_schema["properties"].is_object() {
            kind_schema["properties"] = json!({});
        }
        let properties = &mut kind_schema["properties"];
        properties["apiVersion"] = json!({"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."});
        properties["kind"] = json!({"type": "string", "description": "Kind is a string value representing the REST resource this object represents."});
        properties["metadata"] = json!({"allOf": [{"$ref": format!("#/components/schemas/{object_meta}")}], "description": "Standard object's metadata."});
        kind_schema["x-kubernetes-group-version-kind"] = json!([gvk(resource, resource.kind)]);
        schemas.insert(name.clone(), kind_schema);
        let list_kind = format!("{}List", resource.kind);
        schemas.insert(
            format!("{name}List"),
            list_schema(resource, &name, &list_kind),
        );
        names.push(name);
    }
    (schemas, names)
}

/// The generator's definitions as JSON, with its visitors run on each of them.
fn finish(mut generator: SchemaGenerator) -> Map<String, Value> {
    let mut definitions = generator.take_definitions();
    // The settings' visitors (a `$ref` with siblings becomes `allOf: [$ref]`, as in
    // Kubernetes' own documents) only run on root schemas: run them on every definition.
    for schema in definitions.values_mut() {
        for visitor in generator.visitors_mut() {
            visitor.visit_schema(schema);
        }
    }
    definitions
        .into_iter()
        .map(|(name, schema)| (name, schema_json(&schema)))
        .collect()
}

/// Builds the schemas of one group-version document from `resources`; returns the schemas
/// map and, per resource (same order), the name of its kind schema (None for a kind the type
/// table lacks, which then gets no paths).
pub fn build(resources: &[&Resource]) -> (Map<String, Value>, Vec<Option<String>>) {
    let mut generator = SchemaSettings::openapi3().into_generator();
    add::<meta::Status>(&mut generator);
    add::<meta::DeleteOptions>(&mut generator);
    add::<meta::ListMeta>(&mut generator);
    add::<meta::Patch>(&mut generator);
    // The body of `serviceaccounts/token` (a subresource of its own kind), and of the access
    // reviews (not stored kinds): their protobuf bodies are decoded by these names.
    add::<k8s_openapi::api::authentication::v1::TokenRequest>(&mut generator);
    add::<k8s_openapi::api::authorization::v1::SelfSubjectAccessReview>(&mut generator);
    add::<k8s_openapi::api::authorization::v1::SelfSubjectRulesReview>(&mut generator);
    let names: Vec<Option<String>> = resources
        .iter()
        .map(|r| adder(r).map(|f| f(&mut generator)))
        .collect();
    let mut schemas = finish(generator);
    add_patch_extensions(&mut schemas);
    for (resource, name) in resources.iter().zip(&names) {
        let Some(name) = name else { continue };
        if let Some(schema) = schemas.get_mut(name) {
            schema["x-kubernetes-group-version-kind"] = json!([gvk(resource, resource.kind)]);
        }
        let list_kind = format!("{}List", resource.kind);
        schemas.insert(
            format!("{name}List"),
            list_schema(resource, name, &list_kind),
        );
    }
    (schemas, names)
}

/// Tags each property that has a patch strategy the way kube-apiserver's documents do. A bare
/// `$ref` property becomes `allOf: [$ref]` first (siblings of `$ref` are ignored in 3.0).
fn add_patch_extensions(schemas: &mut Map<String, Value>) {
    for (definition, field, strategy, key) in crate::api::merge_tags() {
        let Some(Value::Object(property)) = schemas
            .get_mut(*definition)
            .and_then(|d| d.get_mut("properties"))
            .and_then(|p| p.get_mut(*field))
        else {
            continue;
        };
        if let Some(reference) = property.remove("$ref") {
            property.insert("allOf".to_owned(), json!([{"$ref": reference}]));
        }
        property.insert("x-kubernetes-patch-strategy".to_owned(), json!(strategy));
        if !key.is_empty() {
            property.insert("x-kubernetes-patch-merge-key".to_owned(), json!(key));
        }
    }
}

/// Schema name of the `autoscaling/v1` Scale, the body of every `scale` subresource.
pub const SCALE: &str = "io.k8s.api.autoscaling.v1.Scale";

/// The schema name of each kind, keyed by (group, version, kind).
pub type KindSchemas =
    std::collections::HashMap<(&'static str, &'static str, &'static str), String>;

/// The schemas of every kind of the kinds table and of the Scale, and the name of each kind's
/// schema keyed by (group, version, kind): what the strategic merge patch walks.
pub fn catalog() -> (Map<String, Value>, KindSchemas) {
    let all: Vec<&Resource> = crate::kinds::RESOURCES.iter().collect();
    let mut generator = SchemaSettings::openapi3().into_generator();
    add::<autoscaling_v1::Scale>(&mut generator);
    let mut names = std::collections::HashMap::new();
    for r in &all {
        if let Some(f) = adder(r) {
            names.insert((r.group, r.version, r.kind), f(&mut generator));
        }
    }
    let schemas = generator
        .take_definitions()
        .into_iter()
        .map(|(name, schema)| (name, schema_json(&schema)))
        .collect();
    (schemas, names)
}

/// `{group, version, kind}` as the `x-kubernetes-group-version-kind` extension spells it.
pub fn gvk(resource: &Resource, kind: &str) -> Value {
    json!({"group": resource.group, "version": resource.version, "kind": kind})
}

fn schema_json(schema: &Schema) -> Value {
    serde_json::to_value(schema).unwrap_or_else(|_| json!({}))
}

fn list_schema(resource: &Resource, item: &str, list_kind: &str) -> Value {
    json!({
        "description": format!("{list_kind} is a list of {}.", resource.kind),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": {"type": "string", "description": "APIVersion defines the versioned schema of this representation of an object."},
            "kind": {"type": "string", "description": "Kind is a string value representing the REST resource this object represents."},
            "items": {
                "type": "array",
                "description": format!("List of {}.", resource.plural),
                "items": {"default": {}, "allOf": [{"$ref": format!("#/components/schemas/{item}")}]},
            },
            "metadata": {
                "default": {},
                "description": "Standard list metadata.",
                "allOf": [{"$ref": format!("#/components/schemas/{LIST_META}")}],
            },
        },
        "x-kubernetes-group-version-kind": [gvk(resource, list_kind)],
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kinds::RESOURCES;

    #[test]
    fn every_kind_of_the_kinds_table_has_a_type() {
        for r in RESOURCES {
            assert!(
                adder(r).is_some(),
                "{} {} has no type",
                r.group_version(),
                r.kind
            );
        }
    }

    #[test]
    fn refs_with_descriptions_become_all_of_and_all_resolve() {
        let deployments = crate::kinds::find("apps", "v1", "deployments").unwrap();
        let (schemas, names) = build(&[deployments]);
        assert_eq!(names, [Some("io.k8s.api.apps.v1.Deployment".to_owned())]);
        let spec = &schemas["io.k8s.api.apps.v1.Deployment"]["properties"]["spec"];
        assert_eq!(
            spec["allOf"][0]["$ref"],
            "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
        );
        let text = serde_json::to_string(&schemas).unwrap();
        for piece in text.split("\"$ref\":\"#/components/schemas/").skip(1) {
            let name = &piece[..piece.find('"').unwrap()];
            assert!(schemas.contains_key(name), "dangling $ref {name}");
        }
    }
}
