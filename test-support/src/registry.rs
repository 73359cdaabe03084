//! A real OCI registry on loopback for pull tests and the pull benchmark: Debian's
//! `docker-registry` (installed by `cargo xtask setup`) on a free 127.0.0.1 port with its
//! storage in a temp directory, filled with `skopeo copy` from OCI layouts. Killed and its
//! directory removed on drop. Only loopback is ever listened on or spoken to.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::command::{try_run, CommandError};

/// Why a registry could not be started or filled.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("docker-registry did not listen on {host} within 10 s: {log}")]
    NotListening { host: String, log: String },
    #[error(transparent)]
    Command(#[from] CommandError),
}

/// A running `docker-registry`.
pub struct Registry {
    /// `127.0.0.1:PORT`, as written in image references and `--insecure-registry`.
    pub host: String,
    pub dir: PathBuf,
    /// `user:password` the registry demands (htpasswd basic auth), if any.
    pub credentials: Option<(String, String)>,
    child: Child,
}

/// How to start a registry.
#[derive(Debug, Default, Clone)]
pub struct RegistryOptions {
    /// An htpasswd file (bcrypt entries): the registry then demands basic auth.
    pub htpasswd: Option<PathBuf>,
    /// The user and password of that file, kept for pushing. Without `htpasswd`, the
    /// registry gets an htpasswd file of this one user.
    pub credentials: Option<(String, String)>,
}

impl RegistryOptions {
    /// A registry demanding basic auth as `user` with `password`.
    pub fn basic_auth(user: &str, password: &str) -> Self {
        RegistryOptions {
            htpasswd: None,
            credentials: Some((user.to_owned(), password.to_owned())),
        }
    }
}

impl Registry {
    /// An anonymous registry.
    pub fn start() -> Result<Registry, RegistryError> {
        Self::start_with(&RegistryOptions::default())
    }

    pub fn start_with(options: &RegistryOptions) -> Result<Registry, RegistryError> {
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "bosun-registry-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let io = |action, path: &Path| {
            let path = path.to_path_buf();
            move |source| RegistryError::Io {
                action,
                path,
                source,
            }
        };
        let _ = std::fs::remove_dir_all(&dir);
        let data = dir.join("data");
        std::fs::create_dir_all(&data).map_err(io("creating", &data))?;
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map_err(io("binding a free port", Path::new("127.0.0.1:0")))?
            .port();
        let host = format!("127.0.0.1:{port}");
        let generated = dir.join("htpasswd");
        let htpasswd = match (&options.htpasswd, &options.credentials) {
            (Some(file), _) => Some(file.clone()),
            (None, Some((user, password))) => {
                // Low cost: the registry checks it on every request.
                let hash = bcrypt::hash(password, 4).map_err(|e| RegistryError::Io {
                    action: "hashing the password for",
                    path: generated.clone(),
                    source: std::io::Error::other(e),
                })?;
                std::fs::write(&generated, format!("{user}:{hash}\n"))
                    .map_err(io("writing", &generated))?;
                Some(generated)
            }
            (None, None) => None,
        };
        let auth = htpasswd.as_ref().map_or(String::new(), |file| {
            format!(
                "auth: {{htpasswd: {{realm: bosun-test, path: {}}}}}\n",
                file.display()
            )
        });
        let config = dir.join("config.yml");
        std::fs::write(
            &config,
            format!(
                "version: 0.1\nlog: {{level: warn}}\nstorage: {{filesystem: {{rootdirectory: {}}}}}\nhttp: {{addr: {host}}}\n{auth}",
                data.display()
            ),
        )
        .map_err(io("writing", &config))?;
        let log_path = dir.join("registry.log");
        let log = std::fs::File::create(&log_path).map_err(io("creating", &log_path))?;
        let log2 = log.try_clone().map_err(io("cloning", &log_path))?;
        let child = Command::new("docker-registry")
            .arg("serve")
            .arg(&config)
            // Access lines go to stdout, everything else to stderr: keep both.
            .stdout(log2)
            .stderr(log)
            .spawn()
            .map_err(io(
                "starting docker-registry (install it with `cargo xtask setup`) for",
                &config,
            ))?;
        let registry = Registry {
            host,
            dir,
            credentials: options.credentials.clone(),
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(&registry.host).is_err() {
            if Instant::now() > deadline {
                return Err(RegistryError::NotListening {
                    host: registry.host.clone(),
                    log: registry.log(),
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(registry)
    }

    /// Copies image `source_ref` of the OCI layout `layout` to `<host>/<repo>` with skopeo;
    /// an image index is copied whole (`--all`: the index and every manifest it lists).
    pub fn push_layout(
        &self,
        layout: &Path,
        source_ref: &str,
        repo: &str,
    ) -> Result<(), RegistryError> {
        self.push_layout_with(layout, source_ref, repo, &[])
    }

    /// [`push_layout`](Self::push_layout) with more `skopeo copy` flags, e.g.
    /// `--dest-compress-format zstd` (skopeo then recompresses every layer).
    pub fn push_layout_with(
        &self,
        layout: &Path,
        source_ref: &str,
        repo: &str,
        skopeo_flags: &[&str],
    ) -> Result<(), RegistryError> {
        let mut command = Command::new("skopeo");
        command.args(["copy", "--all", "--quiet", "--dest-tls-verify=false"]);
        command.args(skopeo_flags);
        if let Some((user, password)) = &self.credentials {
            command.arg(format!("--dest-creds={user}:{password}"));
        }
        command
            .arg(format!("oci:{}:{source_ref}", layout.display()))
            .arg(format!("docker://{}/{repo}", self.host));
        try_run(&mut command)?;
        Ok(())
    }

    /// The file the registry serves blob `digest` (`sha256:<hex>`) from.
    pub fn blob_file(&self, digest: &str) -> PathBuf {
        let hex = digest.trim_start_matches("sha256:");
        self.dir
            .join("data/docker/registry/v2/blobs/sha256")
            .join(hex.get(..2).unwrap_or(""))
            .join(hex)
            .join("data")
    }

    /// Everything the registry logged so far (access lines included).
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
