//! The service table: typed writes of services, backend slots and Maglev tables into the
//! pinned maps, in an order that never exposes a half-written service.
//!
//! Each service has two slot generations. An update writes the inactive generation (backend
//! slots, then the Maglev table), then replaces the service entry with one that names it:
//! a single atomic hash update flips every reader to the complete new state. The previous
//! generation stays until the next update overwrites it. Removal deletes the service entry
//! first. A userspace mirror (`installed`) answers `services()` and drives diffs; it is
//! rebuilt from the maps when a pinned dataplane is adopted (`adopt.rs`); full syncs write
//! many services with batched map updates (`batch.rs`).

mod adopt;
mod batch;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    os::fd::OwnedFd,
};

use aya::maps::{HashMap, MapData, MapError, PerCpuArray, PerCpuValues};

use crate::{
    error::DataplaneError,
    layout::{
        Lb4Backend, Lb4BackendKey, Lb4Counters, Lb4MaglevChunk, Lb4MaglevKey, Lb4Service,
        Lb4ServiceKey, BE_F_TERMINATING, MAGLEV_CHUNK, SVC_F_AFFINITY, SVC_F_MAGLEV,
    },
    maglev::maglev_table,
    maps::{MapSizes, MAP_BACKENDS, MAP_COUNTERS, MAP_MAGLEV, MAP_SERVICES},
    service::{InstalledService, Protocol, ServiceCounters, ServiceKey, ServiceSpec},
};

/// What userspace remembers of one installed service.
#[derive(Clone, Debug)]
struct Installed {
    id: u32,
    gen: u8,
    spec: ServiceSpec,
    /// Backend slots present per generation (written so far, live or not).
    slots: [u16; 2],
    /// Maglev chunks present per generation.
    maglev_chunks: [u16; 2],
}

/// Typed handles on the pinned maps the table writes.
pub(crate) struct TableMaps {
    pub(crate) services: HashMap<MapData, Lb4ServiceKey, Lb4Service>,
    pub(crate) backends: HashMap<MapData, Lb4BackendKey, Lb4Backend>,
    pub(crate) maglev: HashMap<MapData, Lb4MaglevKey, Lb4MaglevChunk>,
    pub(crate) counters: PerCpuArray<MapData, Lb4Counters>,
    /// Second fds on the services and backends maps, for batched writes.
    pub(crate) services_fd: OwnedFd,
    pub(crate) backends_fd: OwnedFd,
}

pub(crate) struct ServiceTable {
    maps: TableMaps,
    sizes: MapSizes,
    installed: BTreeMap<ServiceKey, Installed>,
    /// Ids below `next_id` that are free again.
    free_ids: BTreeSet<u32>,
    next_id: u32,
    maglev_in_use: u32,
}

fn map_key(key: &ServiceKey) -> Lb4ServiceKey {
    Lb4ServiceKey {
        vip_be: u32::from(key.ip).to_be(),
        port_be: key.port.to_be(),
        proto: key.protocol.ip_proto(),
        pad: 0,
    }
}

fn service_key(k: &Lb4ServiceKey) -> Option<ServiceKey> {
    Some(ServiceKey {
        ip: Ipv4Addr::from(u32::from_be(k.vip_be)),
        port: u16::from_be(k.port_be),
        protocol: Protocol::from_ip_proto(k.proto)?,
    })
}

fn slot_key(id: u32, gen: u8, slot: u16) -> Lb4BackendKey {
    Lb4BackendKey {
        service_id: id,
        slot,
        gen,
        pad: 0,
    }
}

fn maglev_key(id: u32, gen: u8, chunk: u16) -> Lb4MaglevKey {
    Lb4MaglevKey {
        service_id: id,
        chunk,
        gen,
        pad: 0,
    }
}

/// Deleting what is already gone is fine.
fn ignore_missing(r: Result<(), MapError>) -> Result<(), MapError> {
    match r {
        Err(MapError::KeyNotFound) => Ok(()),
        Err(MapError::SyscallError(e)) if e.io_error.raw_os_error() == Some(libc::ENOENT) => Ok(()),
        other => other,
    }
}

