//! The static-pod manifest directory: which pods the files in it ask for. A file that stops
//! parsing keeps the pods, Services and EndpointSlices it last described (and its error is
//! logged), so one bad edit never deletes running pods or stops the others.

use std::collections::{BTreeMap, HashMap};
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

/// What one file asks for.
#[derive(Debug, Clone, Default)]
struct FileContent {
    pods: Vec<DesiredPod>,
    services: Vec<Service>,
    slices: Vec<EndpointSlice>,
}

/// Remembers each file's last good content.
#[derive(Default)]
pub struct ManifestDir {
    files: HashMap<PathBuf, (SystemTime, u64, FileContent)>,
    errors: HashMap<PathBuf, String>,
    /// Bumped whenever a file's content is replaced or a file goes away.
    generation: u64,
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
    /// Reads changed files and returns every desired pod by uid. Duplicate pods (same
    /// namespace/name in two files) keep the first file's and log an error.
    pub fn scan(&mut self, dir: &Path) -> BTreeMap<String, DesiredPod> {
        let mut seen = Vec::new();
        if let Ok(entries) = std::fs::read_dir(dir) {
            for e in entries.flatten() {
                let path = e.path();
                if !is_manifest(&path) {
                    continue;
                }
                let Ok(md) = e.metadata() else { continue };
                let stamp = (md.modified().unwrap_or(SystemTime::UNIX_EPOCH), md.len());
                seen.push(path.clone());
                if self.files.get(&path).map(|(t, l, _)| (*t, *l)) == Some(stamp) {
                    continue;
                }
                match read_file(&path) {
                    Ok(content) => {
                        self.errors.remove(&path);
                        self.files.insert(path, (stamp.0, stamp.1, content));
                        self.generation += 1;
                    }
                    Err(msg) => {
                        if self.errors.get(&path) != Some(&msg) {
                            tracing::error!(file = %path.display(), error = %msg, "invalid manifest; keeping its previous pods");
                        }
                        self.errors.insert(path.clone(), msg);
                        let prev = self
                            .files
                            .remove(&path)
                            .map(|(_, _, p)| p)
                            .unwrap_or_default();
                        self.files.insert(path, (stamp.0, stamp.1, prev));
                    }
                }
            }
        }
        let before = self.files.len();
        self.files.retain(|p, _| seen.contains(p));
        self.errors.retain(|p, _| seen.contains(p));
        if self.files.len() != before {
            self.generation += 1;
        }
        let mut out = BTreeMap::new();
        for f in self.sorted_files() {
            for d in &self.files[f].2.pods {
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

    /// Changes whenever the Services or EndpointSlices may have changed.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The Services of all files, in file order (as of the last scan).
    pub fn services(&self) -> Vec<Service> {
        let files = self.sorted_files().into_iter();
        files
            .flat_map(|f| self.files[f].2.services.iter().cloned())
            .collect()
    }

    /// The EndpointSlices of all files, in file order (as of the last scan).
    pub fn endpoint_slices(&self) -> Vec<EndpointSlice> {
        let files = self.sorted_files().into_iter();
        files
            .flat_map(|f| self.files[f].2.slices.iter().cloned())
            .collect()
    }

    /// The current error of each invalid file.
    pub fn errors(&self) -> &HashMap<PathBuf, String> {
        &self.errors
    }
}

fn read_file(path: &Path) -> Result<FileContent, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading: {e}"))?;
    let docs = parse_manifests(&text).map_err(|e| e.to_string())?;
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
            Manifest::Other { .. } => {}
        }
    }
    Ok(content)
}

#[cfg(test)]
mod tests {
    use super::*;

    const POD: &str = "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec:\n  containers: [{name: c, image: bosun.test/busybox:1}]\n";

    #[test]
    fn a_broken_edit_keeps_the_previous_pods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("web.yaml");
        std::fs::write(&f, POD).expect("write");
        std::fs::write(dir.path().join("notes.txt"), "ignored").expect("write");
        let mut md = ManifestDir::default();
        let first = md.scan(dir.path());
        assert_eq!(first.len(), 1);
        std::fs::write(
            &f,
            "apiVersion: v1\nkind: Pod\nmetadata: {name: web}\nspec: {containers: [{name: c}]}\n",
        )
        .expect("write");
        let second = md.scan(dir.path());
        assert_eq!(second.len(), 1, "previous pod kept");
        let err = md.errors().get(&f).expect("error recorded");
        assert!(err.contains("spec.containers[0].image"), "{err}");
        std::fs::remove_file(&f).expect("rm");
        assert!(md.scan(dir.path()).is_empty());
    }

    const SVC: &str = "apiVersion: v1\nkind: Service\nmetadata: {name: web}\nspec: {clusterIP: 10.96.0.10, ports: [{port: 80}]}\n";

    #[test]
    fn services_are_kept_per_file_like_pods() {
        let dir = tempfile::tempdir().expect("tempdir");
        let f = dir.path().join("svc.yaml");
        std::fs::write(&f, format!("{SVC}---\n{POD}")).expect("write");
        let mut md = ManifestDir::default();
        assert_eq!(md.scan(dir.path()).len(), 1);
        let g = md.generation();
        assert_eq!(md.services().len(), 1);
        md.scan(dir.path());
        assert_eq!(md.generation(), g, "unchanged files are not re-read");
        std::fs::write(&f, "kind: Service\n").expect("write");
        md.scan(dir.path());
        assert_eq!(
            md.services().len(),
            1,
            "a broken edit keeps the last good Service"
        );
        std::fs::remove_file(&f).expect("rm");
        md.scan(dir.path());
        assert!(md.services().is_empty());
        assert!(md.generation() > g);
    }
}
