//! Kubernetes Tables (`meta.k8s.io/v1` Table): what `kubectl get` asks for (`Accept:
//! application/json;as=Table;v=v1;g=meta.k8s.io,…`) and prints column by column. One printer
//! per kind, with kube-apiserver's columns and cell logic (`pkg/printers/internalversion`):
//! `workloads` (pods, deployments, replicasets, statefulsets, daemonsets, jobs, HPAs),
//! `network` (services, endpoints, endpointslices, ingresses, ingressclasses),
//! `config_storage` (configmaps, secrets, serviceaccounts, PVs, PVCs, storage classes, CSI),
//! `cluster` (namespaces, nodes, events, leases), `access` (the RBAC kinds); any other kind gets NAME and AGE. Printers read
//! the objects' JSON and never panic on missing fields (they print what Go's zero values
//! would). Pure: no I/O, the caller passes `now`.

mod access;
mod cells;

/// The string form of a LabelSelector (also what a Scale's `status.selector` holds).
pub use cells::selector_string;
mod cluster;
mod config_storage;
mod network;
mod workloads;

use serde_json::{json, Map, Value};
use time::OffsetDateTime;

pub use cells::{human_duration, Column};

use crate::kinds::Resource;

/// `?includeObject=`: what each row's `object` carries.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IncludeObject {
    /// No object.
    None,
    /// A `PartialObjectMetadata` (the default; what kubectl asks for).
    #[default]
    Metadata,
    /// The whole object.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query value (`None`, `Metadata`, `Object`; empty is the
    /// default). Unknown values are None here; the caller refuses them with a 400 naming the
    /// parameter, as kube-apiserver does.
    pub fn parse(value: &str) -> Option<IncludeObject> {
        match value {
            "" | "Metadata" => Some(IncludeObject::Metadata),
            "None" => Some(IncludeObject::None),
            "Object" => Some(IncludeObject::Object),
            _ => None,
        }
    }
}

/// How to build a Table.
#[derive(Clone, Copy, Debug)]
pub struct TableOptions {
    pub include_object: IncludeObject,
    /// Leave out `columnDefinitions`. kube-apiserver sets this for every watch event after the
    /// first (one Table per event, headers once); list pages, continued or not, carry them.
    pub no_headers: bool,
    /// The time ages are measured to.
    pub now: OffsetDateTime,
}

/// A printer: its columns and a function giving one row's cells (one per column, in order).
pub(crate) struct Printer {
    pub columns: &'static [Column],
    pub cells: fn(&Value, OffsetDateTime) -> Vec<Value>,
}

/// The Table of `objects` (all of `resource`'s kind). `metadata` is left empty: the caller
/// copies into it the list's `resourceVersion`, `continue` and `remainingItemCount` (or, for a
/// single object, its `resourceVersion`), as kube-apiserver's `ConvertToTable` does.
pub fn to_table(resource: &Resource, objects: &[Value], options: &TableOptions) -> Value {
    if resource.custom {
        let (definitions, columns) = crate::crd::custom::table_columns(resource);
        let cells = |o: &Value, now| crate::crd::custom::cells(o, &columns, now);
        return build_with(definitions, &cells, objects, options);
    }
    build(printer(resource), objects, options)
}

/// The Table of ComponentStatuses (served, never stored: not in the kinds table).
pub fn component_status_table(objects: &[Value], options: &TableOptions) -> Value {
    build(&cluster::COMPONENT_STATUS, objects, options)
}

fn build(printer: &Printer, objects: &[Value], options: &TableOptions) -> Value {
    let columns: Vec<Value> = printer
        .columns
        .iter()
        .map(|c| {
            json!({
                "name": c.name,
                "type": c.kind,
                "format": c.format,
                "description": c.description,
                "priority": c.priority,
            })
        })
        .collect();
    build_with(columns, &printer.cells, objects, options)
}

