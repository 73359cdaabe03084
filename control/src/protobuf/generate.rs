//! The generator of `kubernetes.binpb`, the protobuf descriptor set the decoder uses (tests
//! only). It reads the prost-generated Rust source of the `k8s-pb` crate (found through
//! `cargo metadata`), keeps the messages reachable from the kinds table and the
//! `runtime.Unknown` envelope, and names each field's JSON key from our OpenAPI schemas (the
//! property whose letters equal the prost field name's). `descriptor_is_fresh` fails when the
//! committed file differs; `BOSUN_REGENERATE=1 cargo test -p bosun-control descriptor_is_fresh`
//! rewrites it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use prost::Message as _;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{
    DescriptorProto, FieldDescriptorProto, FileDescriptorProto, FileDescriptorSet, MessageOptions,
};
use serde_json::Value;

use super::{message_name, DELETE_OPTIONS, UNKNOWN};
use crate::kinds::RESOURCES;

/// A field's type as prost-build writes it in `#[prost(...)]`.
#[derive(Clone, Debug)]
enum Ty {
    Scalar(Type),
    Message(String),
    /// `btree_map = "string, …"`: the value's type.
    Map(Box<Ty>),
}

#[derive(Clone, Debug)]
struct Field {
    name: String,
    number: i32,
    repeated: bool,
    ty: Ty,
}

type Messages = BTreeMap<String, Vec<Field>>;

fn scalar(word: &str) -> Option<Type> {
    Some(match word {
        "string" => Type::String,
        "bytes" => Type::Bytes,
        "bool" => Type::Bool,
        "int32" => Type::Int32,
        "int64" => Type::Int64,
        "double" => Type::Double,
        "float" => Type::Float,
        _ => return None,
    })
}

/// The proto full name a Rust type path names, seen from module `module` (`api.apps.v1`).
fn resolve(module: &[String], rust_type: &str) -> String {
    let mut text = rust_type.replace(char::is_whitespace, "");
    for wrapper in [
        "::core::option::Option<",
        "::prost::alloc::vec::Vec<",
        "::prost::alloc::boxed::Box<",
        "::prost::alloc::collections::BTreeMap<",
        "::prost::alloc::string::String,",
    ] {
        text = text.replace(wrapper, "");
    }
    let path = text.trim_end_matches([',', '>']);
    let mut at: Vec<String> = module.to_vec();
    let segments: Vec<&str> = path.split("::").collect();
    assert!(
        !path.is_empty() && !path.ends_with(":"),
        "type {rust_type:?} in {module:?}"
    );
    let (name, dirs) = segments.split_last().expect("a type path");
    for dir in dirs {
        if *dir == "super" {
            at.pop();
        } else {
            at.push((*dir).to_owned());
        }
    }
    format!("k8s.io.{}.{name}", at.join("."))
}

