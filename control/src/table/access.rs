//! Printers of the RBAC kinds, as kube-apiserver's: roles and cluster roles (NAME, CREATED AT,
//! as LimitRanges),
//! role bindings and cluster role bindings (NAME, ROLE as `Kind/name`, AGE; `-o wide` adds
//! their USERS, GROUPS and SERVICEACCOUNTS as `namespace:name`); ValidatingAdmissionPolicies
//! (NAME, VALIDATIONS, PARAMKIND, AGE) and their bindings (NAME, POLICYNAME, PARAMREF, AGE).

use serde_json::Value;

use super::cells::{arr, col, s, wide, AGE, NAME};
use super::Printer;

/// NAME and CREATED AT (roles, cluster roles; LimitRanges print the same).
pub static CREATED: Printer = Printer {
    columns: &[
        NAME,
        col("Created At", "date", "CreationTimestamp is a timestamp representing the server time when this object was created. It is not guaranteed to be set in happens-before order across separate operations. Clients may not set this value. It is represented in RFC3339 form and is in UTC."),
    ],
    cells: |o, _| {
        vec![
            super::cells::name(o),
            Value::from(s(o, &["metadata", "creationTimestamp"])),
        ]
    },
};

pub static BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace. If the RoleRef cannot be resolved, the Authorizer must return an error. This field is immutable."),
        AGE,
        wide("Users", "string", "Users in the roleBinding"),
        wide("Groups", "string", "Groups in the roleBinding"),
        wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
    ],
    cells: |o, now| {
        let subjects = |kind: &str| -> Value {
            let names: Vec<String> = arr(o, &["subjects"])
                .iter()
                .filter(|subject| s(subject, &["kind"]) == kind)
                .map(|subject| match kind {
                    "ServiceAccount" => {
                        format!("{}:{}", s(subject, &["namespace"]), s(subject, &["name"]))
                    }
                    _ => s(subject, &["name"]).to_owned(),
                })
                .collect();
            Value::from(names.join(", "))
        };
        vec![
            super::cells::name(o),
            Value::from(format!(
                "{}/{}",
                s(o, &["roleRef", "kind"]),
                s(o, &["roleRef", "name"])
            )),
            super::cells::age(o, now),
            subjects("User"),
            subjects("Group"),
            subjects("ServiceAccount"),
        ]
    },
};

/// kubectl's columns of a ValidatingAdmissionPolicy.
pub static ADMISSION_POLICY: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Validations",
            "integer",
            "Validations indicates the number of validation rules defined in this configuration",
        ),
        col(
            "ParamKind",
            "string",
            "ParamKind specifies the kind of resources used to parameterize this policy",
        ),
        AGE,
    ],
    cells: |o, now| {
        let param_kind = match &o["spec"]["paramKind"] {
            Value::Null => "<unset>".to_owned(),
            kind => format!("{}/{}", s(kind, &["apiVersion"]), s(kind, &["kind"])),
        };
        vec![
            super::cells::name(o),
            Value::from(arr(o, &["spec", "validations"]).len()),
            Value::from(param_kind),
            super::cells::age(o, now),
        ]
    },
};

/// kubectl's columns of a ValidatingAdmissionPolicyBinding.
pub static ADMISSION_POLICY_BINDING: Printer = Printer {
    columns: &[
        NAME,
        col("PolicyName", "string", "PolicyName references a ValidatingAdmissionPolicy name which the ValidatingAdmissionPolicyBinding binds to. If the referenced resource does not exist, this binding is considered invalid and will be ignored Required."),
        col("ParamRef", "string", "ParamRef specifies the parameter resource used to configure the admission control policy."),
        AGE,
    ],
    cells: |o, now| {
        let param_ref = match &o["spec"]["paramRef"] {
            Value::Null => "<unset>".to_owned(),
            reference => match (s(reference, &["namespace"]), s(reference, &["name"])) {
                ("", name) => format!("*/{name}"),
                (namespace, name) => format!("{namespace}/{name}"),
            },
        };
        vec![
            super::cells::name(o),
            Value::from(s(o, &["spec", "policyName"])),
            Value::from(param_ref),
            super::cells::age(o, now),
        ]
    },
};

/// kubectl's columns of a Validating- or MutatingWebhookConfiguration.
pub static WEBHOOK_CONFIGURATION: Printer = Printer {
    columns: &[
        NAME,
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks included in this configuration",
        ),
        AGE,
    ],
    cells: |o, now| {
        vec![
            super::cells::name(o),
            Value::from(arr(o, &["webhooks"]).len()),
            super::cells::age(o, now),
        ]
    },
};