impl ServiceTable {
    /// Lowest free id: ids index the counters array, so they stay below its size.
    fn allocate_id(&mut self, key: &ServiceKey) -> Result<u32, DataplaneError> {
        if let Some(id) = self.free_ids.pop_first() {
            return Ok(id);
        }
        if self.next_id >= self.sizes.services {
            return Err(DataplaneError::Full {
                key: *key,
                map: MAP_SERVICES,
                capacity: self.sizes.services,
            });
        }
        self.next_id += 1;
        Ok(self.next_id - 1)
    }

    fn validate(
        &self,
        key: &ServiceKey,
        spec: &ServiceSpec,
        was_maglev: bool,
    ) -> Result<(), DataplaneError> {
        let invalid = |reason: String| DataplaneError::InvalidService { key: *key, reason };
        if key.port == 0 {
            return Err(invalid("port 0".into()));
        }
        if spec.backends.iter().any(|b| b.port == 0) {
            return Err(invalid("a backend has port 0".into()));
        }
        if let Some(t) = spec.affinity_timeout {
            if t.as_secs() > u32::MAX as u64 {
                return Err(invalid(format!("affinity timeout {t:?} too long")));
            }
        }
        let n = spec.backends.len();
        if n > u16::MAX as usize {
            return Err(invalid(format!("{n} backends, at most 65535")));
        }
        if spec.maglev {
            if n >= self.sizes.maglev_table_size as usize {
                return Err(invalid(format!(
                    "{n} backends need a maglev table larger than {}",
                    self.sizes.maglev_table_size
                )));
            }
            if !was_maglev && self.maglev_in_use >= self.sizes.maglev_services {
                return Err(DataplaneError::Full {
                    key: *key,
                    map: MAP_MAGLEV,
                    capacity: self.sizes.maglev_services,
                });
            }
        }
        Ok(())
    }

    pub(crate) fn upsert(
        &mut self,
        key: ServiceKey,
        spec: &ServiceSpec,
    ) -> Result<u32, DataplaneError> {
        let spec = spec.normalized();
        let Some(mut inst) = self.prepare(&key, &spec)? else {
            return Ok(self.installed[&key].id);
        };
        let ready = spec.ready_count();
        if let Err(e) = self.write_generation(&key, &mut inst, &spec, ready) {
            self.abandon(key, inst)?;
            return Err(e);
        }
        let value = self.service_value(&inst, &spec);
        if let Err(e) = self.maps.services.insert(map_key(&key), value, 0) {
            self.abandon(key, inst)?;
            return Err(DataplaneError::map(MAP_SERVICES, "insert into", e));
        }
        Ok(self.commit(key, inst, spec))
    }

    /// Validates a normalized spec and returns the service's next state with the inactive
    /// generation selected (and an id for a new service); `None` if nothing changes.
    fn prepare(
        &mut self,
        key: &ServiceKey,
        spec: &ServiceSpec,
    ) -> Result<Option<Installed>, DataplaneError> {
        let previous = self.installed.get(key).cloned();
        if previous.as_ref().is_some_and(|p| p.spec == *spec) {
            return Ok(None);
        }
        self.validate(key, spec, previous.as_ref().is_some_and(|p| p.spec.maglev))?;
        let mut inst = match previous {
            Some(p) => Installed {
                gen: 1 - p.gen,
                ..p
            },
            None => Installed {
                id: self.allocate_id(key)?,
                gen: 0,
                spec: ServiceSpec::default(),
                slots: [0; 2],
                maglev_chunks: [0; 2],
            },
        };
        // Record what may be written before writing, so a failure is still cleaned up.
        let g = inst.gen as usize;
        inst.slots[g] = inst.slots[g].max(spec.backends.len() as u16);
        Ok(Some(inst))
    }

