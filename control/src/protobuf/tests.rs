//! Tests of the protobuf decoder: bodies built with `prost-reflect` from the descriptor (as
//! kubectl's Go encoder writes them), each special type, and bad input.

use prost::Message as _;
use prost_reflect::{DynamicMessage, MapKey, Value as PValue};
use serde_json::{json, Value};

use super::json::go_duration;
use super::*;
use crate::kinds::RESOURCES;

fn new(name: &str) -> DynamicMessage {
    DynamicMessage::new(descriptor(name).unwrap())
}

/// A message of `name` with `fields` (by proto field name) set.
fn msg(name: &str, fields: Vec<(&str, PValue)>) -> DynamicMessage {
    let mut m = new(name);
    for (field, value) in fields {
        m.try_set_field_by_name(field, value)
            .unwrap_or_else(|e| panic!("{name}.{field}: {e}"));
    }
    m
}

fn s(text: &str) -> PValue {
    PValue::String(text.to_owned())
}

fn m(message: DynamicMessage) -> PValue {
    PValue::Message(message)
}

fn map(entries: &[(&str, PValue)]) -> PValue {
    PValue::Map(
        entries
            .iter()
            .map(|(k, v)| (MapKey::String((*k).to_owned()), v.clone()))
            .collect(),
    )
}

const META: &str = "k8s.io.apimachinery.pkg.apis.meta.v1";

/// The body kubectl sends: magic, then a runtime.Unknown around `raw`.
fn body(api_version: &str, kind: &str, raw: Vec<u8>) -> Vec<u8> {
    let type_meta = msg(
        "k8s.io.apimachinery.pkg.runtime.TypeMeta",
        vec![("api_version", s(api_version)), ("kind", s(kind))],
    );
    let unknown = msg(
        UNKNOWN,
        vec![
            ("type_meta", m(type_meta)),
            ("raw", PValue::Bytes(raw.into())),
            ("content_encoding", s("")),
            ("content_type", s("")),
        ],
    );
    [MAGIC, &unknown.encode_to_vec()].concat()
}

fn object_meta(name: &str) -> DynamicMessage {
    msg(
        &format!("{META}.ObjectMeta"),
        vec![
            ("name", s(name)),
            // Go writes every non-pointer field: empty strings and the zero Time.
            ("generate_name", s("")),
            ("namespace", s("")),
            ("creation_timestamp", m(new(&format!("{META}.Time")))),
            ("labels", map(&[("app", s(name))])),
        ],
    )
}

fn deployment(replicas: i32) -> DynamicMessage {
    let labels = || map(&[("app", s("web"))]);
    let port = msg(
        "k8s.io.api.core.v1.ContainerPort",
        vec![("container_port", PValue::I32(80)), ("protocol", s(""))],
    );
    let resources = msg(
        "k8s.io.api.core.v1.ResourceRequirements",
        vec![(
            "limits",
            map(&[(
                "cpu",
                m(msg(
                    "k8s.io.apimachinery.pkg.api.resource.Quantity",
                    vec![("string", s("500m"))],
                )),
            )]),
        )],
    );
    let container = msg(
        "k8s.io.api.core.v1.Container",
        vec![
            ("name", s("nginx")),
            ("image", s("nginx")),
            ("ports", PValue::List(vec![m(port)])),
            ("resources", m(resources)),
        ],
    );
    let pod_spec = msg(
        "k8s.io.api.core.v1.PodSpec",
        vec![("containers", PValue::List(vec![m(container)]))],
    );
    let template = msg(
        "k8s.io.api.core.v1.PodTemplateSpec",
        vec![
            (
                "metadata",
                m(msg(
                    &format!("{META}.ObjectMeta"),
                    vec![("labels", labels())],
                )),
            ),
            ("spec", m(pod_spec)),
        ],
    );
    let spec = msg(
        "k8s.io.api.apps.v1.DeploymentSpec",
        vec![
            ("replicas", PValue::I32(replicas)),
            (
                "selector",
                m(msg(
                    &format!("{META}.LabelSelector"),
                    vec![("match_labels", labels())],
                )),
            ),
            ("template", m(template)),
            ("strategy", m(new("k8s.io.api.apps.v1.DeploymentStrategy"))),
        ],
    );
    msg(
        "k8s.io.api.apps.v1.Deployment",
        vec![("metadata", m(object_meta("web"))), ("spec", m(spec))],
    )
}

