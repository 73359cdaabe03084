//! Running a closure inside another network namespace: on a scoped thread that enters it, so
//! the calling thread (and the rest of the agent) never changes namespace. Used for CNI calls
//! and node routing when the node's network is a namespace of its own (`--node-netns`).

use std::fs::File;
use std::io;
use std::os::fd::AsFd;
use std::path::Path;

use nix::sched::{setns, CloneFlags};

/// Runs `f` in the network namespace at `netns`, or right here when `netns` is None.
pub fn in_netns<R: Send>(netns: Option<&Path>, f: impl FnOnce() -> R + Send) -> io::Result<R> {
    let Some(path) = netns else { return Ok(f()) };
    let target = File::open(path)?;
    std::thread::scope(|s| {
        s.spawn(move || {
            setns(target.as_fd(), CloneFlags::CLONE_NEWNET).map_err(io::Error::from)?;
            Ok(f())
        })
        .join()
        .map_err(|_| io::Error::other("netns thread panicked"))?
    })
}
