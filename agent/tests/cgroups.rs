//! Pod cgroups on this host's real cgroupfs (needs root).

use std::path::{Path, PathBuf};

use bosun_agent::runtime::cgroup::{CgroupHost, CgroupLayout};
use bosun_agent::runtime::cgroup_resources::CgroupResources;

const CPUSET: &str = "/sys/fs/cgroup/cpuset";

fn read(path: PathBuf) -> String {
    std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// A new cgroup's v1 cpuset comes from the kernel (`cgroup.clone_children` on the agent's
/// cgroups), not from a write of `cpuset.cpus`, which rebuilds the scheduler domains.
#[test]
fn the_kernel_fills_the_cpuset_of_new_pod_cgroups() {
    let root = format!("bosun-test-cgroups-{}", std::process::id());
    let host = CgroupHost::detect(Path::new(&root)).expect("cgroup layout");
    if host.setup == CgroupLayout::Unified || !Path::new(CPUSET).join("cpuset.cpus").exists() {
        eprintln!("skipped: no v1 cpuset hierarchy on this host");
        return;
    }
    let pod = Path::new(&root).join("besteffort/poda");
    let first = host
        .create(&pod, &CgroupResources::default())
        .expect("first pod cgroup");
    let container = host
        .create(&pod.join("app"), &CgroupResources::default())
        .expect("container cgroup");
    let second = host
        .create(
            &Path::new(&root).join("besteffort/podb"),
            &CgroupResources::default(),
        )
        .expect("second pod cgroup");
    let cpuset = Path::new(CPUSET);
    let flag = read(cpuset.join(&root).join("besteffort/cgroup.clone_children"));
    let inherited = read(cpuset.join(&pod).join("cgroup.clone_children"));
    let host_cpus = read(cpuset.join("cpuset.cpus"));
    let container_cpus = read(cpuset.join(&pod).join("app/cpuset.cpus"));
    for handle in [container, first, second] {
        handle.remove().expect("remove cgroup");
    }
    let mounts: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .expect("cgroupfs")
        .flatten()
        .map(|e| e.path())
        .collect();
    for dir in ["besteffort", ""] {
        for mount in &mounts {
            let _ = std::fs::remove_dir(mount.join(&root).join(dir));
        }
    }
    assert_eq!(flag, "1", "the agent's cgroups clone their parent's cpuset");
    assert_eq!(inherited, "1", "new cgroups inherit the flag");
    assert_eq!(container_cpus, host_cpus);
}