#[test]
fn every_kind_of_the_kinds_table_has_a_message() {
    for r in RESOURCES.iter().filter(|r| r.takes_protobuf()) {
        let name = message_name(r.group, r.version, r.kind);
        assert!(descriptor(&name).is_ok(), "no message {name}");
    }
}

#[test]
fn a_deployment_becomes_kubernetes_json() {
    let raw = deployment(3).encode_to_vec();
    let object = decode(&body("apps/v1", "Deployment", raw)).unwrap();
    assert_eq!(
        object,
        json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "creationTimestamp": null, "labels": {"app": "web"}},
            "spec": {
                "replicas": 3,
                "selector": {"matchLabels": {"app": "web"}},
                "strategy": {},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {"containers": [{
                        "name": "nginx", "image": "nginx",
                        "ports": [{"containerPort": 80}],
                        "resources": {"limits": {"cpu": "500m"}},
                    }]},
                },
            },
        })
    );
}

#[test]
fn an_explicit_zero_is_kept() {
    let raw = deployment(0).encode_to_vec();
    let object = decode(&body("apps/v1", "Deployment", raw)).unwrap();
    assert_eq!(object["spec"]["replicas"], 0);
}

#[test]
fn times_are_rfc3339_and_micro_times_have_microseconds() {
    let time = msg(
        &format!("{META}.Time"),
        vec![
            ("seconds", PValue::I64(1_764_662_400)),
            ("nanos", PValue::I32(5)),
        ],
    );
    let micro = msg(
        &format!("{META}.MicroTime"),
        vec![
            ("seconds", PValue::I64(1_764_662_400)),
            ("nanos", PValue::I32(123_456_789)),
        ],
    );
    let event = msg(
        "k8s.io.api.core.v1.Event",
        vec![
            ("metadata", m(object_meta("e"))),
            ("first_timestamp", m(time)),
            ("event_time", m(micro)),
            ("count", PValue::I32(2)),
        ],
    );
    let object = decode(&body("v1", "Event", event.encode_to_vec())).unwrap();
    assert_eq!(object["firstTimestamp"], "2025-12-02T08:00:00Z");
    assert_eq!(object["eventTime"], "2025-12-02T08:00:00.123456Z");
    assert_eq!(object["metadata"]["creationTimestamp"], Value::Null);
    let bad = msg(
        &format!("{META}.Time"),
        vec![("seconds", PValue::I64(i64::MAX))],
    );
    let event = msg("k8s.io.api.core.v1.Event", vec![("last_timestamp", m(bad))]);
    let e = decode(&body("v1", "Event", event.encode_to_vec())).unwrap_err();
    assert!(e.to_string().contains("Time"), "{e}");
}

#[test]
fn int_or_strings_are_numbers_or_strings_and_int64s_numbers() {
    let port = |target: DynamicMessage| {
        m(msg(
            "k8s.io.api.core.v1.ServicePort",
            vec![("port", PValue::I32(80)), ("target_port", m(target))],
        ))
    };
    let number = msg(
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
        vec![("type", PValue::I64(0)), ("int_val", PValue::I32(8080))],
    );
    let named = msg(
        "k8s.io.apimachinery.pkg.util.intstr.IntOrString",
        vec![("type", PValue::I64(1)), ("str_val", s("http"))],
    );
    let spec = msg(
        "k8s.io.api.core.v1.ServiceSpec",
        vec![("ports", PValue::List(vec![port(number), port(named)]))],
    );
    let service = msg("k8s.io.api.core.v1.Service", vec![("spec", m(spec))]);
    let object = decode(&body("v1", "Service", service.encode_to_vec())).unwrap();
    assert_eq!(object["spec"]["ports"][0]["targetPort"], 8080);
    assert_eq!(object["spec"]["ports"][1]["targetPort"], "http");
    let lease = msg(
        "k8s.io.api.coordination.v1.LeaseSpec",
        vec![("lease_transitions", PValue::I32(7))],
    );
    let mut meta = object_meta("l");
    meta.set_field_by_name("generation", PValue::I64(1 << 40));
    let lease = msg(
        "k8s.io.api.coordination.v1.Lease",
        vec![("metadata", m(meta)), ("spec", m(lease))],
    );
    let object = decode(&body(
        "coordination.k8s.io/v1",
        "Lease",
        lease.encode_to_vec(),
    ))
    .unwrap();
    assert_eq!(object["metadata"]["generation"], 1_i64 << 40);
    assert_eq!(object["spec"]["leaseTransitions"], 7);
}