    /// The service entry that makes generation `inst.gen` live.
    fn service_value(&self, inst: &Installed, spec: &ServiceSpec) -> Lb4Service {
        let ready = spec.ready_count();
        let total = spec.backends.len();
        let active = if ready > 0 { ready } else { total };
        let maglev_live = spec.maglev && active > 0;
        let mut flags = 0;
        if spec.affinity_timeout.is_some() {
            flags |= SVC_F_AFFINITY;
        }
        if maglev_live {
            flags |= SVC_F_MAGLEV;
        }
        Lb4Service {
            service_id: inst.id,
            ready_count: ready as u16,
            terminating_count: (total - ready) as u16,
            flags,
            gen: inst.gen,
            pad: 0,
            affinity_timeout_s: spec.affinity_timeout.map_or(0, |t| t.as_secs() as u32),
            maglev_size: if maglev_live {
                self.sizes.maglev_table_size
            } else {
                0
            },
        }
    }

    /// Records a flipped service.
    fn commit(&mut self, key: ServiceKey, mut inst: Installed, spec: ServiceSpec) -> u32 {
        let was_maglev = self.installed.get(&key).is_some_and(|p| p.spec.maglev);
        match (was_maglev, spec.maglev) {
            (false, true) => self.maglev_in_use += 1,
            (true, false) => self.maglev_in_use -= 1,
            _ => {}
        }
        inst.spec = spec;
        let id = inst.id;
        self.installed.insert(key, inst);
        id
    }

    /// Undoes a write that never went live: the live generation is untouched; the
    /// half-written one is cleared (nothing reads it); a new service gives its id back.
    fn abandon(&mut self, key: ServiceKey, mut inst: Installed) -> Result<(), DataplaneError> {
        let cleared = self.clear_generation(&mut inst);
        match self.installed.get_mut(&key) {
            Some(live) => {
                live.slots = inst.slots;
                live.maglev_chunks = inst.maglev_chunks;
            }
            None => {
                self.free_ids.insert(inst.id);
            }
        }
        cleared
    }

    /// Writes backend slots and the Maglev table of the inactive generation `inst.gen`.
    fn write_generation(
        &mut self,
        key: &ServiceKey,
        inst: &mut Installed,
        spec: &ServiceSpec,
        ready: usize,
    ) -> Result<(), DataplaneError> {
        let (id, gen, g) = (inst.id, inst.gen, inst.gen as usize);
        let full = |e: MapError, map: &'static str, capacity: u32| match &e {
            MapError::SyscallError(s) if s.io_error.raw_os_error() == Some(libc::E2BIG) => {
                DataplaneError::Full {
                    key: *key,
                    map,
                    capacity,
                }
            }
            _ => DataplaneError::map(map, "insert into", e),
        };
        for (slot, b) in spec.backends.iter().enumerate() {
            let value = Lb4Backend {
                ip_be: u32::from(b.ip).to_be(),
                port_be: b.port.to_be(),
                flags: if slot >= ready { BE_F_TERMINATING } else { 0 },
                pad: 0,
            };
            self.maps
                .backends
                .insert(slot_key(id, gen, slot as u16), value, 0)
                .map_err(|e| full(e, MAP_BACKENDS, self.sizes.backend_slots))?;
        }
        for slot in spec.backends.len() as u16..inst.slots[g] {
            ignore_missing(self.maps.backends.remove(&slot_key(id, gen, slot)))
                .map_err(|e| DataplaneError::map(MAP_BACKENDS, "remove stale slot from", e))?;
        }
        inst.slots[g] = spec.backends.len() as u16;

