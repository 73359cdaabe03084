//! ConfigMaps and Secrets in a container's environment, end to end with the real kubectl:
//! `kubectl create configmap` / `secret generic`, then a pod using `valueFrom`
//! (configMapKeyRef, secretKeyRef, fieldRef, resourceFieldRef) and `envFrom` with a prefix
//! sees the values. A pod referencing a ConfigMap that does not exist yet is Waiting with
//! `CreateContainerConfigError` and kubelet's message, and Running with the value once
//! `kubectl create` made it.

use std::time::Duration;

use bosun_e2e::{wait_logged, Control, Node};

const ENV_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: env-user, labels: {app: envtest}}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'env | sort; sleep 1000']
    resources: {limits: {memory: 64Mi}}
    envFrom:
    - {prefix: CFG_, configMapRef: {name: app-config}}
    - {secretRef: {name: not-there, optional: true}}
    env:
    - {name: COLOR, valueFrom: {configMapKeyRef: {name: app-config, key: color}}}
    - {name: PASSWORD, valueFrom: {secretKeyRef: {name: app-secret, key: password}}}
    - {name: POD_NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}
    - {name: POD_NS, valueFrom: {fieldRef: {fieldPath: metadata.namespace}}}
    - {name: APP, valueFrom: {fieldRef: {fieldPath: "metadata.labels['app']"}}}
    - {name: SCHEDULED_ON, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}
    - {name: MEM_MI, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}
    - {name: GREETING, value: "$(COLOR)-$(CFG_size)"}
    - {name: MAYBE, valueFrom: {configMapKeyRef: {name: app-config, key: nope, optional: true}}}
"#;

const LATE_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: late-user}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  containers:
  - name: c
    image: bosun.test/busybox:1
    command: [sh, -c, 'echo LATE=$LATE; sleep 1000']
    env:
    - {name: LATE, valueFrom: {configMapKeyRef: {name: late, key: k}}}
"#;

#[test]
fn config_maps_secrets_and_pod_fields_reach_the_environment() {
    let control = Control::start();
    let mut node = Node::new(91, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_logged(
        "the node Ready",
        &control,
        &node,
        Duration::from_secs(20),
        || control.node_ready(&name),
    );
    control.kubectl_ok(&[
        "create",
        "configmap",
        "app-config",
        "--from-literal=color=blue",
        "--from-literal=size=L",
    ]);
    control.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "app-secret",
        "--from-literal=password=s3cret",
    ]);
    control.apply(&ENV_POD.replace("NODE", &name));
    wait_logged(
        "env-user running",
        &control,
        &node,
        Duration::from_secs(40),
        || control.container_running("env-user"),
    );
    wait_logged(
        "its environment in the log",
        &control,
        &node,
        Duration::from_secs(15),
        || node.logs("default", "env-user").contains("POD_NAME="),
    );
    let logs = node.logs("default", "env-user");
    for line in [
        "COLOR=blue",
        "PASSWORD=s3cret",
        "CFG_color=blue",
        "CFG_size=L",
        "POD_NAME=env-user",
        "POD_NS=default",
        "APP=envtest",
        &format!("SCHEDULED_ON={name}"),
        "MEM_MI=64",
        "GREETING=blue-L",
    ] {
        let api = control.get_json(&["pod", "env-user"]).unwrap_or_default();
        let env = &api["spec"]["containers"][0]["env"];
        assert!(
            logs.lines().any(|l| l == line),
            "{line} in:\n{logs}\nAPI env: {env:#}"
        );
    }
    assert!(
        !logs.contains("MAYBE="),
        "an optional missing key sets nothing:\n{logs}"
    );

    // A ConfigMap that does not exist yet: kubelet's reason and message, then Running.
    control.apply(&LATE_POD.replace("NODE", &name));
    wait_logged(
        "CreateContainerConfigError",
        &control,
        &node,
        Duration::from_secs(30),
        || control.container_waiting("late-user").0 == "CreateContainerConfigError",
    );
    assert_eq!(
        control.container_waiting("late-user").1,
        "configmap \"late\" not found"
    );
    control.kubectl_ok(&["create", "configmap", "late", "--from-literal=other=x"]);
    wait_logged(
        "the missing key named",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            control.container_waiting("late-user").1
                == "couldn't find key k in ConfigMap default/late"
        },
    );
    control.apply("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: late}\ndata: {k: arrived}\n");
    wait_logged(
        "late-user running",
        &control,
        &node,
        Duration::from_secs(30),
        || control.container_running("late-user"),
    );
    wait_logged(
        "the late value in the log",
        &control,
        &node,
        Duration::from_secs(15),
        || node.logs("default", "late-user").contains("LATE=arrived"),
    );
}

