//! A real OCI registry on loopback for pull tests: Debian's `docker-registry` (installed by
//! `cargo xtask setup`) on a free 127.0.0.1 port with its storage in a temp directory, filled
//! with `skopeo copy` from the OCI layouts `cargo xtask images` made. Killed and removed on drop.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use super::{images_dir, unique, wait_until};

pub struct Registry {
    /// `127.0.0.1:PORT`, as written in image references and `--insecure-registry`.
    pub host: String,
    pub dir: PathBuf,
    child: Child,
}

impl Registry {
    pub fn start() -> Registry {
        let dir = std::env::temp_dir().join(format!(
            "bosun-test-registry-{}-{}",
            std::process::id(),
            unique()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("data")).expect("create registry dir");
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free loopback port")
            .port();
        let host = format!("127.0.0.1:{port}");
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {host}}}\n",
                dir.join("data").display()
            ),
        )
        .expect("write registry config");
        let log = std::fs::File::create(dir.join("registry.log")).expect("registry log");
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            // Access lines go to stdout, everything else to stderr: keep both.
            .stdout(log.try_clone().expect("clone registry log"))
            .stderr(log)
            .spawn()
            .expect("start docker-registry (install it with `cargo xtask setup`)");
        wait_until("registry listening", Duration::from_secs(10), || {
            TcpStream::connect(&host).is_ok()
        });
        Registry { host, dir, child }
    }

    /// Pushes the test image `name` (a layout under `target/images`, whose ref.name is
    /// `bosun.test/<name>:1`) as `<host>/<repo>`.
    pub fn push(&self, name: &str, repo: &str) {
        let layout = images_dir().join(name);
        let out = Command::new("skopeo")
            .args(["copy", "--quiet", "--dest-tls-verify=false"])
            .arg(format!("oci:{}:bosun.test/{name}:1", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host))
            .output()
            .expect("run skopeo");
        assert!(
            out.status.success(),
            "skopeo copy {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The file the registry serves blob `digest` (`sha256:<hex>`) from.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(&hex[..2])
            .join(hex)
            .join("data")
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("registry.log")).unwrap_or_default()
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
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
