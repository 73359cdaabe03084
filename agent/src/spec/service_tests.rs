//! Tests for the Service and EndpointSlice types: Kubernetes defaults, headless services and
//! validation errors that name the field.

use super::*;
use crate::spec::{parse_manifests, Manifest};

fn service(yaml: &str) -> Service {
    match parse_manifests(yaml).expect("parses").pop() {
        Some(Manifest::Service(s)) => s,
        other => panic!("not a Service: {other:?}"),
    }
}

const WEB: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec:\n  clusterIP: 10.96.0.10\n  selector: {app: web}\n  ports: [{name: http, port: 80, targetPort: http}, {port: 53, protocol: UDP}]\n";

#[test]
fn a_clusterip_service_parses_with_kubernetes_defaults() {
    let svc = service(WEB);
    assert_eq!(svc.id(), "default/web");
    assert_eq!(
        svc.validate(),
        Ok(ServiceVips::Ipv4(vec![Ipv4Addr::new(10, 96, 0, 10)]))
    );
    assert_eq!(svc.spec.ports[0].protocol, Protocol::Tcp);
    assert_eq!(
        svc.spec.ports[0].target_port,
        Some(IntOrString::String("http".into()))
    );
    assert_eq!(svc.spec.ports[1].protocol, Protocol::Udp);
    assert_eq!(svc.affinity_timeout_seconds(), None);
    assert!(svc.selector().is_some());
}

#[test]
fn client_ip_affinity_defaults_to_three_hours() {
    let svc = service(&WEB.replace("spec:\n", "spec:\n  sessionAffinity: ClientIP\n"));
    assert_eq!(svc.affinity_timeout_seconds(), Some(10800));
    let svc = service(&WEB.replace(
        "spec:\n",
        "spec:\n  sessionAffinity: ClientIP\n  sessionAffinityConfig: {clientIP: {timeoutSeconds: 5}}\n",
    ));
    assert_eq!(svc.affinity_timeout_seconds(), Some(5));
}

#[test]
fn headless_and_external_name_services_program_nothing() {
    let svc = service(&WEB.replace("10.96.0.10", "None"));
    assert_eq!(svc.validate(), Ok(ServiceVips::None));
    let svc = service(&WEB.replace("spec:\n", "spec:\n  type: ExternalName\n"));
    assert_eq!(svc.validate(), Ok(ServiceVips::None));
}

#[test]
fn validation_errors_name_the_field() {
    let cases = [
        (WEB.replace("port: 80,", "port: 0,"), "spec.ports[0].port"),
        (
            WEB.replace("targetPort: http", "targetPort: 70000"),
            "spec.ports[0].targetPort",
        ),
        (
            WEB.replace("targetPort: http", "targetPort: 'no such'"),
            "spec.ports[0].targetPort",
        ),
        (
            WEB.replace("protocol: UDP", "protocol: SCTP"),
            "spec.ports[1].protocol",
        ),
        (WEB.replace("10.96.0.10", "fd00::10"), "spec.clusterIP"),
        (WEB.replace("10.96.0.10", "web"), "spec.clusterIP"),
        (
            WEB.replace("  clusterIP: 10.96.0.10\n", ""),
            "spec.clusterIP",
        ),
        (
            WEB.replace("spec:\n", "spec:\n  sessionAffinity: Cookie\n"),
            "spec.sessionAffinity",
        ),
    ];
    for (yaml, field) in cases {
        let err = service(&yaml).validate().expect_err(field);
        assert_eq!(err.field, field, "{err}");
    }
    let listed = WEB.replace(
        "  clusterIP: 10.96.0.10\n",
        "  clusterIPs: [10.96.0.10, x]\n",
    );
    let err = service(&listed).validate().expect_err("clusterIPs");
    assert_eq!(err.field, "spec.clusterIPs[1]", "{err}");
}

#[test]
fn a_mistyped_port_is_a_parse_error_with_its_path() {
    let err = parse_manifests(&WEB.replace("port: 80,", "port: eighty,")).unwrap_err();
    assert_eq!(err.field, "spec.ports[0].port", "{err}");
}

