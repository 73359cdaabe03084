//! `kubectl auth can-i` with the real kubectl: SelfSubjectAccessReviews answered by the same
//! authorizer as real requests (an administrator may do everything; a node may read nodes but
//! not a Secret none of its pods uses, nor create a Deployment, and kubectl exits 1 on "no"),
//! and `--list` (SelfSubjectRulesReview) for both.

mod common;

use common::{kubectl_with, ok, stdout, Control};

#[test]
fn kubectl_auth_can_i_asks_the_authorizer() {
    let control = Control::start();
    assert_eq!(
        ok(control.kubectl(&["auth", "can-i", "create", "deployments"])).trim(),
        "yes"
    );
    assert_eq!(
        ok(control.kubectl(&["auth", "can-i", "get", "/healthz"])).trim(),
        "yes"
    );
    let list = ok(control.kubectl(&["auth", "can-i", "--list"]));
    assert!(list.contains("*.*"), "{list}");

    let node = control.node_kubeconfig("n1");
    let yes = kubectl_with(&node, &["auth", "can-i", "get", "nodes"]);
    assert!(yes.status.success(), "{}", common::stderr(&yes));
    assert_eq!(stdout(&yes).trim(), "yes");
    for question in [
        &["auth", "can-i", "get", "secret/db-password"][..],
        &["auth", "can-i", "create", "deployments", "-n", "default"][..],
    ] {
        let no = kubectl_with(&node, question);
        // kubectl prints the authorizer's reason after "no - ".
        assert!(
            stdout(&no).starts_with("no"),
            "{question:?}: {}",
            stdout(&no)
        );
        assert_eq!(
            no.status.code(),
            Some(1),
            "{question:?}: kubectl's exit code for no"
        );
    }
    let rules = kubectl_with(&node, &["auth", "can-i", "--list"]);
    let text = format!("{}{}", stdout(&rules), common::stderr(&rules));
    assert!(text.contains("selfsubjectaccessreviews"), "{text}");
    assert!(!text.contains("*.*"), "a node has no wildcard: {text}");
}
