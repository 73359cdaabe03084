use serde_json::json;

use super::*;

fn restricted(spec: Value) -> String {
    describe(&evaluate(Level::Restricted, Version::Latest, &spec))
}

fn baseline(spec: Value) -> String {
    describe(&evaluate(Level::Baseline, Version::Latest, &spec))
}

#[test]
fn a_plain_pod_breaks_restricted_as_kube_says() {
    let spec = json!({"containers": [{"name": "app", "image": "nginx"}]});
    assert_eq!(
        restricted(spec.clone()),
        "allowPrivilegeEscalation != false (container \"app\" must set securityContext.allowPrivilegeEscalation=false), \
unrestricted capabilities (container \"app\" must set securityContext.capabilities.drop=[\"ALL\"]), \
runAsNonRoot != true (pod or container \"app\" must set securityContext.runAsNonRoot=true), \
seccompProfile (pod or container \"app\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\")"
    );
    assert_eq!(baseline(spec.clone()), "");
    assert!(evaluate(Level::Privileged, Version::Latest, &spec).is_empty());
}

#[test]
fn a_compliant_pod_passes_restricted() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
        "containers": [{"name": "app", "image": "nginx", "securityContext": {
            "allowPrivilegeEscalation": false,
            "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}}}],
        "volumes": [{"name": "cfg", "configMap": {"name": "c"}},
            {"name": "tmp", "emptyDir": {}}],
    });
    assert_eq!(restricted(spec), "");
}

#[test]
fn a_breakout_pod_breaks_baseline_in_kubes_order() {
    let spec = json!({
        "hostPID": true,
        "hostNetwork": true,
        "securityContext": {"sysctls": [{"name": "kernel.msgmax", "value": "1"}],
            "seccompProfile": {"type": "Unconfined"}},
        "containers": [
            {"name": "a", "image": "x", "ports": [{"containerPort": 80, "hostPort": 8080}],
             "securityContext": {"privileged": true, "procMount": "Unmasked",
                "capabilities": {"add": ["SYS_ADMIN", "CHOWN", "NET_ADMIN"]}}},
            {"name": "b", "image": "x", "securityContext": {"privileged": true}},
        ],
        "volumes": [{"name": "root", "hostPath": {"path": "/"}}],
    });
    assert_eq!(
        baseline(spec.clone()),
        "non-default capabilities (container \"a\" must not include \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add), \
host namespaces (hostNetwork=true, hostPID=true), \
hostPath volumes (volume \"root\"), \
hostPort (container \"a\" uses hostPort 8080), \
privileged (containers \"a\", \"b\" must not set securityContext.privileged=true), \
procMount (container \"a\" must not set securityContext.procMount to \"Unmasked\"), \
seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\"), \
forbidden sysctls (kernel.msgmax)"
    );
    // At restricted, the restricted checks stand in for the host path, capability and
    // seccomp ones.
    let text = restricted(spec);
    assert!(!text.contains("hostPath volumes"), "{text}");
    assert!(!text.contains("non-default capabilities"), "{text}");
    assert!(
        text.contains(
            "restricted volume types (volume \"root\" uses restricted volume type \"hostPath\")"
        ),
        "{text}"
    );
    assert!(
        text.contains("unrestricted capabilities (containers \"a\", \"b\" must set securityContext.capabilities.drop=[\"ALL\"]; container \"a\" must not include \"CHOWN\", \"NET_ADMIN\", \"SYS_ADMIN\" in securityContext.capabilities.add)"),
        "{text}"
    );
}

#[test]
fn explicit_bad_settings_are_named_by_who_set_them() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": false, "runAsUser": 0},
        "initContainers": [{"name": "init", "image": "x",
            "securityContext": {"runAsUser": 0, "seLinuxOptions": {"type": "spc_t"}}}],
        "containers": [{"name": "app", "image": "x",
            "securityContext": {"runAsNonRoot": false}}],
    });
    let text = restricted(spec);
    assert!(
        text.contains("runAsNonRoot != true (pod and container \"app\" must not set securityContext.runAsNonRoot=false)"),
        "{text}"
    );
    assert!(
        text.contains("runAsUser=0 (pod and container \"init\" must not set runAsUser=0)"),
        "{text}"
    );
    assert!(
        text.contains("seLinuxOptions (container \"init\" set forbidden securityContext.seLinuxOptions: type \"spc_t\")"),
        "{text}"
    );
}

#[test]
fn older_versions_run_their_own_checks() {
    let spec = json!({
        "securityContext": {"runAsNonRoot": true, "runAsUser": 0,
            "seccompProfile": {"type": "RuntimeDefault"},
            "sysctls": [{"name": "net.ipv4.tcp_keepalive_time", "value": "60"}]},
        "containers": [{"name": "app", "image": "x",
            "securityContext": {"allowPrivilegeEscalation": false}}],
    });
    let at = |minor| describe(&evaluate(Level::Restricted, Version::Minor(minor), &spec));
    // 1.21: no capabilities or runAsUser checks yet; the keepalive sysctl is not allowed.
    assert_eq!(at(21), "forbidden sysctls (net.ipv4.tcp_keepalive_time)");
    assert!(at(23).contains("runAsUser=0"), "{}", at(23));
    assert!(!at(29).contains("sysctls"), "{}", at(29));
}
