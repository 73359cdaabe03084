//! Authentication and authorization with the real kubectl: node identities from client
//! certificates, bootstrap tokens, TLS bootstrapping through CertificateSigningRequests, the
//! node rule (403 in Kubernetes' words) and the per-identity limits (429).

mod common;

use common::{kubectl_with, ok, Control};

#[test]
fn a_node_kubeconfig_authenticates_as_the_node() {
    let control = Control::start();
    let node = control.node_kubeconfig("n1");
    ok(kubectl_with(&node, &["get", "pods"]));
}
