//! Loading, pinning, adopting and attaching the socket load balancer.
//!
//! Owns the bpffs directory it is given: maps and programs are pinned there by name, and so
//! are the cgroup links, so a running dataplane survives the agent (an exit, a crash, an
//! upgrade). A new agent adopts what is pinned instead of reloading, so traffic never stops.
//! Never touches anything outside that directory and the cgroups it is asked to attach to.

use std::{
    collections::BTreeMap,
    fs,
    os::{fd::AsFd, unix::fs::MetadataExt},
    path::{Path, PathBuf},
};

use aya::{
    maps::{HashMap, Map, MapData, PerCpuArray},
    programs::{CgroupSockAddr, CgroupSockAddrAttachType},
    EbpfLoader,
};

use crate::{
    error::DataplaneError,
    maps::{
        MapSizes, MAPS, MAP_AFFINITY, MAP_BACKENDS, MAP_COUNTERS, MAP_MAGLEV, MAP_REVNAT,
        MAP_SERVICES,
    },
    service::{InstalledService, ServiceCounters, ServiceKey, ServiceSpec},
    sys,
    table::{ServiceTable, TableMaps},
};

/// The compiled `sock_lb.c`, embedded at build time.
pub static SOCK_LB_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/sock_lb.o"));

/// One cgroup hook: program name in the object, its pin, the attach type (uapi value).
struct Hook {
    program: &'static str,
    short: &'static str,
    attach: CgroupSockAddrAttachType,
    attach_uapi: u32,
}

const HOOKS: [Hook; 4] = [
    Hook {
        program: "bosun_connect4",
        short: "connect4",
        attach: CgroupSockAddrAttachType::Connect4,
        attach_uapi: 10, // BPF_CGROUP_INET4_CONNECT
    },
    Hook {
        program: "bosun_sendmsg4",
        short: "sendmsg4",
        attach: CgroupSockAddrAttachType::UDPSendMsg4,
        attach_uapi: 14, // BPF_CGROUP_UDP4_SENDMSG
    },
    Hook {
        program: "bosun_recvmsg4",
        short: "recvmsg4",
        attach: CgroupSockAddrAttachType::UDPRecvMsg4,
        attach_uapi: 19, // BPF_CGROUP_UDP4_RECVMSG
    },
    Hook {
        program: "bosun_getpeername4",
        short: "getpeername4",
        attach: CgroupSockAddrAttachType::GetPeerName4,
        attach_uapi: 29, // BPF_CGROUP_INET4_GETPEERNAME
    },
];

/// The loaded (or adopted) socket load balancer and its service table.
pub struct SockLb {
    pub(crate) dir: PathBuf,
    pub(crate) sizes: MapSizes,
    pub(crate) adopted: bool,
    pub(crate) table: ServiceTable,
}