const VOLUME_POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: vol-user}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  volumes:
  - {name: cfg, configMap: {name: web}}
  - {name: sec, secret: {secretName: creds, defaultMode: 0400}}
  containers:
  - name: c
    image: bosun.test/busybox:1
    volumeMounts:
    - {name: cfg, mountPath: /cfg}
    - {name: sec, mountPath: /sec, readOnly: true}
    command:
    - sh
    - -c
    - |
      grep " /sec " /proc/mounts | cut -d" " -f3 | sed s/^/SECFS=/
      echo SECMODE=$(stat -L -c %a /sec/password)
      echo SECRET=$(cat /sec/password)
      last=
      while true; do
        c=$(cat /cfg/content)
        case "$c" in *a*b*|*b*a*) echo MIXED;; esac
        [ ${#c} -ne 2000 ] && echo PARTIAL=${#c}
        [ "$c" != "$last" ] && echo SEEN=$(echo "$c" | cut -c1)
        last=$c
      done
"#;

#[test]
fn config_map_and_secret_volumes_are_written_atomically_and_follow_edits() {
    let control = Control::start();
    let mut node = Node::new(92, &control);
    node.start_agent();
    let name = node.name.clone();
    wait_logged(
        "the node Ready",
        &control,
        &node,
        Duration::from_secs(20),
        || control.node_ready(&name),
    );
    let content = |c: &str| c.repeat(2000);
    control.kubectl_ok(&[
        "create",
        "configmap",
        "web",
        &format!("--from-literal=content={}", content("a")),
    ]);
    control.kubectl_ok(&[
        "create",
        "secret",
        "generic",
        "creds",
        "--from-literal=password=hunter2",
    ]);
    control.apply(&VOLUME_POD.replace("NODE", &name));
    wait_logged(
        "vol-user reading",
        &control,
        &node,
        Duration::from_secs(40),
        || node.logs("default", "vol-user").contains("SEEN=a"),
    );
    let logs = node.logs("default", "vol-user");
    for line in ["SECFS=tmpfs", "SECMODE=400", "SECRET=hunter2"] {
        assert!(logs.lines().any(|l| l == line), "{line} in:\n{logs}");
    }
    // The secret is on a tmpfs on the host side too: never written to the node's disk.
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap_or_default();
    let base = node.base.display().to_string();
    assert!(
        mounts.lines().any(|m| m.contains(&base)
            && m.contains("kubernetes.io~secret/sec")
            && m.split(' ').nth(2) == Some("tmpfs")),
        "{mounts}"
    );
    control.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web}}\ndata: {{content: {}}}\n",
        content("b")
    ));
    wait_logged(
        "the edit in the mounted file",
        &control,
        &node,
        Duration::from_secs(20),
        || node.logs("default", "vol-user").contains("SEEN=b"),
    );
    control.apply(&format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: web}}\ndata: {{content: {}}}\n",
        content("a")
    ));
    wait_logged(
        "the edit back",
        &control,
        &node,
        Duration::from_secs(20),
        || node.logs("default", "vol-user").matches("SEEN=a").count() >= 2,
    );
    let logs = node.logs("default", "vol-user");
    assert!(
        !logs.contains("MIXED") && !logs.contains("PARTIAL"),
        "a reader saw a partial file:\n{logs}"
    );
}
