//! A pod's imagePullSecrets end to end with the real kubectl: a registry on loopback that
//! demands a password (`docker-registry` with htpasswd), `kubectl create secret
//! docker-registry` with a wrong and with the right password; the pod using the wrong one is
//! Waiting in ErrImagePull (then ImagePullBackOff) with the registry's own answer, the pod
//! using the right one runs an image that only the registry has under that name; a pod naming
//! a Secret that does not exist gets kubelet's FailedToRetrieveImagePullSecret Warning event.
//! The pull and the failed pull are told in events with kubelet's texts.

use std::time::Duration;

use bosun_e2e::{images_dir, wait_logged, Control, Node};
use bosun_test_support::{Registry, RegistryOptions};

const USER: &str = "bosun";
const PASSWORD: &str = "e2e-s3cret";

const POD: &str = r#"apiVersion: v1
kind: Pod
metadata: {name: NAME}
spec:
  nodeName: NODE
  terminationGracePeriodSeconds: 1
  imagePullSecrets: [{name: SECRET}]
  containers:
  - name: c
    image: IMAGE
    imagePullPolicy: POLICY
    command: [sh, -c, 'echo pulled with a secret; sleep 1000']
"#;

#[test]
fn image_pull_secrets_pull_with_the_right_password_and_report_a_wrong_one() {
    let registry = Registry::start_with(&RegistryOptions::basic_auth(USER, PASSWORD))
        .unwrap_or_else(|e| panic!("{e}"));
    registry
        .push_layout(
            &images_dir().join("busybox"),
            "bosun.test/busybox:1",
            "private/busybox:1",
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let image = format!("{}/private/busybox:1", registry.host);

    let control = Control::start();
    let mut node = Node::new(1, &control);
    node.add_agent_flags(&["--insecure-registry", &registry.host]);
    node.start_agent();
    wait_logged(
        "the node is Ready",
        &control,
        &node,
        Duration::from_secs(30),
        || control.node_ready(&node.name),
    );
    for (secret, password) in [("wrongcred", "not-the-password"), ("regcred", PASSWORD)] {
        control.kubectl_ok(&[
            "create",
            "secret",
            "docker-registry",
            secret,
            &format!("--docker-server={}", registry.host),
            &format!("--docker-username={USER}"),
            &format!("--docker-password={password}"),
        ]);
    }
    // The wrong secret's pod asks the registry on every start (Always): with IfNotPresent it
    // would run the image the right secret's pod pulled, as kubelet does, when that pull
    // finished first.
    let pod = |name: &str, secret: &str, policy: &str| {
        POD.replace("NAME", name)
            .replace("POLICY", policy)
            .replace("NODE", &node.name)
            .replace("SECRET", secret)
            .replace("IMAGE", &image)
    };
    control.apply(&pod("wrong", "wrongcred", "Always"));
    control.apply(&pod("right", "regcred", "IfNotPresent"));
    control.apply(&pod("nosecret", "nosuch", "IfNotPresent"));

    wait_logged(
        "the right secret's pod runs",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            control.get_json(&["pod", "right"]).is_some_and(|p| {
                p["status"]["containerStatuses"][0]["state"]["running"].is_object()
            })
        },
    );
    wait_logged(
        "the wrong secret's pod is ErrImagePull or ImagePullBackOff",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            let (reason, _) = control.container_waiting("wrong");
            reason == "ErrImagePull" || reason == "ImagePullBackOff"
        },
    );
    let (_, message) = control.container_waiting("wrong");
    assert!(
        message.contains("UNAUTHORIZED: authentication required"),
        "{message}"
    );
    assert!(message.contains(&image), "{message}");
    assert!(!message.contains("not-the-password"), "{message}");
    wait_logged(
        "the pulled image's output",
        &control,
        &node,
        Duration::from_secs(20),
        || {
            node.logs("default", "right")
                .contains("pulled with a secret")
        },
    );
    // kubelet's texts: the pull that happened, and the one that failed — each told as it
    // began.
    let pulled = format!("Successfully pulled image \"{image}\" in ");
    let failed = format!("Failed to pull image \"{image}\": ");
    wait_logged(
        "the Pulled and Failed events of the two pulls",
        &control,
        &node,
        Duration::from_secs(30),
        || {
            let events = control.get_json(&["events"]).unwrap_or_default();
            let items = events["items"].as_array().cloned().unwrap_or_default();
            let told = |pod: &str, reason: &str, start: &str| {
                items.iter().any(|e| {
                    e["involvedObject"]["name"] == pod
                        && e["reason"] == reason
                        && e["message"].as_str().is_some_and(|m| m.starts_with(start))
                })
            };
            told("right", "Pulling", &format!("Pulling image \"{image}\""))
                && told("right", "Pulled", &pulled)
                && told("wrong", "Pulling", &format!("Pulling image \"{image}\""))
                && told("wrong", "Failed", &failed)
        },
    );
    let expected = "Unable to retrieve some image pull secrets (nosuch); attempting to pull the image may not succeed.";
    wait_logged(
        "the FailedToRetrieveImagePullSecret event",
        &control,
        &node,
        Duration::from_secs(60),
        || {
            let events = control.get_json(&["events"]).unwrap_or_default();
            events["items"].as_array().is_some_and(|items| {
                items.iter().any(|e| {
                    e["reason"] == "FailedToRetrieveImagePullSecret"
                        && e["type"] == "Warning"
                        && e["involvedObject"]["name"] == "nosecret"
                        && e["message"] == expected
                })
            })
        },
    );
}
