//! The generator of `merge_keys.rs`, run as a test: it reads the `+patchStrategy=` and
//! `+patchMergeKey=` markers that the `k8s-pb` crate's generated source keeps in its field doc
//! comments (found in cargo's registry, see [`k8s_pb_src`]), matches each prost struct and field to the
//! OpenAPI definition and property of the same name (case and `_` aside) in the schema
//! catalog, and fails when the committed table differs. `BOSUN_REGENERATE=1` rewrites it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

use crate::openapi::schemas;

/// The patch tags of one prost field, keyed by (lowercased struct path, normalized field).
type Tags = BTreeMap<(String, String), (String, String)>;

/// `externalIPs`, `external_i_ps` and `r#type` all become `externalips` / `type`.
fn normalize(name: &str) -> String {
    name.trim_start_matches("r#")
        .chars()
        .filter(|c| *c != '_' && *c != '-')
        .flat_map(char::to_lowercase)
        .collect()
}

/// The directory of k8s-pb's source (also read by the protobuf descriptor generator): the
/// version `Cargo.lock` pins, in cargo's registry — where building the tests put it — else
/// from `cargo metadata`, which offline fails on a machine that never downloaded every
/// package of the graph (one no build here needs).
pub(crate) fn k8s_pb_src() -> PathBuf {
    registry_src().unwrap_or_else(metadata_src)
}

/// `$CARGO_HOME/registry/src/<index>/k8s-pb-<locked version>/src`, if it is there.
fn registry_src() -> Option<PathBuf> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    let lock = std::fs::read_to_string(workspace.join("Cargo.lock")).ok()?;
    let version = locked_version(&lock, "k8s-pb")?;
    let home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cargo")))?;
    std::fs::read_dir(home.join("registry").join("src"))
        .ok()?
        .flatten()
        .map(|index| index.path().join(format!("k8s-pb-{version}")).join("src"))
        .find(|src| src.is_dir())
}

/// The version of package `name` in a `Cargo.lock`.
fn locked_version(lock: &str, name: &str) -> Option<String> {
    let wanted = format!("name = \"{name}\"");
    let mut lines = lock.lines();
    lines.by_ref().find(|line| *line == wanted)?;
    let version = lines
        .next()?
        .strip_prefix("version = \"")?
        .strip_suffix('"')?;
    Some(version.to_owned())
}

fn metadata_src() -> PathBuf {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    // Only this platform's packages: offline, cargo has the sources of no other platform's
    // dependencies (android_system_properties…) on a machine that never built for one.
    let platform = format!("{}-unknown-linux-gnu", std::env::consts::ARCH);
    let out = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--offline"])
        .args(["--filter-platform", &platform])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("running cargo metadata");
    assert!(out.status.success(), "cargo metadata: {out:?}");
    let metadata: Value = serde_json::from_slice(&out.stdout).expect("cargo metadata JSON");
    let manifest = metadata["packages"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == "k8s-pb")
        .and_then(|p| p["manifest_path"].as_str())
        .expect("k8s-pb among the packages (a dev-dependency of bosun-control)");
    Path::new(manifest).with_file_name("src")
}

/// Reads every `mod.rs` under `dir`; `prefix` is the OpenAPI package of that directory.
fn scan(dir: &Path, prefix: &str, tags: &mut Tags) {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .expect("reading k8s-pb source")
        .map(|e| e.expect("directory entry").path())
        .collect();
    entries.sort();
    for path in entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if path.is_dir() {
            scan(&path, &format!("{prefix}.{}", name.replace('_', "-")), tags);
        } else if name == "mod.rs" {
            let text = std::fs::read_to_string(&path).expect("reading k8s-pb source");
            scan_file(&text, prefix, tags);
        }
    }
}

/// Collects the tagged fields of the prost structs of one file.
fn scan_file(text: &str, prefix: &str, tags: &mut Tags) {
    let mut structure: Option<String> = None;
    let (mut strategy, mut key) = (String::new(), String::new());
    for line in text.lines() {
        let trimmed = line.trim();
        if let Some(rest) = line.strip_prefix("pub struct ") {
            structure = rest.split([' ', '{']).next().map(str::to_lowercase);
        } else if line.starts_with('}') {
            structure = None;
        } else if let Some(value) = trimmed.strip_prefix("/// +patchStrategy=") {
            strategy = value.trim().to_owned();
        } else if let Some(value) = trimmed.strip_prefix("/// +patchMergeKey=") {
            key = value.trim().to_owned();
        } else if let Some(field) = trimmed.strip_prefix("pub ").and_then(|r| r.split_once(':')) {
            if let Some(s) = &structure {
                if !strategy.is_empty() || !key.is_empty() {
                    tags.insert(
                        (format!("{prefix}.{s}"), normalize(field.0)),
                        (strategy.clone(), key.clone()),
                    );
                }
            }
            strategy.clear();
            key.clear();
        }
    }
}