/// A Table of these column definitions, each row's cells from `cells`.
fn build_with(
    columns: Vec<Value>,
    cells: &dyn Fn(&Value, OffsetDateTime) -> Vec<Value>,
    objects: &[Value],
    options: &TableOptions,
) -> Value {
    let mut table = Map::new();
    table.insert("kind".into(), json!("Table"));
    table.insert("apiVersion".into(), json!("meta.k8s.io/v1"));
    table.insert("metadata".into(), json!({}));
    let count = columns.len();
    if !options.no_headers {
        table.insert("columnDefinitions".into(), Value::Array(columns));
    }
    let rows: Vec<Value> = objects
        .iter()
        .map(|object| {
            let mut cells = cells(object, options.now);
            // A printer bug must not shift columns: pad or cut to the column count.
            cells.resize(count, Value::Null);
            let mut row = json!({ "cells": cells });
            match options.include_object {
                IncludeObject::None => {}
                IncludeObject::Metadata => row["object"] = partial_metadata(object),
                IncludeObject::Object => row["object"] = object.clone(),
            }
            row
        })
        .collect();
    table.insert("rows".into(), Value::Array(rows));
    Value::Object(table)
}

/// `PartialObjectMetadata` of an object.
fn partial_metadata(object: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": object.get("metadata").cloned().unwrap_or_else(|| json!({})),
    })
}

/// The printer of a resource's kind.
fn printer(resource: &Resource) -> &'static Printer {
    match (resource.group, resource.kind) {
        ("", "Pod") => &workloads::POD,
        ("apps", "Deployment") => &workloads::DEPLOYMENT,
        ("apps", "ReplicaSet") | ("", "ReplicationController") => &workloads::REPLICA_SET,
        ("apps", "StatefulSet") => &workloads::STATEFUL_SET,
        ("apps", "DaemonSet") => &workloads::DAEMON_SET,
        ("batch", "Job") => &workloads::JOB,
        ("batch", "CronJob") => &workloads::CRON_JOB,
        ("policy", "PodDisruptionBudget") => &workloads::POD_DISRUPTION_BUDGET,
        ("scheduling.k8s.io", "PriorityClass") => &workloads::PRIORITY_CLASS,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicy") => &access::ADMISSION_POLICY,
        ("admissionregistration.k8s.io", "ValidatingAdmissionPolicyBinding") => {
            &access::ADMISSION_POLICY_BINDING
        }
        (
            "admissionregistration.k8s.io",
            "MutatingWebhookConfiguration" | "ValidatingWebhookConfiguration",
        ) => &access::WEBHOOK_CONFIGURATION,
        ("rbac.authorization.k8s.io", "Role" | "ClusterRole") => &access::CREATED,
        ("", "LimitRange") => &access::CREATED,
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => &access::BINDING,
        ("autoscaling", "HorizontalPodAutoscaler") => &workloads::HPA,
        ("", "Service") => &network::SERVICE,
        ("", "Endpoints") => &network::ENDPOINTS,
        ("discovery.k8s.io", "EndpointSlice") => &network::ENDPOINT_SLICE,
        ("networking.k8s.io", "Ingress") => &network::INGRESS,
        ("networking.k8s.io", "IngressClass") => &network::INGRESS_CLASS,
        ("", "ConfigMap") => &config_storage::CONFIG_MAP,
        ("", "Secret") => &config_storage::SECRET,
        ("", "ServiceAccount") => &config_storage::SERVICE_ACCOUNT,
        ("", "PersistentVolume") => &config_storage::PERSISTENT_VOLUME,
        ("", "PersistentVolumeClaim") => &config_storage::PERSISTENT_VOLUME_CLAIM,
        ("", "ResourceQuota") => &config_storage::RESOURCE_QUOTA,
        ("storage.k8s.io", "StorageClass") => &config_storage::STORAGE_CLASS,
        ("storage.k8s.io", "CSIDriver") => &config_storage::CSI_DRIVER,
        ("storage.k8s.io", "CSINode") => &config_storage::CSI_NODE,
        ("", "Namespace") => &cluster::NAMESPACE,
        ("", "Node") => &cluster::NODE,
        ("", "Event") => &cluster::EVENT,
        ("events.k8s.io", "Event") => &cluster::EVENT,
        ("coordination.k8s.io", "Lease") => &cluster::LEASE,
        ("certificates.k8s.io", "CertificateSigningRequest") => &cluster::CSR,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => &access::CREATED,
        _ => &DEFAULT,
    }
}

/// NAME and AGE, for any kind without a printer.
static DEFAULT: Printer = Printer {
    columns: &[cells::NAME, cells::AGE],
    cells: |o, now| vec![cells::name(o), cells::age(o, now)],
};

#[cfg(test)]
mod tests;
