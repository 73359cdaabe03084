//! Rebuilding the userspace mirror of the service table from pinned maps (agent restart).

use std::{
    collections::{BTreeMap, BTreeSet},
    net::Ipv4Addr,
    time::Duration,
};

use super::{ignore_missing, service_key, slot_key, Installed, ServiceTable, TableMaps};
use crate::{
    error::DataplaneError,
    layout::{
        Lb4BackendKey, Lb4MaglevKey, Lb4Service, Lb4ServiceKey, BE_F_TERMINATING, SVC_F_AFFINITY,
        SVC_F_MAGLEV,
    },
    maps::{MapSizes, MAP_BACKENDS, MAP_MAGLEV, MAP_SERVICES},
    service::{Backend, ServiceKey, ServiceSpec},
};

impl ServiceTable {
    /// Takes the maps and rebuilds the userspace mirror from them; removes slots and Maglev
    /// chunks no service refers to (left by an agent that died mid-update).
    pub(crate) fn adopt(maps: TableMaps, sizes: MapSizes) -> Result<Self, DataplaneError> {
        let mut table = ServiceTable {
            maps,
            sizes,
            installed: BTreeMap::new(),
            free_ids: BTreeSet::new(),
            next_id: 0,
            maglev_in_use: 0,
        };
        let entries: Vec<(Lb4ServiceKey, Lb4Service)> = table
            .maps
            .services
            .iter()
            .collect::<Result<_, _>>()
            .map_err(|e| DataplaneError::map(MAP_SERVICES, "iterate", e))?;
        let mut by_id: BTreeMap<u32, ServiceKey> = BTreeMap::new();
        for (k, v) in &entries {
            let Some(key) = service_key(k) else { continue };
            let spec = table.read_spec(v)?;
            by_id.insert(v.service_id, key);
            table.next_id = table.next_id.max(v.service_id + 1);
            if v.flags & SVC_F_MAGLEV != 0 {
                table.maglev_in_use += 1;
            }
            let installed = Installed {
                id: v.service_id,
                gen: v.gen,
                spec,
                slots: [0; 2],
                maglev_chunks: [0; 2],
            };
            table.installed.insert(key, installed);
        }
        table.free_ids = (0..table.next_id)
            .filter(|id| !by_id.contains_key(id))
            .collect();
        let slot_keys: Vec<Lb4BackendKey> = table
            .maps
            .backends
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| DataplaneError::map(MAP_BACKENDS, "iterate", e))?;
        for k in slot_keys {
            match by_id
                .get(&k.service_id)
                .and_then(|key| table.installed.get_mut(key))
            {
                Some(inst) if k.gen < 2 => {
                    let g = &mut inst.slots[k.gen as usize];
                    *g = (*g).max(k.slot + 1);
                }
                _ => ignore_missing(table.maps.backends.remove(&k))
                    .map_err(|e| DataplaneError::map(MAP_BACKENDS, "remove orphan from", e))?,
            }
        }
        let chunk_keys: Vec<Lb4MaglevKey> = table
            .maps
            .maglev
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|e| DataplaneError::map(MAP_MAGLEV, "iterate", e))?;
        for k in chunk_keys {
            match by_id
                .get(&k.service_id)
                .and_then(|key| table.installed.get_mut(key))
            {
                Some(inst) if k.gen < 2 => {
                    let g = &mut inst.maglev_chunks[k.gen as usize];
                    *g = (*g).max(k.chunk + 1);
                }
                _ => ignore_missing(table.maps.maglev.remove(&k))
                    .map_err(|e| DataplaneError::map(MAP_MAGLEV, "remove orphan from", e))?,
            }
        }
        Ok(table)
    }

    /// Reads the live generation of a service back into a (normalized) spec.
    fn read_spec(&self, v: &Lb4Service) -> Result<ServiceSpec, DataplaneError> {
        let total = v.ready_count + v.terminating_count;
        let mut backends = Vec::with_capacity(total as usize);
        for slot in 0..total {
            let b = self
                .maps
                .backends
                .get(&slot_key(v.service_id, v.gen, slot), 0)
                .map_err(|e| DataplaneError::map(MAP_BACKENDS, "read slot of", e))?;
            let ip = Ipv4Addr::from(u32::from_be(b.ip_be));
            let port = u16::from_be(b.port_be);
            backends.push(if b.flags & BE_F_TERMINATING != 0 {
                Backend::terminating(ip, port)
            } else {
                Backend::ready(ip, port)
            });
        }
        Ok(ServiceSpec {
            backends,
            affinity_timeout: (v.flags & SVC_F_AFFINITY != 0)
                .then(|| Duration::from_secs(v.affinity_timeout_s.into())),
            maglev: v.flags & SVC_F_MAGLEV != 0,
        })
    }
}
