//! The loopback registry of the pull tests: `bosun_test_support::Registry` (Debian's
//! `docker-registry`, filled by `skopeo`) with panicking helpers that push the OCI layouts
//! `cargo xtask images` made. Killed and removed on drop.

use std::ops::Deref;
use std::path::Path;

use super::images_dir;

pub struct Registry(bosun_test_support::Registry);

impl Registry {
    pub fn start() -> Registry {
        Registry(bosun_test_support::Registry::start().unwrap_or_else(|e| panic!("{e}")))
    }

    /// A registry demanding basic auth (htpasswd) as `user` with `password`.
    pub fn start_with_password(user: &str, password: &str) -> Registry {
        let options = bosun_test_support::RegistryOptions::basic_auth(user, password);
        Registry(
            bosun_test_support::Registry::start_with(&options).unwrap_or_else(|e| panic!("{e}")),
        )
    }

    /// Pushes the test image `name` (a layout under `target/images`, whose ref.name is
    /// `bosun.test/<name>:1`) as `<host>/<repo>`.
    pub fn push(&self, name: &str, repo: &str) {
        self.0
            .push_layout(
                &images_dir().join(name),
                &format!("bosun.test/{name}:1"),
                repo,
            )
            .unwrap_or_else(|e| panic!("pushing {name}: {e}"));
    }
}

impl Deref for Registry {
    type Target = bosun_test_support::Registry;
    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

/// The manifest and layer digests of a test image's layout (linux/amd64 manifest first).
pub fn layout_digests(name: &str) -> (String, Vec<String>) {
    let dir = images_dir().join(name);
    let read = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).expect("read layout json")).expect("json")
    };
    let index = read(&dir.join("index.json"));
    let manifest = index["manifests"][0]["digest"]
        .as_str()
        .expect("manifest digest")
        .to_owned();
    let m = read(
        &dir.join("blobs/sha256")
            .join(manifest.trim_start_matches("sha256:")),
    );
    let layers = m["layers"]
        .as_array()
        .expect("layers")
        .iter()
        .filter_map(|l| l["digest"].as_str().map(str::to_owned))
        .collect();
    (manifest, layers)
}
