//! ValidatingAdmissionPolicies with the real kubectl: a Deny binding refuses creates, scales
//! (the `scale` subresource), label edits and deletes its policy fails, in kube's words and
//! with the validation's reason; the binding's namespace selector and the policy's object
//! selector limit what it sees; a Warn binding's failure is a kubectl warning; an expression
//! that cannot be evaluated refuses the request unless `failurePolicy` is Ignore; policies
//! whose expressions do not compile, or that use what bosun does not honour, are refused.

mod common;

use common::{ok, stderr, Control};

const POLICIES: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: replica-limit}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments, deployments/scale]}
  variables:
  - {name: replicas, expression: "has(object.spec.replicas) ? object.spec.replicas : 1"}
  validations:
  - expression: variables.replicas <= 5
    messageExpression: "'replicas must be at most 5, not ' + string(variables.replicas)"
  - expression: "!has(object.metadata.labels) || !('forbidden' in object.metadata.labels)"
    message: the forbidden label is forbidden
    reason: Forbidden
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: replica-limit-prod}
spec:
  policyName: replica-limit
  validationActions: [Deny]
  matchResources:
    namespaceSelector: {matchLabels: {env: prod}}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: no-latest}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}
  validations:
  - expression: "object.spec.template.spec.containers.all(c, !c.image.endsWith(':latest'))"
    message: images must not use the latest tag
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: no-latest-warn}
spec: {policyName: no-latest, validationActions: [Warn]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: keep-protected}
spec:
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [DELETE], resources: [configmaps]}
    objectSelector: {matchLabels: {protected: "true"}}
  validations:
  - {expression: "request.userInfo.username == 'nobody'", message: protected configmaps stay}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: keep-protected}
spec: {policyName: keep-protected, validationActions: [Deny]}
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: broken}
spec:
  failurePolicy: Fail
  matchConstraints:
    resourceRules:
    - {apiGroups: [""], apiVersions: [v1], operations: [CREATE], resources: [secrets]}
  validations:
  - expression: object.data.nope == 'x'
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: broken}
spec: {policyName: broken, validationActions: [Deny]}
"#;

fn write(control: &Control, name: &str, text: &str) -> String {
    let path = control.dir.path().join(name);
    std::fs::write(&path, text).expect("write manifest");
    path.to_string_lossy().into_owned()
}

fn refused(out: std::process::Output, expected: &str) {
    assert!(!out.status.success(), "accepted; expected {expected}");
    assert!(stderr(&out).contains(expected), "{}", stderr(&out));
}

#[test]
fn admission_policies_deny_and_warn_as_kube_does() {
    let control = Control::start();
    let policies = write(&control, "policies.yaml", POLICIES);
    ok(control.kubectl(&["apply", "-f", &policies]));
    let table = ok(control.kubectl(&["get", "validatingadmissionpolicies"]));
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    assert_eq!(
        header,
        ["NAME", "VALIDATIONS", "PARAMKIND", "AGE"],
        "{table}"
    );
    assert!(
        table.contains("replica-limit") && table.contains("<unset>"),
        "{table}"
    );
    // kube's defaults
    let defaults = ok(control.kubectl(&[
        "get",
        "validatingadmissionpolicy",
        "replica-limit",
        "-o",
        "jsonpath={.spec.failurePolicy} {.spec.matchConstraints.matchPolicy} {.spec.matchConstraints.resourceRules[0].scope}",
    ]));
    assert_eq!(defaults, "Fail Equivalent *");
    ok(control.kubectl(&["create", "namespace", "prod"]));
    ok(control.kubectl(&["label", "namespace", "prod", "env=prod"]));

    // Deny, in the namespaces the binding selects only
    refused(
        control.kubectl(&[
            "create",
            "deployment",
            "web",
            "-n",
            "prod",
            "--image=nginx:1.27",
            "--replicas=7",
        ]),
        r#"deployments.apps "web" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-prod' denied request: replicas must be at most 5, not 7"#,
    );
    ok(control.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "default",
        "--image=nginx:1.27",
        "--replicas=7",
    ]));
    ok(control.kubectl(&[
        "create",
        "deployment",
        "web",
        "-n",
        "prod",
        "--image=nginx:1.27",
        "--replicas=2",
    ]));
    refused(
        control.kubectl(&["scale", "deployment", "web", "-n", "prod", "--replicas=9"]),
        "denied request: replicas must be at most 5, not 9",
    );
    ok(control.kubectl(&["scale", "deployment", "web", "-n", "prod", "--replicas=4"]));
    // the validation's reason chooses the answer: 403 Forbidden
    refused(
        control.kubectl(&["label", "deployment", "web", "-n", "prod", "forbidden=yes"]),
        "Error from server (Forbidden): deployments.apps \"web\" is forbidden: ValidatingAdmissionPolicy 'replica-limit' with binding 'replica-limit-prod' denied request: the forbidden label is forbidden",
    );

    // Warn: the create goes through, kubectl prints the warning
    let out = control.kubectl(&["create", "deployment", "edge", "--image=nginx:latest"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("Warning: Validation failed for ValidatingAdmissionPolicy 'no-latest' with binding 'no-latest-warn': images must not use the latest tag"),
        "{}",
        stderr(&out)
    );

    // DELETE, with an object selector
    ok(control.kubectl(&["create", "configmap", "keep", "--from-literal=a=b"]));
    ok(control.kubectl(&["label", "configmap", "keep", "protected=true"]));
    ok(control.kubectl(&["create", "configmap", "scratch", "--from-literal=a=b"]));
    refused(
        control.kubectl(&["delete", "configmap", "keep"]),
        "denied request: protected configmaps stay",
    );
    ok(control.kubectl(&["delete", "configmap", "scratch"]));

    // an expression that cannot be evaluated fails the request under failurePolicy Fail …
    refused(
        control.kubectl(&["create", "secret", "generic", "s1", "--from-literal=a=b"]),
        "denied request: expression 'object.data.nope == 'x'' resulted in error: no such key: nope",
    );
    // … and lets it pass under Ignore
    let ignore = POLICIES
        .split("---")
        .find(|doc| doc.contains("name: broken}") && doc.contains("failurePolicy"))
        .unwrap_or("")
        .replace("failurePolicy: Fail", "failurePolicy: Ignore");
    let path = write(&control, "ignore.yaml", &ignore);
    ok(control.kubectl(&["apply", "-f", &path]));
    common::wait_until(
        "the Ignore policy to apply",
        std::time::Duration::from_secs(20),
        || {
            control
                .kubectl(&["create", "secret", "generic", "s1", "--from-literal=a=b"])
                .status
                .success()
        },
    );
}

