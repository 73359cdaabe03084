//! What a cgroup and the node use: cumulative CPU time and the memory working set (usage less
//! inactive file pages, cAdvisor's definition, which `kubectl top` and the HPA read). The file
//! parsers are pure; [`super::cgroup::CgroupHandle::usage`] and [`node_usage`] read the files.
//! v2: `cpu.stat` `usage_usec`, `memory.current` and `memory.stat` `inactive_file`;
//! v1: `cpuacct.usage` (ns), `memory.usage_in_bytes` and `memory.stat` `total_inactive_file`.

use std::path::{Path, PathBuf};

/// One reading of a cgroup (or of the node).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    /// CPU time used since the cgroup was made, in core-seconds.
    pub cpu_seconds: f64,
    /// Memory in use less inactive file pages, in bytes.
    pub working_set_bytes: u64,
}

/// Why a reading failed: the file and the cause.
#[derive(Debug, thiserror::Error)]
pub enum UsageError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: no {field} in it")]
    Missing { path: PathBuf, field: &'static str },
}

pub(super) fn read(path: &Path) -> Result<String, UsageError> {
    std::fs::read_to_string(path).map_err(|source| UsageError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The value of `key` in a flat-keyed file (`cpu.stat`, `memory.stat`).
pub fn keyed(text: &str, key: &str) -> Option<u64> {
    text.lines().find_map(|l| {
        let (k, v) = l.split_once(' ')?;
        (k == key).then(|| v.trim().parse().ok()).flatten()
    })
}

/// Working set: usage less inactive file pages, never below zero.
pub fn working_set(usage: u64, inactive_file: u64) -> u64 {
    usage.saturating_sub(inactive_file)
}

/// Reads a v2 cgroup directory.
pub fn read_v2(dir: &Path) -> Result<Usage, UsageError> {
    let cpu_path = dir.join("cpu.stat");
    let usec = keyed(&read(&cpu_path)?, "usage_usec").ok_or(UsageError::Missing {
        path: cpu_path,
        field: "usage_usec",
    })?;
    let current = read(&dir.join("memory.current"))?;
    let current = current.trim().parse().unwrap_or(0);
    let stat = read(&dir.join("memory.stat"))?;
    Ok(Usage {
        cpu_seconds: usec as f64 / 1e6,
        working_set_bytes: working_set(current, keyed(&stat, "inactive_file").unwrap_or(0)),
    })
}

/// Reads v1 cgroup directories (the cpuacct and memory hierarchies').
pub fn read_v1(cpuacct: &Path, memory: &Path) -> Result<Usage, UsageError> {
    let ns: u64 = read(&cpuacct.join("cpuacct.usage"))?
        .trim()
        .parse()
        .unwrap_or(0);
    let usage: u64 = read(&memory.join("memory.usage_in_bytes"))?
        .trim()
        .parse()
        .unwrap_or(0);
    let stat = read(&memory.join("memory.stat"))?;
    Ok(Usage {
        cpu_seconds: ns as f64 / 1e9,
        working_set_bytes: working_set(usage, keyed(&stat, "total_inactive_file").unwrap_or(0)),
    })
}

/// The node's CPU time from `/proc/stat`'s `cpu` line: every busy state (user, nice, system,
/// irq, softirq, steal; guest time is inside user), in ticks.
pub fn proc_stat_busy_ticks(text: &str) -> Option<u64> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let f: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|v| v.parse().unwrap_or(0))
        .collect();
    // user nice system idle iowait irq softirq steal
    let at = |i: usize| f.get(i).copied().unwrap_or(0);
    Some(at(0) + at(1) + at(2) + at(5) + at(6) + at(7))
}

/// The node's working set from `/proc/meminfo`: MemTotal - MemAvailable, in bytes.
pub fn meminfo_working_set(text: &str) -> Option<u64> {
    let kib = |key: &str| {
        text.lines().find_map(|l| {
            let rest = l.strip_prefix(key)?.strip_prefix(':')?;
            rest.split_whitespace().next()?.parse::<u64>().ok()
        })
    };
    Some(kib("MemTotal")?.saturating_sub(kib("MemAvailable")?) * 1024)
}

/// The whole node (the machine the agent runs on).
pub fn node_usage() -> Result<Usage, UsageError> {
    let stat_path = Path::new("/proc/stat");
    let ticks = proc_stat_busy_ticks(&read(stat_path)?).ok_or(UsageError::Missing {
        path: stat_path.into(),
        field: "cpu line",
    })?;
    let hz = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|hz| *hz > 0)
        .unwrap_or(100);
    let meminfo = Path::new("/proc/meminfo");
    let ws = meminfo_working_set(&read(meminfo)?).ok_or(UsageError::Missing {
        path: meminfo.into(),
        field: "MemTotal/MemAvailable",
    })?;
    Ok(Usage {
        cpu_seconds: ticks as f64 / hz as f64,
        working_set_bytes: ws,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn v2_files_give_seconds_and_working_set() {
        let dir = std::env::temp_dir().join(format!("bosun-cgstats-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("cpu.stat"),
            "usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n",
        )
        .unwrap();
        std::fs::write(dir.join("memory.current"), "10485760\n").unwrap();
        std::fs::write(
            dir.join("memory.stat"),
            "anon 1\nactive_file 5\ninactive_file 4194304\n",
        )
        .unwrap();
        let u = read_v2(&dir).unwrap();
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(u.cpu_seconds, 2.5);
        assert_eq!(u.working_set_bytes, 10485760 - 4194304);
    }

    #[test]
    fn missing_files_name_the_file() {
        let e = read_v2(Path::new("/nonexistent-bosun")).unwrap_err();
        assert!(e.to_string().contains("cpu.stat"), "{e}");
    }

    #[test]
    fn node_files_parse() {
        let stat = "cpu  100 5 50 1000 7 3 2 1 9 0\ncpu0 1 2 3 4 5 6 7 8 9 0\n";
        assert_eq!(proc_stat_busy_ticks(stat), Some(100 + 5 + 50 + 3 + 2 + 1));
        let mem = "MemTotal:       2048 kB\nMemFree:   100 kB\nMemAvailable:    1024 kB\n";
        assert_eq!(meminfo_working_set(mem), Some(1024 * 1024));
        assert_eq!(working_set(5, 9), 0);
    }
}
