//! The bosun peer: `bosun_ebpf::SockLb` loaded fresh (pins under
//! /sys/fs/bpf/bosun-bench-<pid>), attached to the bench cgroup v2 directory, programmed
//! through its table API. Full sync = one `upsert_services` of every service from empty;
//! one change = one `upsert_service`. Detached and unpinned on drop, also on failure.

use std::{
    path::{Path, PathBuf},
    time::Instant,
};

use anyhow::{bail, Context, Result};
use bosun_ebpf::{Backend, MapSizes, Protocol, ServiceKey, ServiceSpec, SockLb};

use super::{
    routing::{endpoints, vip},
    routing_env::thread_cpu_ms,
};

const BPFFS_ROOT: &str = "/sys/fs/bpf";

/// A loaded, attached socket LB for one benchmark case.
pub struct Bosun {
    lb: Option<SockLb>,
    pins: PathBuf,
}

/// The service key of service `i`.
pub fn key(i: u32) -> ServiceKey {
    ServiceKey {
        ip: vip(i),
        port: 80,
        protocol: Protocol::Tcp,
    }
}

/// Service spec with the first `count` endpoints.
fn spec(count: usize) -> ServiceSpec {
    ServiceSpec {
        backends: endpoints()
            .iter()
            .take(count)
            .map(|ep| Backend::ready(*ep.ip(), ep.port()))
            .collect(),
        ..ServiceSpec::default()
    }
}

/// Map sizes for `n` services of 10 endpoints: room for two generations of every service.
fn sizes(n: u32) -> MapSizes {
    let slots = (n as usize + 64) * endpoints().len() * 2;
    MapSizes {
        services: (n + 1024).next_power_of_two(),
        backend_slots: (slots as u32).next_power_of_two(),
        ..MapSizes::default()
    }
}

fn ensure_bpffs() -> Result<()> {
    let mounts = std::fs::read_to_string("/proc/self/mounts").context("reading mounts")?;
    let mounted = mounts
        .lines()
        .any(|l| l.split(' ').nth(1) == Some(BPFFS_ROOT) && l.contains(" bpf "));
    if !mounted {
        bail!("no bpffs at {BPFFS_ROOT} (mount -t bpf bpf {BPFFS_ROOT})");
    }
    Ok(())
}

impl Bosun {
    /// Loads the programs with maps sized for `n` services and attaches them to `cgroup`.
    pub fn load(n: u32, cgroup: &Path) -> Result<Bosun> {
        ensure_bpffs()?;
        let pins = Path::new(BPFFS_ROOT).join(format!("bosun-bench-{}", std::process::id()));
        // A leftover from a crashed run of this pid would be adopted with the wrong sizes.
        bosun_ebpf::unpin_all(&pins).context("clearing stale bench pins")?;
        let mut bosun = Bosun { lb: None, pins };
        let lb = SockLb::load_or_adopt(&bosun.pins, sizes(n)).context("loading the socket LB")?;
        bosun.lb = Some(lb);
        bosun
            .lb()
            .attach(cgroup)
            .with_context(|| format!("attaching to {}", cgroup.display()))?;
        Ok(bosun)
    }

    fn lb(&mut self) -> &mut SockLb {
        self.lb.as_mut().expect("loaded")
    }

    /// Programs services `0..n` from empty; returns (wall ms, CPU ms of the calling thread).
    pub fn sync_full(&mut self, n: u32) -> Result<(f64, f64)> {
        let all = endpoints().len();
        let services: Vec<(ServiceKey, ServiceSpec)> =
            (0..n).map(|i| (key(i), spec(all))).collect();
        let cpu = thread_cpu_ms()?;
        let start = Instant::now();
        let results = self.lb().upsert_services(services);
        let wall = start.elapsed().as_secs_f64() * 1e3;
        let cpu = thread_cpu_ms()? - cpu;
        let failed: Vec<String> = results
            .iter()
            .filter_map(|(k, r)| r.as_ref().err().map(|e| format!("{k}: {e}")))
            .take(3)
            .collect();
        if !failed.is_empty() {
            bail!(
                "bosun full sync failed for some services: {}",
                failed.join("; ")
            );
        }
        Ok((wall, cpu))
    }

    /// Leaves service `i` with its first `count` endpoints; returns wall ms.
    pub fn sync_one(&mut self, i: u32, count: usize) -> Result<f64> {
        let start = Instant::now();
        self.lb()
            .upsert_service(key(i), spec(count))
            .context("bosun one-endpoint change")?;
        Ok(start.elapsed().as_secs_f64() * 1e3)
    }

    /// Connections the LB translated for service `i` (its per-CPU counters).
    pub fn connections(&mut self, i: u32) -> Result<u64> {
        let services = self.lb().services();
        let id = services
            .get(&key(i))
            .context("measured service not installed")?
            .id;
        Ok(self
            .lb()
            .counters(id)
            .context("reading counters")?
            .connections)
    }
}

impl Drop for Bosun {
    fn drop(&mut self) {
        let result = match self.lb.take() {
            Some(lb) => lb.detach_and_unpin(),
            None => bosun_ebpf::unpin_all(&self.pins),
        };
        if let Err(e) = result {
            eprintln!("warning: unpinning {}: {e}", self.pins.display());
        }
    }
}