/// The text of `merge_keys.rs` for the schema catalog and the tags read from `src`.
fn generate(src: &Path) -> String {
    let mut tags = Tags::new();
    scan(&src.join("api"), "io.k8s.api", &mut tags);
    scan(&src.join("apimachinery"), "io.k8s.apimachinery", &mut tags);
    let (catalog, _) = schemas::catalog();
    let mut rows = Vec::new();
    for (definition, schema) in &catalog {
        let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
            continue;
        };
        for property in properties.keys() {
            let lookup = (definition.to_lowercase(), normalize(property));
            if let Some((strategy, key)) = tags.get(&lookup) {
                rows.push(format!(
                    "    ({definition:?}, {property:?}, {strategy:?}, {key:?}),\n"
                ));
            }
        }
    }
    rows.sort();
    let mut out = String::from(HEADER);
    out.push_str("#[rustfmt::skip]\npub(super) const FIELDS: &[(&str, &str, &str, &str)] = &[\n");
    rows.iter().for_each(|r| out.push_str(r));
    out.push_str("];\n");
    out
}

const HEADER: &str = "\
//! GENERATED by `BOSUN_REGENERATE=1 cargo test -p bosun-control merge_keys_table_is_fresh`
//! (see `generate.rs`); do not edit. The patch strategy and merge key of every field that has
//! one, in the types of every served kind: (OpenAPI definition, JSON field, `patchStrategy`,
//! `patchMergeKey`), sorted for binary search. Read from the `+patchStrategy`/`+patchMergeKey`
//! markers of the `k8s-pb` crate's source, which k8s-openapi does not carry.

";

#[test]
fn merge_keys_table_is_fresh() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/api/patch/merge_keys.rs");
    let text = generate(&k8s_pb_src());
    if std::env::var_os("BOSUN_REGENERATE").is_some() {
        std::fs::write(&path, &text).expect("writing merge_keys.rs");
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == text,
        "{} is stale: run BOSUN_REGENERATE=1 cargo test -p bosun-control merge_keys_table_is_fresh",
        path.display()
    );
}

#[test]
fn finds_the_tags_of_prost_fields() {
    let source = "\
/// A doc.
/// \t    // +patchMergeKey=type
pub struct PodSpec {
    /// +patchMergeKey=name
    /// +patchStrategy=merge,retainKeys
    #[prost(message, repeated, tag = \"1\")]
    pub volumes: ::prost::alloc::vec::Vec<Volume>,
    pub r#type: ::core::option::Option<String>,
    /// +patchStrategy=retainKeys
    pub external_i_ps:
        Vec<String>,
}
";
    let mut tags = Tags::new();
    scan_file(source, "io.k8s.api.core.v1", &mut tags);
    assert_eq!(tags.len(), 2, "{tags:?}");
    assert_eq!(
        tags[&(
            "io.k8s.api.core.v1.podspec".to_owned(),
            "volumes".to_owned()
        )],
        ("merge,retainKeys".to_owned(), "name".to_owned())
    );
    assert!(tags.contains_key(&(
        "io.k8s.api.core.v1.podspec".to_owned(),
        "externalips".to_owned()
    )));
}

#[test]
fn reads_a_locked_version_and_finds_k8s_pb_in_the_registry() {
    let lock = "\
[[package]]
name = \"k8s-openapi\"
version = \"0.25.0\"

[[package]]
name = \"k8s-pb\"
version = \"0.7.0\"
source = \"registry+https://github.com/rust-lang/crates.io-index\"
";
    assert_eq!(locked_version(lock, "k8s-pb").as_deref(), Some("0.7.0"));
    assert_eq!(locked_version(lock, "k8s"), None);
    // The tests of this crate build k8s-pb, so its source is in the registry.
    let src = registry_src().expect("k8s-pb's source in cargo's registry");
    assert!(src.join("lib.rs").is_file(), "{}", src.display());
}
