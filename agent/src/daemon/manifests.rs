//! The static-pod manifest directory: which pods the files in it ask for. "Could not read" is
//! never "nothing there": a failed listing of the directory keeps every file's last good
//! content, a file whose metadata or text cannot be read right now keeps its own (both are
//! retried on the next scan), and a file that stops parsing keeps the pods, Services and
//! EndpointSlices it last described (its error names the file and the field) — the way kubelet
//! keeps the old static pod. Only a file absent from a successful listing is gone. Documents of
//! kinds the daemon does not run are reported once per version of their file.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::spec::{manifest_hash, parse_manifests, pod_uid, EndpointSlice, Manifest, Pod, Service};

/// A pod wanted by a manifest file.
#[derive(Debug, Clone)]
pub struct DesiredPod {
    pub pod: Pod,
    pub hash: String,
    pub file: PathBuf,
}

/// What tells a changed file from an unchanged one: modification time and length.
pub type Stamp = (SystemTime, u64);

/// One file of a successful listing, with its metadata (which may fail on its own).
pub struct ListedFile {
    pub path: PathBuf,
    pub stamp: io::Result<Stamp>,
}

/// How the manifest directory is read: the filesystem, or a double in tests.
pub trait ManifestSource: Send {
    /// Every file of `dir`. An error means the listing as a whole failed (nothing is known).
    fn list(&self, dir: &Path) -> io::Result<Vec<ListedFile>>;
    /// The text of one file.
    fn read(&self, path: &Path) -> io::Result<String>;
}

/// The real directory.
pub struct FsSource;

impl ManifestSource for FsSource {
    fn list(&self, dir: &Path) -> io::Result<Vec<ListedFile>> {
        let mut files = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            // An entry that cannot be read fails the whole listing: a file missing from a
            // partial listing would look deleted.
            let entry = entry?;
            let stamp = entry.metadata().map(|md| {
                let modified = md.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                (modified, md.len())
            });
            files.push(ListedFile {
                path: entry.path(),
                stamp,
            });
        }
        Ok(files)
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }
}

/// What one file asks for.
#[derive(Debug, Clone, Default)]
struct FileContent {
    pods: Vec<DesiredPod>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
}

/// Remembers each file's last good content.
pub struct ManifestDir {
    source: Box<dyn ManifestSource>,
    files: HashMap<PathBuf, (Stamp, FileContent)>,
    errors: HashMap<PathBuf, String>,
    /// Why the last listing failed, while it keeps failing (logged once).
    listing_error: Option<String>,
    /// Whether any listing succeeded yet: before that, nothing is known about the directory.
    listed: bool,
    /// Bumped whenever a file's content is replaced or a file goes away.
    generation: u64,
}

impl Default for ManifestDir {
    fn default() -> Self {
        ManifestDir::with_source(Box::new(FsSource))
    }
}

fn is_manifest(p: &Path) -> bool {
    let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
    !name.starts_with('.')
        && matches!(
            p.extension().and_then(|e| e.to_str()),
            Some("yaml" | "yml" | "json")
        )
}

impl ManifestDir {
    pub fn with_source(source: Box<dyn ManifestSource>) -> Self {
        ManifestDir {
            source,
            files: HashMap::new(),
            errors: HashMap::new(),
            listing_error: None,
            listed: false,
            generation: 0,
        }
    }

    /// Reads changed files and returns every desired pod by uid, or `None` while no listing of
    /// `dir` has succeeded yet (the caller must then leave its pods alone). Duplicate pods
    /// (same namespace/name in two files) keep the first file's and log an error.
    pub fn scan(&mut self, dir: &Path) -> Option<BTreeMap<String, DesiredPod>> {
        match self.source.list(dir) {
            Ok(listing) => {
                if let Some(error) = self.listing_error.take() {
                    tracing::info!(dir = %dir.display(), %error, "manifest directory readable again");
                }
                self.listed = true;
                self.apply_listing(listing);
            }
            Err(e) => {
                let error = e.to_string();
                if self.listing_error.as_ref() != Some(&error) {
                    tracing::error!(dir = %dir.display(), %error, "cannot list the manifest directory; keeping every pod as it is until it can be read");
                }
                self.listing_error = Some(error);
            }
        }
        self.listed.then(|| self.desired())
    }