#[test]
fn secret_bytes_are_base64_and_string_maps_stay_strings() {
    let secret = msg(
        "k8s.io.api.core.v1.Secret",
        vec![
            ("metadata", m(object_meta("s"))),
            (
                "data",
                map(&[("password", PValue::Bytes(b"hunter2".to_vec().into()))]),
            ),
            ("type", s("Opaque")),
        ],
    );
    let object = decode(&body("v1", "Secret", secret.encode_to_vec())).unwrap();
    assert_eq!(object["data"]["password"], "aHVudGVyMg==");
    assert_eq!(object["type"], "Opaque");
    let cm = msg(
        "k8s.io.api.core.v1.ConfigMap",
        vec![("data", map(&[("k", s("")), ("x", s("y"))]))],
    );
    let object = decode(&body("v1", "ConfigMap", cm.encode_to_vec())).unwrap();
    assert_eq!(
        object["data"],
        json!({"k": "", "x": "y"}),
        "map values are kept"
    );
}

#[test]
fn inline_members_and_embedded_json_land_in_their_parent() {
    let secret_source = msg(
        "k8s.io.api.core.v1.SecretVolumeSource",
        vec![("secret_name", s("creds"))],
    );
    let source = msg(
        "k8s.io.api.core.v1.VolumeSource",
        vec![("secret", m(secret_source))],
    );
    let volume = msg(
        "k8s.io.api.core.v1.Volume",
        vec![("name", s("v")), ("volume_source", m(source))],
    );
    let reference = msg(
        "k8s.io.api.core.v1.LocalObjectReference",
        vec![("name", s("cm"))],
    );
    let env_from = msg(
        "k8s.io.api.core.v1.EnvFromSource",
        vec![(
            "config_map_ref",
            m(msg(
                "k8s.io.api.core.v1.ConfigMapEnvSource",
                vec![("local_object_reference", m(reference))],
            )),
        )],
    );
    let container = msg(
        "k8s.io.api.core.v1.Container",
        vec![
            ("name", s("c")),
            ("env_from", PValue::List(vec![m(env_from)])),
        ],
    );
    let spec = msg(
        "k8s.io.api.core.v1.PodSpec",
        vec![
            ("volumes", PValue::List(vec![m(volume)])),
            ("containers", PValue::List(vec![m(container)])),
        ],
    );
    let fields = msg(
        &format!("{META}.FieldsV1"),
        vec![("raw", PValue::Bytes(br#"{"f:data":{}}"#.to_vec().into()))],
    );
    let entry = msg(
        &format!("{META}.ManagedFieldsEntry"),
        vec![("manager", s("kubectl")), ("fields_v1", m(fields))],
    );
    let meta = msg(
        &format!("{META}.ObjectMeta"),
        vec![("managed_fields", PValue::List(vec![m(entry)]))],
    );
    let pod = msg(
        "k8s.io.api.core.v1.Pod",
        vec![("metadata", m(meta)), ("spec", m(spec))],
    );
    let object = decode(&body("v1", "Pod", pod.encode_to_vec())).unwrap();
    assert_eq!(
        object["spec"]["volumes"],
        json!([{"name": "v", "secret": {"secretName": "creds"}}])
    );
    assert_eq!(
        object["spec"]["containers"][0]["envFrom"],
        json!([{"configMapRef": {"name": "cm"}}])
    );
    assert_eq!(
        object["metadata"]["managedFields"][0]["fieldsV1"],
        json!({"f:data": {}})
    );
}

#[test]
fn durations_read_as_go_prints_them() {
    assert_eq!(go_duration(0), "0s");
    assert_eq!(go_duration(1_500), "1.5µs");
    assert_eq!(go_duration(300_000_000), "300ms");
    assert_eq!(go_duration(1_500_000_000), "1.5s");
    assert_eq!(go_duration(3_723_000_000_000), "1h2m3s");
    assert_eq!(go_duration(-90_000_000_000), "-1m30s");
}

/// `key` as a protobuf varint field `number` with value 1.
fn unknown_varint(number: u64) -> Vec<u8> {
    let mut out = Vec::new();
    prost::encoding::encode_key(number as u32, prost::encoding::WireType::Varint, &mut out);
    out.push(1);
    out
}

#[test]
fn an_unknown_field_number_is_refused_with_message_and_number() {
    let mut raw = deployment(1).encode_to_vec();
    raw.extend(unknown_varint(99));
    let e = decode(&body("apps/v1", "Deployment", raw)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "k8s.io.api.apps.v1.Deployment has no field number 99"
    );
    // Nested: a DeploymentSpec (field 2) holding field 77.
    let mut raw = Vec::new();
    prost::encoding::bytes::encode(2, &unknown_varint(77), &mut raw);
    let e = decode(&body("apps/v1", "Deployment", raw)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "k8s.io.api.apps.v1.DeploymentSpec has no field number 77"
    );
    // In the envelope too.
    let mut envelope = body("v1", "ConfigMap", Vec::new());
    envelope.extend(unknown_varint(9));
    let e = decode(&envelope).unwrap_err();
    assert!(
        e.to_string().ends_with("Unknown has no field number 9"),
        "{e}"
    );
}

#[test]
fn bad_bodies_are_errors_never_panics() {
    assert!(matches!(decode(b"k8s"), Err(ProtoError::Magic)));
    assert!(matches!(decode(b"{\"kind\":1}"), Err(ProtoError::Magic)));
    let e = decode(&body("apps/v1", "Frobnicator", Vec::new())).unwrap_err();
    assert!(matches!(e, ProtoError::NoMessage { .. }), "{e}");
    assert!(decode(&body("", "", Vec::new())).is_err());
    let whole = body("apps/v1", "Deployment", deployment(2).encode_to_vec());
    assert!(decode(&whole).is_ok());
    let mut errors = 0;
    for cut in MAGIC.len()..whole.len() {
        errors += usize::from(decode(&whole[..cut]).is_err());
    }
    assert!(errors > 0, "some truncation must be refused");
    for at in MAGIC.len()..whole.len() {
        for flip in [0x01_u8, 0x80, 0xff] {
            let mut broken = whole.clone();
            broken[at] ^= flip;
            let _ = decode(&broken);
        }
    }
}

#[test]
fn the_envelope_kind_must_match_the_url() {
    use crate::api::query::FieldValidation;
    use crate::api::validate::decode_checked;
    let deployments = crate::kinds::find("apps", "v1", "deployments").unwrap();
    let raw = msg(
        "k8s.io.api.apps.v1.ReplicaSet",
        vec![("metadata", m(object_meta("web")))],
    )
    .encode_to_vec();
    let e = decode_checked(
        "application/vnd.kubernetes.protobuf",
        &body("apps/v1", "ReplicaSet", raw),
        deployments,
        FieldValidation::Strict,
    )
    .unwrap_err();
    assert_eq!(e.code, 400);
    assert!(
        e.message.contains("does not match the expected kind"),
        "{}",
        e.message
    );
    let e = decode_checked(
        "application/vnd.kubernetes.protobuf",
        b"k8s\0\x0a",
        deployments,
        FieldValidation::Strict,
    )
    .unwrap_err();
    assert_eq!(e.code, 400, "{}", e.message);
    let (object, _) = decode_checked(
        "application/vnd.kubernetes.protobuf",
        &body("apps/v1", "Deployment", deployment(2).encode_to_vec()),
        deployments,
        FieldValidation::Strict,
    )
    .unwrap();
    assert_eq!(
        object["spec"]["strategy"]["type"], "RollingUpdate",
        "defaults apply"
    );
}