fn pinned(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

fn prog_pin(dir: &Path, hook: &Hook) -> PathBuf {
    dir.join(format!("prog_{}", hook.short))
}

fn link_pin(dir: &Path, hook: &Hook, cgroup_ino: u64) -> PathBuf {
    dir.join(format!("link_{}_cg{}", hook.short, cgroup_ino))
}

fn open_map(dir: &Path, name: &'static str) -> Result<(MapData, u32), DataplaneError> {
    let data = MapData::from_pin(pinned(dir, name))
        .map_err(|e| DataplaneError::map(name, "open pinned", e))?;
    let max = data
        .info()
        .map_err(|e| DataplaneError::map(name, "read info of", e))?
        .max_entries();
    Ok((data, max))
}

impl SockLb {
    /// Adopts the programs and maps pinned under `bpffs_dir` (so traffic keeps flowing and
    /// installed services are kept), or loads the embedded object, pinning maps and programs
    /// there. Adopted maps keep the sizes they were created with.
    pub fn load_or_adopt(bpffs_dir: &Path, sizes: MapSizes) -> Result<SockLb, DataplaneError> {
        sizes.validate()?;
        fs::create_dir_all(bpffs_dir)
            .map_err(|e| DataplaneError::io("create bpffs dir", bpffs_dir, e))?;
        let complete = MAPS.iter().all(|m| pinned(bpffs_dir, m).exists())
            && HOOKS.iter().all(|h| prog_pin(bpffs_dir, h).exists());
        if !complete {
            load_and_pin(bpffs_dir, &sizes)?;
        }
        let (services, n_services) = open_map(bpffs_dir, MAP_SERVICES)?;
        let (backends, n_backends) = open_map(bpffs_dir, MAP_BACKENDS)?;
        let (maglev, n_maglev) = open_map(bpffs_dir, MAP_MAGLEV)?;
        let (counters, n_counters) = open_map(bpffs_dir, MAP_COUNTERS)?;
        let (_, n_affinity) = open_map(bpffs_dir, MAP_AFFINITY)?;
        let (_, n_revnat) = open_map(bpffs_dir, MAP_REVNAT)?;
        let actual = MapSizes {
            services: n_services.min(n_counters),
            backend_slots: n_backends,
            maglev_services: n_maglev / (2 * sizes.maglev_chunks_per_table()),
            maglev_table_size: sizes.maglev_table_size,
            affinity: n_affinity,
            revnat: n_revnat,
        };
        let typed = |name: &'static str, e| DataplaneError::map(name, "open typed", e);
        let dup = |name: &'static str, data: &MapData| {
            data.fd()
                .as_fd()
                .try_clone_to_owned()
                .map_err(|e| DataplaneError::io("duplicate fd of map", name, e))
        };
        let services_fd = dup(MAP_SERVICES, &services)?;
        let backends_fd = dup(MAP_BACKENDS, &backends)?;
        let maps = TableMaps {
            services: HashMap::try_from(Map::HashMap(services))
                .map_err(|e| typed(MAP_SERVICES, e))?,
            backends: HashMap::try_from(Map::HashMap(backends))
                .map_err(|e| typed(MAP_BACKENDS, e))?,
            maglev: HashMap::try_from(Map::HashMap(maglev)).map_err(|e| typed(MAP_MAGLEV, e))?,
            counters: PerCpuArray::try_from(Map::PerCpuArray(counters))
                .map_err(|e| typed(MAP_COUNTERS, e))?,
            services_fd,
            backends_fd,
        };
        let table = ServiceTable::adopt(maps, actual)?;
        Ok(SockLb {
            dir: bpffs_dir.to_path_buf(),
            sizes: actual,
            adopted: complete,
            table,
        })
    }

    /// True when this instance adopted pinned programs and maps instead of loading them.
    pub fn adopted(&self) -> bool {
        self.adopted
    }

    /// The sizes of the maps in use (for adopted maps, the sizes they were created with).
    pub fn map_sizes(&self) -> MapSizes {
        self.sizes
    }

    /// The bpffs directory holding the pins.
    pub fn bpffs_dir(&self) -> &Path {
        &self.dir
    }

    /// Attaches all hooks to a cgroup v2 directory with pinned links, so the attachment
    /// outlives this process. Idempotent: hooks already linked there are left alone.
    pub fn attach(&self, cgroup_v2_dir: &Path) -> Result<(), DataplaneError> {
        let cgroup = fs::File::open(cgroup_v2_dir)
            .map_err(|e| DataplaneError::io("open cgroup", cgroup_v2_dir, e))?;
        let ino = cgroup
            .metadata()
            .map_err(|e| DataplaneError::io("stat cgroup", cgroup_v2_dir, e))?
            .ino();
        for hook in &HOOKS {
            let link_path = link_pin(&self.dir, hook, ino);
            if link_path.exists() {
                continue;
            }
            let prog =
                CgroupSockAddr::from_pin(prog_pin(&self.dir, hook), hook.attach).map_err(|e| {
                    DataplaneError::Program {
                        program: hook.program,
                        op: "open pinned",
                        source: Box::new(e),
                    }
                })?;
            let prog_fd = prog.fd().map_err(|e| DataplaneError::Program {
                program: hook.program,
                op: "get fd of",
                source: Box::new(e),
            })?;
            let link = sys::link_create(prog_fd.as_fd(), cgroup.as_fd(), hook.attach_uapi)
                .map_err(|e| DataplaneError::io("attach (BPF_LINK_CREATE) to", cgroup_v2_dir, e))?;
            sys::obj_pin(link.as_fd(), &link_path)
                .map_err(|e| DataplaneError::io("pin link", &link_path, e))?;
        }
        Ok(())
    }

    /// Detaches all hooks from one cgroup (removes its pinned links).
    pub fn detach(&self, cgroup_v2_dir: &Path) -> Result<(), DataplaneError> {
        let ino = fs::metadata(cgroup_v2_dir)
            .map_err(|e| DataplaneError::io("stat cgroup", cgroup_v2_dir, e))?
            .ino();
        for hook in &HOOKS {
            remove_if_present(&link_pin(&self.dir, hook, ino))?;
        }
        Ok(())
    }

    /// Detaches from every cgroup and removes every pin and the directory: the dataplane is
    /// gone once this returns (and the maps once `self` is dropped here).
    pub fn detach_and_unpin(self) -> Result<(), DataplaneError> {
        unpin_all(&self.dir)
    }
}