const SLICE: &str = "apiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata:\n  name: ext-1\n  labels: {kubernetes.io/service-name: ext}\naddressType: IPv4\nendpoints:\n- addresses: [10.1.0.1]\n- addresses: [10.1.0.2]\n  conditions: {ready: false, serving: true, terminating: true}\nports: [{name: http, port: 8080}]\n";

#[test]
fn endpoint_slices_parse_with_condition_defaults() {
    let Some(Manifest::EndpointSlice(slice)) = parse_manifests(SLICE).unwrap().pop() else {
        panic!("not a slice");
    };
    assert_eq!(slice.service_name(), Some("ext"));
    assert_eq!(slice.validate(), Ok(()));
    let c = &slice.endpoints[0].conditions;
    assert!(c.ready() && c.serving() && !c.terminating());
    let c = &slice.endpoints[1].conditions;
    assert!(!c.ready() && c.serving() && c.terminating());
    assert_eq!(slice.ports[0].protocol, Protocol::Tcp);
}

#[test]
fn endpoint_slice_errors_name_the_field() {
    let parse = |yaml: &str| match parse_manifests(yaml).unwrap().pop() {
        Some(Manifest::EndpointSlice(s)) => s,
        other => panic!("{other:?}"),
    };
    let err = parse(&SLICE.replace("10.1.0.2", "10.1.0"))
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "endpoints[1].addresses[0]");
    let err = parse(&SLICE.replace("port: 8080", "port: 0"))
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "ports[0].port");
    let err = parse(&SLICE.replace("IPv4", "FQDN"))
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "addressType");
}

#[test]
fn node_ports_and_unknown_fields_are_refused_per_service() {
    let err = service(&WEB.replace("spec:\n", "spec:\n  type: NodePort\n"))
        .validate()
        .unwrap_err();
    assert_eq!(err.field, "spec.type");
    assert!(err.message.contains("not supported"), "{err}");
    let external = WEB.replace("spec:\n", "spec:\n  externalIPs: [192.0.2.1]\n");
    let err = service(&external).validate().unwrap_err();
    assert_eq!(err.field, "spec.externalIPs");
    let node_port = WEB.replace("port: 53,", "port: 53, nodePort: 30053,");
    let err = service(&node_port).validate().unwrap_err();
    assert_eq!(err.field, "spec.ports[1].nodePort");
    // One bad Service does not reject its file: the other document still parses.
    let both = format!("{external}---\n{WEB}");
    assert_eq!(parse_manifests(&both).expect("file parses").len(), 2);
}

#[test]
fn a_service_as_kubectl_prints_it_is_accepted() {
    let printed = WEB.replace(
        "spec:\n",
        "spec:\n  ipFamilies: [IPv4]\n  ipFamilyPolicy: SingleStack\n  internalTrafficPolicy: Cluster\n",
    ) + "status: {loadBalancer: {}}\n";
    assert!(service(&printed).validate().is_ok());
    let local = printed.replace("Policy: Cluster", "Policy: Local");
    let err = service(&local).validate().unwrap_err();
    assert_eq!(err.field, "spec.internalTrafficPolicy");
}

#[test]
fn unknown_endpoint_slice_fields_are_refused_unless_informational() {
    let parse = |yaml: &str| match parse_manifests(yaml).unwrap().pop() {
        Some(Manifest::EndpointSlice(s)) => s,
        other => panic!("{other:?}"),
    };
    let with_ref = SLICE.replace(
        "- addresses: [10.1.0.1]\n",
        "- addresses: [10.1.0.1]\n  targetRef: {kind: Pod, name: a}\n  nodeName: n1\n",
    );
    assert_eq!(parse(&with_ref).validate(), Ok(()));
    let odd = SLICE.replace(
        "- addresses: [10.1.0.1]\n",
        "- addresses: [10.1.0.1]\n  weight: 3\n",
    );
    let err = parse(&odd).validate().unwrap_err();
    assert_eq!(err.field, "endpoints[0].weight");
}
