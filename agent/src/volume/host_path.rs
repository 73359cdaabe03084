//! `hostPath`: a path of the node, checked against its `type` with kubelet's checks and error
//! texts (`hostPath type check failed: /x is not a directory`); `DirectoryOrCreate` makes a
//! 0755 directory, `FileOrCreate` a 0644 file (and its parent directories). An empty type
//! checks nothing, as in Kubernetes. The only place the agent touches the host outside its
//! own directories, and only where a pod asks.

use std::fs::OpenOptions;
use std::os::unix::fs::{DirBuilderExt, FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::VolumeError;
use crate::spec::HostPathVolumeSource;

pub(super) fn set_up(source: &HostPathVolumeSource) -> Result<PathBuf, VolumeError> {
    let path = PathBuf::from(&source.path);
    check_type(&path, source.kind.as_deref().unwrap_or(""))?;
    Ok(path)
}

fn failed(path: &Path, what: &str) -> VolumeError {
    let message = format!(
        "hostPath type check failed: {} is not {what}",
        path.display()
    );
    VolumeError::set_up("", message)
}

/// kubelet's `checkTypeInternal`.
pub(super) fn check_type(path: &Path, kind: &str) -> Result<(), VolumeError> {
    let meta = std::fs::metadata(path).ok();
    let ft = meta.as_ref().map(|m| m.file_type());
    let is = |pred: fn(&std::fs::FileType) -> bool| ft.as_ref().is_some_and(pred);
    match kind {
        "" => Ok(()),
        "DirectoryOrCreate" if meta.is_none() => std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(path)
            .map_err(|e| VolumeError::io("mkdir", path, e)),
        "DirectoryOrCreate" | "Directory" if !is(|t| t.is_dir()) => {
            Err(failed(path, "a directory"))
        }
        "FileOrCreate" if meta.is_none() => {
            if let Some(parent) = path.parent() {
                std::fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o755)
                    .create(parent)
                    .map_err(|e| VolumeError::io("mkdir", parent, e))?;
            }
            OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(false)
                .mode(0o644)
                .open(path)
                .map(|_| ())
                .map_err(|e| VolumeError::io("create", path, e))
        }
        "FileOrCreate" | "File" if !is(|t| t.is_file()) => Err(failed(path, "a file")),
        "Socket" if !is(|t| t.is_socket()) => Err(failed(path, "a socket file")),
        "CharDevice" if !is(|t| t.is_char_device()) => Err(failed(path, "a character device")),
        "BlockDevice" if !is(|t| t.is_block_device()) => Err(failed(path, "a block device")),
        "DirectoryOrCreate" | "Directory" | "FileOrCreate" | "File" | "Socket" | "CharDevice"
        | "BlockDevice" => Ok(()),
        other => Err(VolumeError::set_up(
            "",
            format!("{other} is an invalid volume type"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(r: Result<(), VolumeError>) -> String {
        match r {
            Err(VolumeError::SetUp { message, .. }) => message,
            other => panic!("expected a setup error, got {other:?}"),
        }
    }

    #[test]
    fn host_path_types_are_checked_like_kubelet() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, "x").expect("write");
        let d = dir.path();
        assert!(check_type(d, "Directory").is_ok());
        assert!(check_type(&file, "File").is_ok());
        assert_eq!(
            message(check_type(&file, "Directory")),
            format!(
                "hostPath type check failed: {} is not a directory",
                file.display()
            )
        );
        assert_eq!(
            message(check_type(d, "File")),
            format!("hostPath type check failed: {} is not a file", d.display())
        );
        let missing = d.join("missing");
        assert!(message(check_type(&missing, "Socket")).ends_with("is not a socket file"));
        assert!(message(check_type(&file, "CharDevice")).ends_with("is not a character device"));
        assert!(check_type(Path::new("/dev/null"), "CharDevice").is_ok());
        assert!(message(check_type(&file, "BlockDevice")).ends_with("is not a block device"));
        assert!(check_type(&missing, "").is_ok());
        let made = d.join("a/b");
        check_type(&made, "DirectoryOrCreate").expect("created");
        assert!(made.is_dir());
        let made_file = d.join("c/d");
        check_type(&made_file, "FileOrCreate").expect("created");
        assert!(made_file.is_file());
        assert!(message(check_type(&made_file, "DirectoryOrCreate")).ends_with("not a directory"));
    }
}
