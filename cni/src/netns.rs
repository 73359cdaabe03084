//! Running code inside another network namespace: a dedicated thread enters it with
//! setns(2) and runs the closure there, so the caller's own thread never changes namespace.
//! Never leaves a thread behind in a foreign namespace: the thread ends with the closure.

use std::fs::File;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

use crate::spec::{code, CniError};

/// Opens a netns file; failure is an I/O error naming the path.
pub fn open(path: &Path) -> Result<File, CniError> {
    File::open(path).map_err(|e| {
        CniError::new(
            code::IO_FAILURE,
            "opening network namespace",
            format!("{}: {e}", path.display()),
        )
    })
}

/// Runs `f` on a fresh thread that has entered the network namespace `ns`.
pub fn run_in<T, F>(ns: &File, f: F) -> Result<T, CniError>
where
    T: Send,
    F: FnOnce() -> Result<T, CniError> + Send,
{
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                setns(ns, CloneFlags::CLONE_NEWNET).map_err(|e| {
                    CniError::new(
                        code::IO_FAILURE,
                        "entering network namespace",
                        e.to_string(),
                    )
                })?;
                f()
            })
            .join()
            .unwrap_or_else(|_| {
                Err(CniError::new(
                    code::IO_FAILURE,
                    "netns worker thread panicked",
                    "",
                ))
            })
    })
}
