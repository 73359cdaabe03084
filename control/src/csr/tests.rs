use super::*;
use rcgen::{CertificateParams, DistinguishedName, DnType, KeyPair};
use rustls::pki_types::CertificateDer;

fn request_pem(cn: &str, orgs: &[&str], sans: &[&str]) -> String {
    let key = KeyPair::generate().unwrap();
    let mut params =
        CertificateParams::new(sans.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    for o in orgs {
        dn.push(DnType::OrganizationName, *o);
    }
    params.distinguished_name = dn;
    params.serialize_request(&key).unwrap().pem().unwrap()
}

fn csr(signer: &str, pem: &str) -> Value {
    json!({
        "apiVersion": "certificates.k8s.io/v1", "kind": "CertificateSigningRequest",
        "metadata": {"name": "c1"},
        "spec": {
            "signerName": signer, "request": STANDARD.encode(pem),
            "usages": ["digital signature", "client auth"],
            "username": "forged", "groups": ["system:masters"],
        },
    })
}

fn bootstrapper() -> Identity {
    Identity {
        user: "system:bootstrap:abcdef".into(),
        groups: vec!["system:bootstrappers".into()],
        ..Default::default()
    }
}

fn issued_identity(object: &Value) -> Identity {
    let pem = STANDARD
        .decode(
            object["status"]["certificate"]
                .as_str()
                .expect("a certificate"),
        )
        .unwrap();
    let der = CertificateDer::from_pem_slice(&pem).unwrap();
    crate::authn::identity::from_client_certificate(&der).unwrap()
}

#[test]
fn a_bootstrapper_node_client_request_is_approved_and_signed() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let mut object = csr(
        KUBELET_CLIENT_SIGNER,
        &request_pem("system:node:n1", &["system:nodes"], &[]),
    );
    prepare_create(
        &mut object,
        &bootstrapper(),
        Some(&ca),
        "2026-01-01T00:00:00Z",
    )
    .unwrap();
    assert_eq!(object["spec"]["username"], "system:bootstrap:abcdef");
    assert_eq!(object["spec"]["groups"], json!(["system:bootstrappers"]));
    let c = &object["status"]["conditions"][0];
    assert_eq!(
        (c["type"].as_str(), c["reason"].as_str()),
        (Some("Approved"), Some("AutoApproved"))
    );
    let id = issued_identity(&object);
    assert_eq!(id.node_name(), Some("n1"));
}

#[test]
fn other_requests_stay_pending() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let node_n2 = Identity {
        user: "system:node:n2".into(),
        groups: vec!["system:nodes".into()],
        ..Default::default()
    };
    for (who, pem, signer) in [
        // A bootstrapper asking to be an administrator.
        (
            bootstrapper(),
            request_pem("system:node:n1", &["system:masters"], &[]),
            KUBELET_CLIENT_SIGNER,
        ),
        (
            bootstrapper(),
            request_pem("admin", &["system:nodes"], &[]),
            KUBELET_CLIENT_SIGNER,
        ),
        (
            bootstrapper(),
            request_pem("system:node:n1", &["system:nodes"], &["n1.example"]),
            KUBELET_CLIENT_SIGNER,
        ),
        // A node asking for another node's name.
        (
            node_n2,
            request_pem("system:node:n1", &["system:nodes"], &[]),
            KUBELET_CLIENT_SIGNER,
        ),
        (
            bootstrapper(),
            request_pem("system:node:n1", &["system:nodes"], &[]),
            CLIENT_SIGNER,
        ),
    ] {
        let mut object = csr(signer, &pem);
        prepare_create(&mut object, &who, Some(&ca), "now").unwrap();
        assert!(object["status"]["conditions"].is_null(), "{object}");
        assert!(object["status"]["certificate"].is_null());
    }
    let mut wrong_usage = csr(
        KUBELET_CLIENT_SIGNER,
        &request_pem("system:node:n1", &["system:nodes"], &[]),
    );
    wrong_usage["spec"]["usages"] = json!(["server auth"]);
    prepare_create(&mut wrong_usage, &bootstrapper(), Some(&ca), "now").unwrap();
    assert!(wrong_usage["status"]["conditions"].is_null());
}

