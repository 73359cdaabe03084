//! The verbs of `cargo xtask` as a library, so the benchmark crate (`bosun-bench`) can share
//! the command runner and the test-image builder without xtask depending on it.
//!
//! Nothing here may depend on a crate whose build needs what `setup` installs.

pub mod bench;
pub mod demo;
pub mod fuzz;
pub mod images;
pub mod setup;
pub mod test;
pub mod up;
pub mod up_demo;
pub mod up_down;
pub mod up_net;
pub mod up_storage;
pub mod util;

#[cfg(test)]
mod tests {
    use std::collections::{BTreeSet, HashMap};

    use serde_json::Value;

    use crate::util;

    /// Crates whose build scripts need tools `setup` installs (protoc, clang, libbpf).
    const NEEDS_SETUP: &[&str] = &[
        "prost-build",
        "tonic-build",
        "tonic-prost-build",
        "bindgen",
        "libbpf-sys",
    ];

    /// The names of every package `xtask` builds with (normal and build dependencies, not
    /// dev-dependencies), from `cargo metadata`.
    fn xtask_build_closure() -> BTreeSet<String> {
        let out = util::output(util::cargo().current_dir(util::workspace_root()).args([
            "metadata",
            "--format-version",
            "1",
        ]))
        .expect("cargo metadata");
        let meta: Value = serde_json::from_str(&out).expect("metadata JSON");
        let names: HashMap<&str, &str> = meta["packages"]
            .as_array()
            .expect("packages")
            .iter()
            .filter_map(|p| Some((p["id"].as_str()?, p["name"].as_str()?)))
            .collect();
        let nodes: HashMap<&str, &Value> = meta["resolve"]["nodes"]
            .as_array()
            .expect("resolve.nodes")
            .iter()
            .filter_map(|n| Some((n["id"].as_str()?, n)))
            .collect();
        let root = names
            .iter()
            .find(|(_, name)| **name == "xtask")
            .map(|(id, _)| *id)
            .expect("xtask package");
        let mut seen = BTreeSet::new();
        let mut todo = vec![root];
        while let Some(id) = todo.pop() {
            if !seen.insert(id) {
                continue;
            }
            for dep in nodes[id]["deps"].as_array().into_iter().flatten() {
                let not_dev_only = dep["dep_kinds"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .any(|k| k["kind"].as_str() != Some("dev"));
                if let (true, Some(pkg)) = (not_dev_only, dep["pkg"].as_str()) {
                    todo.push(pkg);
                }
            }
        }
        seen.iter().map(|id| names[id].to_owned()).collect()
    }

    #[test]
    fn xtask_builds_without_anything_setup_installs() {
        let closure = xtask_build_closure();
        assert!(closure.contains("clap"), "closure looks wrong: {closure:?}");
        let ours: Vec<&String> = closure
            .iter()
            .filter(|name| name.starts_with("bosun-"))
            .collect();
        assert!(
            ours.is_empty(),
            "xtask must not depend on {ours:?}: their builds need clang/protoc, which only \
             `cargo xtask setup` installs"
        );
        for name in NEEDS_SETUP {
            assert!(
                !closure.contains(*name),
                "xtask must not depend on {name}: its build needs a tool `setup` installs"
            );
        }
    }
}
