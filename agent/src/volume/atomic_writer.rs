//! kubelet's atomic writer: a volume's files are written into a fresh timestamped directory
//! (`..2026_12_02_15_06_00.123456789`), then the `..data` symlink is pointed at it by renaming
//! a new symlink over it (one atomic rename), and each top-level name is a symlink through
//! `..data`. A reader therefore sees the whole old or the whole new content, never a mix or a
//! partial file. Unchanged content writes nothing. Only touches the directory it is given.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Component, Path, PathBuf};

use super::VolumeError;

const DATA: &str = "..data";
const DATA_TMP: &str = "..data_tmp";

/// One file of a volume: its path relative to the volume, content and mode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub data: Vec<u8>,
    pub mode: u32,
}

/// Writes `files` into `dir` atomically; returns whether anything changed.
pub fn write(dir: &Path, files: &BTreeMap<String, Payload>) -> Result<bool, VolumeError> {
    for path in files.keys() {
        let p = Path::new(path);
        let bad = p.is_absolute()
            || p.components().any(|c| !matches!(c, Component::Normal(_)))
            || path.starts_with("..");
        if bad || path.is_empty() {
            let message = format!("invalid file path {path:?}");
            return Err(VolumeError::set_up("", message));
        }
    }
    if current(dir).as_ref() == Some(files) {
        return Ok(false);
    }
    let now = humantime::format_rfc3339_nanos(std::time::SystemTime::now()).to_string();
    let stamp = format!(
        "..{}",
        now.trim_end_matches('Z').replace(['-', 'T', ':'], "_")
    );
    let ts_dir = dir.join(&stamp);
    let io = |op, p: &Path| {
        let p = p.to_path_buf();
        move |e| VolumeError::io(op, p, e)
    };
    std::fs::create_dir_all(&ts_dir).map_err(io("mkdir", &ts_dir))?;
    for (path, payload) in files {
        let target = ts_dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(io("mkdir", parent))?;
        }
        std::fs::write(&target, &payload.data).map_err(io("write", &target))?;
        let mode = std::fs::Permissions::from_mode(payload.mode);
        std::fs::set_permissions(&target, mode).map_err(io("chmod", &target))?;
    }
    let old = std::fs::read_link(dir.join(DATA)).ok();
    let tmp = dir.join(DATA_TMP);
    let _ = std::fs::remove_file(&tmp);
    std::os::unix::fs::symlink(&stamp, &tmp).map_err(io("symlink", &tmp))?;
    std::fs::rename(&tmp, dir.join(DATA)).map_err(io("rename", &tmp))?;
    // Top-level names through ..data: new ones added, gone ones removed.
    let top: std::collections::BTreeSet<String> = files
        .keys()
        .filter_map(|p| p.split('/').next().map(str::to_string))
        .collect();
    for name in &top {
        let link = dir.join(name);
        if std::fs::symlink_metadata(&link).is_err() {
            let to = Path::new(DATA).join(name);
            std::os::unix::fs::symlink(to, &link).map_err(io("symlink", &link))?;
        }
    }
    for e in std::fs::read_dir(dir)
        .map_err(io("readdir", dir))?
        .flatten()
    {
        let name = e.file_name().to_string_lossy().into_owned();
        if !name.starts_with("..") && !top.contains(&name) {
            let _ = std::fs::remove_file(e.path());
        }
    }
    if let Some(old) = old.filter(|o| o != Path::new(&stamp)) {
        let _ = std::fs::remove_dir_all(dir.join(old));
    }
    Ok(true)
}

/// What `dir` shows now (None when it has no `..data` yet).
fn current(dir: &Path) -> Option<BTreeMap<String, Payload>> {
    let data = dir.join(DATA);
    std::fs::read_link(&data).ok()?;
    let mut out = BTreeMap::new();
    collect(&data, &data, &mut out).ok()?;
    Some(out)
}

fn collect(base: &Path, dir: &Path, out: &mut BTreeMap<String, Payload>) -> std::io::Result<()> {
    for e in std::fs::read_dir(dir)?.flatten() {
        let path: PathBuf = e.path();
        let meta = std::fs::symlink_metadata(&path)?;
        if meta.is_dir() {
            collect(base, &path, out)?;
        } else {
            let rel = path.strip_prefix(base).unwrap_or(&path);
            let payload = Payload {
                data: std::fs::read(&path)?,
                mode: meta.permissions().mode() & 0o7777,
            };
            out.insert(rel.to_string_lossy().into_owned(), payload);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn files(items: &[(&str, &str)]) -> BTreeMap<String, Payload> {
        let p = |d: &str| Payload {
            data: d.as_bytes().to_vec(),
            mode: 0o640,
        };
        items.iter().map(|(k, v)| (k.to_string(), p(v))).collect()
    }

    #[test]
    fn updates_swap_the_data_link_and_drop_what_is_gone() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        assert!(write(d, &files(&[("a", "1"), ("sub/b", "2")])).expect("write"));
        assert_eq!(std::fs::read_to_string(d.join("a")).expect("a"), "1");
        assert_eq!(std::fs::read_to_string(d.join("sub/b")).expect("b"), "2");
        let mode = std::fs::metadata(d.join("a"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o640);
        let first = std::fs::read_link(d.join(DATA)).expect("data link");
        assert!(!write(d, &files(&[("a", "1"), ("sub/b", "2")])).expect("same"));
        assert!(write(d, &files(&[("a", "new")])).expect("update"));
        assert_eq!(std::fs::read_to_string(d.join("a")).expect("a"), "new");
        assert!(!d.join("sub").exists());
        assert!(!d.join(&first).exists(), "the old generation is removed");
        assert!(write(d, &files(&[("../x", "no")])).is_err());
    }
}
