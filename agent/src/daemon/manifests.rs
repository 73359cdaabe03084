//! The static-pod manifest directory: which pods the files in it ask for. A file that stops
//! parsing keeps the pods it last described (and its error is logged), so one bad edit never
//! deletes running pods or stops the others.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::spec::{manifest_hash, parse_manifests, pod_uid, Manifest, Pod};

/// A pod wanted by a manifest file.
#[derive(Debug, Clone)]
pub struct DesiredPod {
    pub pod: Pod,
    pub hash: String,
    pub file: PathBuf,
}

/// Remembers each file's last good content.
#[derive(Default)]
pub struct ManifestDir {
    files: HashMap<PathBuf, (SystemTime, u64, Vec<DesiredPod>)>,
    errors: HashMap<PathBuf, String>,
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
                    Ok(pods) => {
                        self.errors.remove(&path);
                        self.files.insert(path, (stamp.0, stamp.1, pods));
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
        self.files.retain(|p, _| seen.contains(p));
        self.errors.retain(|p, _| seen.contains(p));
        let mut out = BTreeMap::new();
        let mut files: Vec<&PathBuf> = self.files.keys().collect();
        files.sort();
        for f in files {
            for d in &self.files[f].2 {
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

    /// The current error of each invalid file.
    pub fn errors(&self) -> &HashMap<PathBuf, String> {
        &self.errors
    }
}

fn read_file(path: &Path) -> Result<Vec<DesiredPod>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("reading: {e}"))?;
    let docs = parse_manifests(&text).map_err(|e| e.to_string())?;
    Ok(docs
        .into_iter()
        .filter_map(|m| match m {
            Manifest::Pod(pod) => Some(DesiredPod {
                hash: manifest_hash(&pod),
                pod,
                file: path.to_path_buf(),
            }),
            Manifest::Other { .. } => None,
        })
        .collect())
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
}