    fn apply_listing(&mut self, listing: Vec<ListedFile>) {
        let mut seen = Vec::new();
        for file in listing.into_iter().filter(|f| is_manifest(&f.path)) {
            let path = file.path;
            let stamp = match file.stamp {
                Ok(stamp) => stamp,
                // Deleted between the listing and the stat: really gone.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => {
                    self.record_error(&path, format!("reading metadata: {e}"), "keeping its pods");
                    seen.push(path);
                    continue;
                }
            };
            seen.push(path.clone());
            if self.files.get(&path).map(|(s, _)| *s) == Some(stamp) {
                continue;
            }
            let text = match self.source.read(&path) {
                Ok(text) => text,
                Err(e) => {
                    // Not recorded as read: retried on the next scan.
                    self.record_error(&path, format!("reading: {e}"), "keeping its pods");
                    continue;
                }
            };
            match parse_file(&path, &text) {
                Ok(content) => {
                    if self.errors.remove(&path).is_some() {
                        tracing::info!(file = %path.display(), "manifest valid again");
                    }
                    self.files.insert(path, (stamp, content));
                    self.generation += 1;
                }
                Err(msg) => {
                    self.record_error(&path, msg, "invalid manifest; keeping its previous pods");
                    let prev = self.files.remove(&path).map(|(_, c)| c);
                    self.files.insert(path, (stamp, prev.unwrap_or_default()));
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|p, _| {
            let keep = seen.contains(p);
            if !keep {
                tracing::info!(file = %p.display(), "manifest removed");
            }
            keep
        });
        self.errors.retain(|p, _| seen.contains(p));
        if self.files.len() != before {
            self.generation += 1;
        }
    }

    /// Logs `error` for `path` unless it is the error already logged for it.
    fn record_error(&mut self, path: &Path, error: String, what: &str) {
        if self.errors.get(path) != Some(&error) {
            tracing::error!(file = %path.display(), %error, "{what}");
        }
        self.errors.insert(path.to_path_buf(), error);
    }

    fn desired(&self) -> BTreeMap<String, DesiredPod> {
        let mut out = BTreeMap::new();
        for f in self.sorted_files() {
            for d in &self.files[f].1.pods {
                let uid = pod_uid(&d.pod);
                if let Some(existing) = out.get(&uid) {
                    let existing: &DesiredPod = existing;
                    tracing::error!(pod = %d.pod.metadata.name, file = %f.display(), first = %existing.file.display(), "duplicate pod; ignoring");
                    continue;
                }
                out.insert(uid, d.clone());
            }
        }
        out
    }

    fn sorted_files(&self) -> Vec<&PathBuf> {
        let mut files: Vec<&PathBuf> = self.files.keys().collect();
        files.sort();
        files
    }

    /// Whether the directory has been listed successfully at least once.
    pub fn is_known(&self) -> bool {
        self.listed
    }

    /// No manifest directory at all (no `--manifests`): known, and empty.
    pub fn absent() -> Self {
        ManifestDir {
            listed: true,
            ..ManifestDir::default()
        }
    }

    /// Changes whenever the Services or EndpointSlices may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The Services of all files, in file order (as of the last scan).
    pub fn services(&self) -> Vec<Service> {
        let files = self.sorted_files().into_iter();
        files
            .flat_map(|f| self.files[f].1.services.iter().cloned())
            .collect()
    }

    /// The EndpointSlices of all files, in file order (as of the last scan).
    pub fn endpoint_slices(&self) -> Vec<EndpointSlice> {
        let files = self.sorted_files().into_iter();
        files
            .flat_map(|f| self.files[f].1.slices.iter().cloned())
            .collect()
    }

    /// The current error of each file that could not be read or parsed.
    pub fn errors(&self) -> &HashMap<PathBuf, String> {
        &self.errors
    }

    /// Why the directory cannot be listed, while that lasts.
    pub fn listing_error(&self) -> Option<&str> {
        self.listing_error.as_deref()
    }
}

/// Parses one file's text. Documents of kinds the daemon does not run are logged (this runs
/// once per version of a file, not on every scan).
fn parse_file(path: &Path, text: &str) -> Result<FileContent, String> {
    let docs = parse_manifests(text).map_err(|e| e.to_string())?;
    let mut content = FileContent::default();
    for m in docs {
        match m {
            Manifest::Pod(pod) => content.pods.push(DesiredPod {
                hash: manifest_hash(&pod),
                pod,
                file: path.to_path_buf(),
            }),
            Manifest::Service(s) => content.services.push(s),
            Manifest::EndpointSlice(s) => content.slices.push(s),
            Manifest::Other { kind, name, .. } => {
                tracing::warn!(file = %path.display(), %kind, %name, "ignoring a manifest of a kind the node agent does not run (it runs Pod, Service and EndpointSlice)");
            }
        }
    }
    Ok(content)
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
