//! Pulling from a real registry on loopback that demands a password (`docker-registry` with
//! htpasswd basic auth): the node's credentials (`--registry-config`, a docker config.json)
//! pull with the right password; a wrong one is ErrImagePull, then ImagePullBackOff, carrying
//! the registry's own answer. (A pod's imagePullSecrets, read from the API, are the e2e
//! tests' business; they feed the same keyring.)

mod common;

use std::time::Duration;

use base64::Engine as _;
use common::registry::{layout_digests, Registry};
use common::{pod, stderr, stdout, Node};
use serde_json::Value;

const USER: &str = "bosun";
const PASSWORD: &str = "s3cret-pw";

fn waiting(p: &Value) -> (String, String) {
    let w = &p["containerStatuses"][0]["state"]["waiting"];
    let s = |v: &Value| v.as_str().unwrap_or("").to_owned();
    (s(&w["reason"]), s(&w["message"]))
}

/// A node that speaks plain HTTP to `reg` with the docker config `config` as its credentials.
fn node_with_config(name: &str, reg: &Registry, config: &str, extra: &[&str]) -> Node {
    let node = Node::new(name);
    let file = node.base.join("config.json");
    std::fs::write(&file, config).expect("write docker config");
    let file = file.to_str().expect("utf-8 path").to_owned();
    let mut flags = vec![
        "--insecure-registry",
        reg.host.as_str(),
        "--registry-config",
        file.as_str(),
    ];
    flags.extend_from_slice(extra);
    node.with_flags(&flags)
}

fn pull(node: &Node, image: &str) -> std::process::Output {
    node.cmd()
        .args(["image", "pull", image])
        .output()
        .expect("image pull")
}

#[test]
fn the_right_password_pulls_and_a_wrong_one_is_err_image_pull_with_the_registry_answer() {
    let reg = Registry::start_with_password(USER, PASSWORD);
    reg.push("busybox", "bosun/busybox:1");
    let image = format!("{}/bosun/busybox:1", reg.host);
    let (manifest, _) = layout_digests("busybox");

    // username/password fields, the key written with a scheme and /v2/ like `docker login`.
    let right = format!(
        r#"{{"auths":{{"http://{}/v2/":{{"username":"{USER}","password":"{PASSWORD}"}}}}}}"#,
        reg.host
    );
    let node = node_with_config("auth-right", &reg, &right, &[]);
    let out = pull(&node, &image);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).contains(&format!("pulled {image} {manifest}")),
        "{}",
        stdout(&out)
    );
    drop(node);

    // Without credentials the registry refuses, and says why.
    let anonymous = node_with_config("auth-none", &reg, r#"{"auths":{}}"#, &[]);
    let out = pull(&anonymous, &image);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("UNAUTHORIZED: authentication required"),
        "{}",
        stderr(&out)
    );
    drop(anonymous);

    // The `auth` field: base64 of user:password, here a wrong password.
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{USER}:wr0ng-pw"));
    let wrong = format!(r#"{{"auths":{{"{}":{{"auth":"{auth}"}}}}}}"#, reg.host);
    let mut node = node_with_config("auth-wrong", &reg, &wrong, &["--backoff-base-ms", "300"]);
    let out = pull(&node, &image);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("UNAUTHORIZED: authentication required"),
        "{err}"
    );
    assert!(err.contains(&image), "{err}");
    assert!(!err.contains("wr0ng-pw"), "the password leaked: {err}");

    node.start_daemon();
    node.apply(
        "wrong.yaml",
        &pod("wrong", "Always", &image, "    command: ['true']\n"),
    );
    let p = node.wait_pod("wrong", "ErrImagePull", Duration::from_secs(20), |p| {
        waiting(p).0 == "ErrImagePull"
    });
    let (_, message) = waiting(&p);
    assert!(message.contains("authentication required"), "{p:#}");
    assert!(message.contains(&image), "{p:#}");
    let p = node.wait_pod("wrong", "ImagePullBackOff", Duration::from_secs(20), |p| {
        waiting(p).0 == "ImagePullBackOff"
    });
    assert!(waiting(&p).1.contains("authentication required"), "{p:#}");
}

#[test]
fn credential_helpers_in_the_node_config_are_refused_by_name() {
    let reg = Registry::start();
    let config = r#"{"auths":{},"credsStore":"desktop"}"#;
    let node = node_with_config("auth-helper", &reg, config, &[]);
    let out = pull(&node, &format!("{}/bosun/busybox:1", reg.host));
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("credsStore"), "{}", stderr(&out));
}