        let active = if ready > 0 {
            &spec.backends[..ready]
        } else {
            &spec.backends[..]
        };
        let chunks = if spec.maglev && !active.is_empty() {
            let addrs: Vec<(Ipv4Addr, u16)> = active.iter().map(|b| (b.ip, b.port)).collect();
            let table = maglev_table(&addrs, self.sizes.maglev_table_size);
            let chunks = table.chunks(MAGLEV_CHUNK).count() as u16;
            inst.maglev_chunks[g] = inst.maglev_chunks[g].max(chunks);
            for (c, entries) in table.chunks(MAGLEV_CHUNK).enumerate() {
                let mut value = Lb4MaglevChunk {
                    slot: [0; MAGLEV_CHUNK],
                };
                value.slot[..entries.len()].copy_from_slice(entries);
                self.maps
                    .maglev
                    .insert(maglev_key(id, gen, c as u16), value, 0)
                    .map_err(|e| full(e, MAP_MAGLEV, self.sizes.maglev_services))?;
            }
            chunks
        } else {
            0
        };
        for c in chunks..inst.maglev_chunks[g] {
            ignore_missing(self.maps.maglev.remove(&maglev_key(id, gen, c)))
                .map_err(|e| DataplaneError::map(MAP_MAGLEV, "remove stale chunk from", e))?;
        }
        inst.maglev_chunks[g] = chunks;
        Ok(())
    }

    /// Deletes the slots and Maglev chunks of generation `inst.gen`.
    fn clear_generation(&mut self, inst: &mut Installed) -> Result<(), DataplaneError> {
        let (id, gen, g) = (inst.id, inst.gen, inst.gen as usize);
        for slot in 0..inst.slots[g] {
            ignore_missing(self.maps.backends.remove(&slot_key(id, gen, slot)))
                .map_err(|e| DataplaneError::map(MAP_BACKENDS, "remove from", e))?;
        }
        for chunk in 0..inst.maglev_chunks[g] {
            ignore_missing(self.maps.maglev.remove(&maglev_key(id, gen, chunk)))
                .map_err(|e| DataplaneError::map(MAP_MAGLEV, "remove from", e))?;
        }
        inst.slots[g] = 0;
        inst.maglev_chunks[g] = 0;
        Ok(())
    }

    pub(crate) fn remove(&mut self, key: &ServiceKey) -> Result<bool, DataplaneError> {
        let Some(inst) = self.installed.get(key).cloned() else {
            return Ok(false);
        };
        ignore_missing(self.maps.services.remove(&map_key(key)))
            .map_err(|e| DataplaneError::map(MAP_SERVICES, "remove from", e))?;
        for gen in 0..2u8 {
            self.clear_generation(&mut Installed {
                gen,
                ..inst.clone()
            })?;
        }
        // Zero the counters so a service that reuses the id starts from nothing.
        let zeros = PerCpuValues::try_from(vec![Lb4Counters::default(); nr_cpus()?])
            .map_err(|e| DataplaneError::map(MAP_COUNTERS, "build zero values for", e.into()))?;
        self.maps
            .counters
            .set(inst.id, zeros, 0)
            .map_err(|e| DataplaneError::map(MAP_COUNTERS, "reset", e))?;
        if inst.spec.maglev {
            self.maglev_in_use = self.maglev_in_use.saturating_sub(1);
        }
        self.free_ids.insert(inst.id);
        self.installed.remove(key);
        Ok(true)
    }

    pub(crate) fn counters(&self, id: u32) -> Result<ServiceCounters, DataplaneError> {
        let values = self
            .maps
            .counters
            .get(&id, 0)
            .map_err(|e| DataplaneError::map(MAP_COUNTERS, "read", e))?;
        Ok(values
            .iter()
            .fold(ServiceCounters::default(), |acc, c| ServiceCounters {
                connections: acc.connections + c.connections,
                datagrams: acc.datagrams + c.datagrams,
                refused: acc.refused + c.refused,
            }))
    }

    pub(crate) fn services(&self) -> BTreeMap<ServiceKey, InstalledService> {
        self.installed
            .iter()
            .map(|(k, i)| {
                (
                    *k,
                    InstalledService {
                        id: i.id,
                        spec: i.spec.clone(),
                    },
                )
            })
            .collect()
    }
}

fn nr_cpus() -> Result<usize, DataplaneError> {
    aya::util::nr_cpus().map_err(|(what, e)| DataplaneError::io("count CPUs from", what, e))
}