/// The messages of one prost-generated `mod.rs`, of module `module`.
fn parse_file(module: &[String], text: &str, out: &mut Messages) {
    let package = format!("k8s.io.{}", module.join("."));
    let mut lines = text.lines().peekable();
    let mut current: Option<(String, Vec<Field>)> = None;
    while let Some(line) = lines.next() {
        if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|r| r.strip_suffix(" {"))
        {
            current = Some((format!("{package}.{name}"), Vec::new()));
        } else if let Some(name) = line
            .strip_prefix("pub struct ")
            .and_then(|r| r.strip_suffix(" {}"))
        {
            out.insert(format!("{package}.{name}"), Vec::new());
        } else if line == "}" {
            if let Some((name, fields)) = current.take() {
                out.insert(name, fields);
            }
        } else if let Some(attr) = line.trim().strip_prefix("#[prost(") {
            let Some((_, fields)) = current.as_mut() else {
                continue;
            };
            let mut decl = String::new();
            for next in lines.by_ref() {
                decl.push_str(next.trim());
                let open = decl.matches('<').count();
                if decl.ends_with(',') && open == decl.matches('>').count() {
                    break;
                }
            }
            let decl = decl.strip_prefix("pub ").expect("a pub field");
            let (name, rust_type) = decl.split_once(':').expect("name: type");
            let parts: Vec<&str> = attr.trim_end_matches(")]").split(", ").collect();
            let number = attr
                .split("tag = \"")
                .nth(1)
                .and_then(|t| t.split('"').next())
                .and_then(|t| t.parse().ok())
                .expect("a tag");
            let (ty, repeated) = if let Some(map) = attr.strip_prefix("btree_map = \"") {
                let value = map.split('"').next().expect("map types");
                let value = value.strip_prefix("string, ").expect("string keys");
                let value = scalar(value)
                    .map(Ty::Scalar)
                    .unwrap_or_else(|| Ty::Message(resolve(module, rust_type)));
                (Ty::Map(Box::new(value)), true)
            } else {
                let kind = parts[0].split(" = ").next().expect("a kind");
                let ty = scalar(kind)
                    .map(Ty::Scalar)
                    .unwrap_or_else(|| Ty::Message(resolve(module, rust_type)));
                (ty, parts.contains(&"repeated"))
            };
            fields.push(Field {
                name: name.trim_start_matches("r#").to_owned(),
                number,
                repeated,
                ty,
            });
        }
    }
}

fn parse_tree(root: &Path, module: &mut Vec<String>, out: &mut Messages) {
    let dir = root.join(module.join("/"));
    let mod_rs = dir.join("mod.rs");
    if let Ok(text) = std::fs::read_to_string(&mod_rs) {
        parse_file(module, &text, out);
    }
    let mut entries: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("a k8s-pb source directory")
        .map(|e| e.expect("a directory entry").path())
        .filter(|p| p.is_dir())
        .collect();
    entries.sort();
    for sub in entries {
        module.push(sub.file_name().unwrap().to_string_lossy().into_owned());
        parse_tree(root, module, out);
        module.pop();
    }
}