#[test]
fn a_request_that_is_not_pkcs10_is_invalid() {
    let mut object = csr(
        KUBELET_CLIENT_SIGNER,
        "-----BEGIN CERTIFICATE REQUEST-----\nAAAA\n-----END CERTIFICATE REQUEST-----\n",
    );
    let e = prepare_create(&mut object, &bootstrapper(), None, "now").unwrap_err();
    assert_eq!(e.reason, "Invalid");
    assert!(e.message.contains("spec.request"), "{}", e.message);
    let mut no_signer = csr("", &request_pem("a", &[], &[]));
    let e = prepare_create(&mut no_signer, &bootstrapper(), None, "now").unwrap_err();
    assert!(e.message.contains("spec.signerName"), "{}", e.message);
}

#[test]
fn an_administrators_approval_signs_and_cannot_be_taken_back() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let mut object = csr(CLIENT_SIGNER, &request_pem("alice", &["dev"], &[]));
    prepare_create(&mut object, &bootstrapper(), Some(&ca), "now").unwrap();
    let mut approve = object.clone();
    approve["status"]["conditions"] =
        json!([{"type": "Approved", "status": "True", "reason": "KubectlApprove"}]);
    let approved = apply_approval(&object, &approve, Some(&ca), "now").unwrap();
    let id = issued_identity(&approved);
    assert_eq!(
        (id.user.as_str(), id.groups.as_slice()),
        ("alice", ["dev".to_owned()].as_slice())
    );
    let mut deny_too = approved.clone();
    deny_too["status"]["conditions"] = json!([{"type": "Denied", "status": "True"}]);
    assert!(apply_approval(&approved, &deny_too, Some(&ca), "now").is_err());
    let mut bogus = object.clone();
    bogus["status"]["conditions"] = json!([{"type": "Signed"}]);
    assert!(apply_approval(&object, &bogus, Some(&ca), "now").is_err());
    // An approved node-client request with the wrong subject fails its signer's checks.
    let mut bad = csr(KUBELET_CLIENT_SIGNER, &request_pem("alice", &["dev"], &[]));
    prepare_create(&mut bad, &bootstrapper(), Some(&ca), "now").unwrap();
    let mut approve = bad.clone();
    approve["status"]["conditions"] = json!([{"type": "Approved"}]);
    let failed = apply_approval(&bad, &approve, Some(&ca), "now").unwrap();
    assert_eq!(failed["status"]["conditions"][1]["type"], "Failed");
    assert!(failed["status"]["certificate"].is_null());
}

#[test]
fn the_certificate_lives_as_long_as_asked_within_a_year() {
    let dir = tempfile::tempdir().unwrap();
    let ca = Ca::load_or_create(dir.path()).unwrap();
    let lifetime = |seconds: Option<i64>| {
        let mut object = csr(
            KUBELET_CLIENT_SIGNER,
            &request_pem("system:node:n1", &["system:nodes"], &[]),
        );
        if let Some(s) = seconds {
            object["spec"]["expirationSeconds"] = json!(s);
        }
        prepare_create(&mut object, &bootstrapper(), Some(&ca), "now").unwrap();
        let pem = STANDARD
            .decode(object["status"]["certificate"].as_str().unwrap())
            .unwrap();
        let der = CertificateDer::from_pem_slice(&pem).unwrap();
        let (_, cert) =
            <x509_parser::certificate::X509Certificate as FromDer<_>>::from_der(der.as_ref())
                .unwrap();
        let v = cert.validity();
        v.not_after.timestamp() - time::OffsetDateTime::now_utc().unix_timestamp()
    };
    let hour = lifetime(Some(3600));
    assert!((3500..=3600).contains(&hour), "{hour}");
    let year = 365 * 24 * 3600;
    let default = lifetime(None);
    assert!((year - 100..=year).contains(&default), "{default}");
    let capped = lifetime(Some(10 * year));
    assert!(capped <= year, "{capped}");
    let mut too_short = csr(
        KUBELET_CLIENT_SIGNER,
        &request_pem("system:node:n1", &["system:nodes"], &[]),
    );
    too_short["spec"]["expirationSeconds"] = json!(60);
    assert!(prepare_create(&mut too_short, &bootstrapper(), Some(&ca), "now").is_err());
}