impl SockLb {
    /// Installs or replaces a service: backend slots (and Maglev table) of the inactive
    /// generation first, then the service entry, so readers see the old or the new service,
    /// never a mix. A spec equal to what is installed is a no-op. Returns the service id.
    pub fn upsert_service(
        &mut self,
        key: ServiceKey,
        svc: ServiceSpec,
    ) -> Result<u32, DataplaneError> {
        self.table.upsert(key, &svc)
    }

    /// Installs or replaces many services (a full sync) with batched map writes: all backend
    /// slots first, then all service entries. Each service gets its own result; a failure
    /// leaves that service as it was.
    pub fn upsert_services(
        &mut self,
        services: impl IntoIterator<Item = (ServiceKey, ServiceSpec)>,
    ) -> Vec<(ServiceKey, Result<u32, DataplaneError>)> {
        self.table.upsert_many(services.into_iter().collect())
    }

    /// Removes a service (its entry first, then its slots); false if it was not installed.
    pub fn remove_service(&mut self, key: &ServiceKey) -> Result<bool, DataplaneError> {
        self.table.remove(key)
    }

    /// Installed services with their normalized specs, for diffing against desired state.
    pub fn services(&self) -> BTreeMap<ServiceKey, InstalledService> {
        self.table.services()
    }

    /// The counters of one service, summed over CPUs.
    pub fn counters(&self, service_id: u32) -> Result<ServiceCounters, DataplaneError> {
        self.table.counters(service_id)
    }
}

/// Removes everything `SockLb` pinned under `bpffs_dir`, without loading anything; for
/// cleanup when no `SockLb` is at hand (tests, `xtask down`).
pub fn unpin_all(bpffs_dir: &Path) -> Result<(), DataplaneError> {
    let entries = match fs::read_dir(bpffs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(DataplaneError::io("list bpffs dir", bpffs_dir, e)),
    };
    let mut paths: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    // Links first, so hooks stop before their programs and maps go.
    paths.sort_by_key(|p| {
        !p.file_name()
            .is_some_and(|n| n.to_string_lossy().starts_with("link_"))
    });
    for path in paths {
        remove_if_present(&path)?;
    }
    fs::remove_dir(bpffs_dir).map_err(|e| DataplaneError::io("remove bpffs dir", bpffs_dir, e))
}

fn remove_if_present(path: &Path) -> Result<(), DataplaneError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(DataplaneError::io("unpin", path, e)),
    }
}

fn load_and_pin(dir: &Path, sizes: &MapSizes) -> Result<(), DataplaneError> {
    let mut ebpf = EbpfLoader::new()
        .map_pin_path(dir)
        .set_max_entries(MAP_SERVICES, sizes.services)
        .set_max_entries(MAP_BACKENDS, sizes.backend_slots)
        .set_max_entries(MAP_MAGLEV, sizes.maglev_map_entries())
        .set_max_entries(MAP_AFFINITY, sizes.affinity)
        .set_max_entries(MAP_REVNAT, sizes.revnat)
        .set_max_entries(MAP_COUNTERS, sizes.services)
        .load(SOCK_LB_OBJECT)
        .map_err(|e| DataplaneError::Load {
            dir: dir.to_path_buf(),
            source: Box::new(e),
        })?;
    for hook in &HOOKS {
        let prog_err = |op, e| DataplaneError::Program {
            program: hook.program,
            op,
            source: Box::new(e),
        };
        let prog: &mut CgroupSockAddr = ebpf
            .program_mut(hook.program)
            .ok_or(DataplaneError::MissingProgram(hook.program))?
            .try_into()
            .map_err(|e| prog_err("convert", e))?;
        prog.load().map_err(|e| prog_err("load", e))?;
        let path = prog_pin(dir, hook);
        remove_if_present(&path)?;
        prog.pin(&path).map_err(|e| DataplaneError::Pin {
            what: hook.program,
            path,
            source: Box::new(e),
        })?;
    }
    Ok(())
}
