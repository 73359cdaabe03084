//! Deferred deletion of directories: a container's writable layer can hold many files, and
//! deleting it in line would sit on the path of pod stop and container restart. A directory is
//! renamed into `<root>/trash/` (atomic, O(1)) and deleted by a background thread; whatever a
//! previous agent left there is deleted at the next start.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The trash directory under the agent root.
pub fn trash_dir(root: &Path) -> PathBuf {
    root.join("trash")
}

/// Moves `dir` into the trash and deletes it in the background. Missing dirs are fine; if the
/// rename fails (e.g. another filesystem) the directory is deleted in line.
pub fn discard(root: &Path, dir: &Path) -> std::io::Result<()> {
    static N: AtomicU64 = AtomicU64::new(0);
    if !dir.exists() {
        return Ok(());
    }
    let trash = trash_dir(root);
    std::fs::create_dir_all(&trash)?;
    let target = trash.join(format!(
        "{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ));
    match std::fs::rename(dir, &target) {
        Ok(()) => {
            std::thread::spawn(move || {
                let _ = std::fs::remove_dir_all(target);
            });
            Ok(())
        }
        Err(_) => std::fs::remove_dir_all(dir),
    }
}

/// Deletes what earlier agents left in the trash (in the background).
pub fn empty_in_background(root: &Path) {
    let trash = trash_dir(root);
    if trash.exists() {
        std::thread::spawn(move || {
            if let Ok(entries) = std::fs::read_dir(&trash) {
                for e in entries.flatten() {
                    let _ = std::fs::remove_dir_all(e.path());
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn discarded_directories_leave_their_place_at_once_and_are_deleted() {
        let root = tempfile::tempdir().expect("tempdir");
        let dir = root.path().join("pods/x");
        std::fs::create_dir_all(dir.join("a/b")).expect("mkdir");
        std::fs::write(dir.join("a/b/f"), "data").expect("write");
        discard(root.path(), &dir).expect("discard");
        assert!(!dir.exists());
        for _ in 0..100 {
            let left = std::fs::read_dir(trash_dir(root.path()))
                .map(|d| d.count())
                .unwrap_or(0);
            if left == 0 {
                return;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        panic!("trash was not emptied");
    }
}