const PARAMETERIZED: &str = r#"
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicy
metadata: {name: max-replicas}
spec:
  paramKind: {apiVersion: v1, kind: ConfigMap}
  matchConstraints:
    resourceRules:
    - {apiGroups: [apps], apiVersions: [v1], operations: [CREATE, UPDATE], resources: [deployments]}
  validations:
  - expression: object.spec.replicas <= int(params.data.maxReplicas)
    messageExpression: "'at most ' + params.data.maxReplicas + ' replicas in ' + request.namespace"
---
apiVersion: admissionregistration.k8s.io/v1
kind: ValidatingAdmissionPolicyBinding
metadata: {name: max-replicas}
spec:
  policyName: max-replicas
  validationActions: [Deny]
  paramRef: {name: replica-limits, parameterNotFoundAction: Deny}
"#;

/// A policy with parameters: the binding's `paramRef` names a ConfigMap, looked up in the
/// request's namespace; without it the binding's `parameterNotFoundAction: Deny` refuses.
#[test]
fn parameterized_policies_read_their_params_per_namespace() {
    let control = Control::start();
    let path = write(&control, "params.yaml", PARAMETERIZED);
    ok(control.kubectl(&["apply", "-f", &path]));
    refused(
        control.kubectl(&["create", "deployment", "web", "--image=nginx:1.27", "--replicas=2"]),
        "denied request: failed to configure binding: no params found for policy binding with `Deny` parameterNotFoundAction",
    );
    ok(control.kubectl(&[
        "create",
        "configmap",
        "replica-limits",
        "--from-literal=maxReplicas=3",
    ]));
    common::wait_until(
        "the params to count",
        std::time::Duration::from_secs(20),
        || {
            let out = control.kubectl(&[
                "create",
                "deployment",
                "big",
                "--image=nginx:1.27",
                "--replicas=5",
            ]);
            stderr(&out).contains("denied request: at most 3 replicas in default")
        },
    );
    ok(control.kubectl(&[
        "create",
        "deployment",
        "web",
        "--image=nginx:1.27",
        "--replicas=2",
    ]));
    ok(control.kubectl(&["create", "namespace", "other"]));
    ok(control.kubectl(&[
        "create",
        "configmap",
        "replica-limits",
        "-n",
        "other",
        "--from-literal=maxReplicas=9",
    ]));
    ok(control.kubectl(&[
        "create",
        "deployment",
        "big",
        "-n",
        "other",
        "--image=nginx:1.27",
        "--replicas=5",
    ]));
}

#[test]
fn policies_kube_or_bosun_would_not_run_are_refused_naming_the_field() {
    let control = Control::start();
    let policy = |spec: &str| {
        format!("apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicy\nmetadata: {{name: p}}\nspec:\n  matchConstraints:\n    resourceRules:\n    - {{apiGroups: [apps], apiVersions: [v1], operations: [CREATE], resources: [deployments]}}\n{spec}")
    };
    for (name, text, expected) in [
        (
            "syntax.yaml",
            policy("  validations:\n  - expression: 'object.spec.replicas >'\n"),
            "spec.validations[0].expression: Invalid value: \"object.spec.replicas >\": compilation failed: ERROR: <input>:1:",
        ),
        (
            "unknown.yaml",
            policy("  validations:\n  - expression: authorizer != null\n"),
            "undeclared reference to 'authorizer' (in container '')",
        ),
        (
            "params.yaml",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec: {policyName: p, validationActions: [Deny], paramRef: {name: x}}\n".to_owned(),
            "spec.paramRef.parameterNotFoundAction: Required value",
        ),
        (
            "empty.yaml",
            policy(""),
            "spec.validations: Required value: validations or auditAnnotations must contain at least one item",
        ),
        (
            "binding.yaml",
            "apiVersion: admissionregistration.k8s.io/v1\nkind: ValidatingAdmissionPolicyBinding\nmetadata: {name: b}\nspec: {policyName: p, validationActions: [Deny, Warn]}\n".to_owned(),
            "spec.validationActions: Invalid value",
        ),
        (
            "audit.yaml",
            policy("  auditAnnotations:\n  - {key: 'bad key', valueExpression: \"'x'\"}\n"),
            "spec.auditAnnotations[0].key: Invalid value: \"bad key\": name part must consist of alphanumeric characters",
        ),
    ] {
        let path = write(&control, name, &text);
        refused(control.kubectl(&["apply", "-f", &path]), expected);
    }
}