/// Letters and digits only, lower-cased: `externalIPs` and `external_i_ps` agree.
fn letters(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

fn lower_camel(snake: &str) -> String {
    let mut out = String::new();
    let mut upper = false;
    for c in snake.chars() {
        if c == '_' {
            upper = true;
        } else if upper {
            out.push(c.to_ascii_uppercase());
            upper = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn upper_camel(snake: &str) -> String {
    let camel = lower_camel(snake);
    let mut chars = camel.chars();
    chars
        .next()
        .map(|c| c.to_ascii_uppercase().to_string() + chars.as_str())
        .unwrap_or_default()
}

/// The JSON name of each field of `message`, from its OpenAPI schema's properties.
fn json_names(schemas: &serde_json::Map<String, Value>, message: &str) -> BTreeMap<String, String> {
    let schema = format!("io.k8s.{}", message.trim_start_matches("k8s.io."));
    schemas
        .get(&schema)
        .and_then(|s| s["properties"].as_object())
        .map(|props| props.keys().map(|k| (letters(k), k.clone())).collect())
        .unwrap_or_default()
}

fn field_proto(field: &Field, json: String, entry: Option<String>) -> FieldDescriptorProto {
    let (ty, type_name) = match (&field.ty, entry) {
        (_, Some(entry)) => (Type::Message, Some(entry)),
        (Ty::Scalar(t), None) => (*t, None),
        (Ty::Message(m), None) => (Type::Message, Some(format!(".{m}"))),
        (Ty::Map(_), None) => unreachable!("a map field has an entry message"),
    };
    FieldDescriptorProto {
        name: Some(field.name.clone()),
        number: Some(field.number),
        label: Some(if field.repeated {
            Label::Repeated
        } else {
            Label::Optional
        } as i32),
        r#type: Some(ty as i32),
        type_name,
        json_name: Some(json),
        ..Default::default()
    }
}

fn value_field(ty: &Ty) -> FieldDescriptorProto {
    let field = Field {
        name: "value".into(),
        number: 2,
        repeated: false,
        ty: ty.clone(),
    };
    field_proto(&field, "value".into(), None)
}

fn message_proto(name: &str, fields: &[Field], json: &BTreeMap<String, String>) -> DescriptorProto {
    let short = name.rsplit('.').next().expect("a name");
    let mut proto = DescriptorProto {
        name: Some(short.to_owned()),
        ..Default::default()
    };
    let mut sorted = fields.to_vec();
    sorted.sort_by_key(|f| f.number);
    for field in &sorted {
        let json_name = json
            .get(&letters(&field.name))
            .cloned()
            .unwrap_or_else(|| lower_camel(&field.name));
        let mut entry = None;
        if let Ty::Map(value) = &field.ty {
            let entry_name = format!("{}Entry", upper_camel(&field.name));
            entry = Some(format!(".{name}.{entry_name}"));
            let key = Field {
                name: "key".into(),
                number: 1,
                repeated: false,
                ty: Ty::Scalar(Type::String),
            };
            proto.nested_type.push(DescriptorProto {
                name: Some(entry_name),
                field: vec![field_proto(&key, "key".into(), None), value_field(value)],
                options: Some(MessageOptions {
                    map_entry: Some(true),
                    ..Default::default()
                }),
                ..Default::default()
            });
        }
        proto.field.push(field_proto(field, json_name, entry));
    }
    proto
}

fn referenced(ty: &Ty) -> Option<&str> {
    match ty {
        Ty::Scalar(_) => None,
        Ty::Message(m) => Some(m),
        Ty::Map(value) => referenced(value),
    }
}

/// The proto name of each prost struct: prost-build renames `CSIDriver` to `CsiDriver` and
/// `HTTPIngressPath` to `HttpIngressPath`; the OpenAPI schema of the same package whose name
/// differs only in case has the original.
fn proto_names(
    messages: &Messages,
    schemas: &serde_json::Map<String, Value>,
) -> BTreeMap<String, String> {
    let by_lower: BTreeMap<String, String> = schemas
        .keys()
        .filter_map(|k| k.strip_prefix("io.k8s."))
        .map(|k| {
            (
                format!("k8s.io.{k}").to_ascii_lowercase(),
                format!("k8s.io.{k}"),
            )
        })
        .collect();
    messages
        .keys()
        .map(|prost| {
            let proto = by_lower
                .get(&prost.to_ascii_lowercase())
                .cloned()
                .unwrap_or_else(|| prost.clone());
            (prost.clone(), proto)
        })
        .collect()
}

fn rename(ty: &mut Ty, names: &BTreeMap<String, String>) {
    match ty {
        Ty::Scalar(_) => {}
        Ty::Message(m) => {
            if let Some(proto) = names.get(m) {
                *m = proto.clone();
            }
        }
        Ty::Map(value) => rename(value, names),
    }
}

/// Every message of k8s-pb's `api` and `apimachinery` trees, under its proto name.
fn parse_all(source: &Path, schemas: &serde_json::Map<String, Value>) -> Messages {
    let mut prost_named = Messages::new();
    for top in ["api", "apimachinery"] {
        parse_tree(source, &mut vec![top.to_owned()], &mut prost_named);
    }
    let names = proto_names(&prost_named, schemas);
    prost_named
        .into_iter()
        .map(|(name, mut fields)| {
            fields.iter_mut().for_each(|f| rename(&mut f.ty, &names));
            (names[&name].clone(), fields)
        })
        .collect()
}

/// The JSON name of `field` of `message`: its property, or, for a message field whose
/// properties all sit in the parent's (Go's `json:",inline"`, as Volume's VolumeSource),
/// `<name>,inline`, or the camel-cased prost name when the schema lacks it (a field newer
/// than our Kubernetes version, which strict decoding then names as unknown).
fn json_name(
    schemas: &serde_json::Map<String, Value>,
    messages: &Messages,
    message: &str,
    field: &Field,
) -> String {
    let own = json_names(schemas, message);
    if let Some(name) = own.get(&letters(&field.name)) {
        return name.clone();
    }
    if let (Some(Ty::Message(inner)), false) = (Some(&field.ty), field.repeated) {
        let inner = messages.get(inner).map(Vec::as_slice).unwrap_or_default();
        let shared = inner
            .iter()
            .filter(|f| own.contains_key(&letters(&f.name)))
            .count();
        if shared > 0 && shared * 2 >= inner.len() {
            return format!("{},inline", lower_camel(&field.name));
        }
    }
    lower_camel(&field.name)
}

/// Bodies kubectl sends as protobuf that are not stored kinds: a subresource's (`kubectl
/// create token`, `kubectl drain`'s evictions) and the access reviews (`kubectl auth can-i
/// [--list]`).
const BODY_SUBRESOURCES: &[(&str, &str, &str)] = &[
    ("authentication.k8s.io", "v1", "TokenRequest"),
    ("authorization.k8s.io", "v1", "SelfSubjectAccessReview"),
    ("authorization.k8s.io", "v1", "SelfSubjectRulesReview"),
    ("policy", "v1", "Eviction"),
];

/// The descriptor set, encoded, from k8s-pb's source at `source`.
pub fn generate(source: &Path) -> Vec<u8> {
    let all: Vec<&'static crate::kinds::Resource> = RESOURCES.iter().collect();
    let (schemas, _) = crate::openapi::schemas::build(&all);
    let messages = parse_all(source, &schemas);
    let mut todo: Vec<String> = RESOURCES
        .iter()
        .filter(|r| r.takes_protobuf())
        .map(|r| message_name(r.group, r.version, r.kind))
        .chain([UNKNOWN.to_owned(), DELETE_OPTIONS.to_owned()])
        .chain(
            BODY_SUBRESOURCES
                .iter()
                .map(|(g, v, k)| message_name(g, v, k)),
        )
        .collect();
    let mut reached = BTreeSet::new();
    while let Some(name) = todo.pop() {
        if !reached.insert(name.clone()) {
            continue;
        }
        let fields = messages
            .get(&name)
            .unwrap_or_else(|| panic!("k8s-pb has no message {name}"));
        todo.extend(
            fields
                .iter()
                .filter_map(|f| referenced(&f.ty).map(str::to_owned)),
        );
    }
    let mut files: BTreeMap<String, FileDescriptorProto> = BTreeMap::new();
    for name in &reached {
        let (package, _) = name.rsplit_once('.').expect("a package");
        let fields = &messages[name];
        let file = files
            .entry(package.to_owned())
            .or_insert_with(|| FileDescriptorProto {
                name: Some(format!("{}/generated.proto", package.replace('.', "/"))),
                package: Some(package.to_owned()),
                syntax: Some("proto2".into()),
                ..Default::default()
            });
        for f in fields {
            if let Some((dep, _)) = referenced(&f.ty).and_then(|m| m.rsplit_once('.')) {
                let dep = format!("{}/generated.proto", dep.replace('.', "/"));
                if dep != *file.name() && !file.dependency.contains(&dep) {
                    file.dependency.push(dep);
                }
            }
        }
        let json: BTreeMap<String, String> = fields
            .iter()
            .map(|f| (letters(&f.name), json_name(&schemas, &messages, name, f)))
            .collect();
        file.message_type.push(message_proto(name, fields, &json));
    }
    let mut set = FileDescriptorSet::default();
    for (_, mut file) in files {
        file.dependency.sort();
        set.file.push(file);
    }
    set.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_is_fresh() {
        let fresh = generate(&crate::api::patch::generate::k8s_pb_src());
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/src/protobuf/kubernetes.binpb");
        if std::env::var_os("BOSUN_REGENERATE").is_some() {
            std::fs::write(path, &fresh).expect("writing the descriptor");
        }
        assert!(
            fresh == super::super::DESCRIPTOR,
            "src/protobuf/kubernetes.binpb is stale: run \
             BOSUN_REGENERATE=1 cargo test -p bosun-control descriptor_is_fresh"
        );
    }
}
