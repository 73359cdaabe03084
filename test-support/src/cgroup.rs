//! A cgroup directory made by a test (e.g. under the v2 mount, where the BPF cgroup hooks
//! attach), removed on drop once its processes have exited.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// A cgroup directory created by the test; `rmdir`ed on drop (retried while processes exit).
pub struct CgroupDir {
    pub path: PathBuf,
}

impl CgroupDir {
    /// Creates `parent/name`.
    pub fn create(parent: &Path, name: &str) -> std::io::Result<CgroupDir> {
        let path = parent.join(name);
        std::fs::create_dir(&path)?;
        Ok(CgroupDir { path })
    }

    /// Creates `parent/name`; panics naming the path when it cannot.
    pub fn new(parent: &Path, name: &str) -> CgroupDir {
        Self::create(parent, name)
            .unwrap_or_else(|e| panic!("mkdir {}: {e}", parent.join(name).display()))
    }

    /// The `cgroup.procs` file: write a pid (or `0` for the writer) to move it here.
    pub fn procs(&self) -> PathBuf {
        self.path.join("cgroup.procs")
    }
}

impl Drop for CgroupDir {
    fn drop(&mut self) {
        for _ in 0..100 {
            if std::fs::remove_dir(&self.path).is_ok() || !self.path.exists() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        eprintln!("warning: could not remove cgroup {}", self.path.display());
    }
}
