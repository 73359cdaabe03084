//! Full syncs: many services written with two batched map updates (all backend slots, then
//! all service entries) instead of one syscall per element. The ordering guarantee is the
//! same as for single updates: a service entry is written only after all of its slots are.
//!
//! Services needing a Maglev table, or whose inactive generation must shrink first, take the
//! single-update path; so does a key given twice.

use std::{collections::BTreeSet, os::fd::AsFd};

use super::{map_key, slot_key, Installed, ServiceTable};
use crate::{
    error::DataplaneError,
    layout::{Lb4Backend, Lb4BackendKey, Lb4Service, Lb4ServiceKey, BE_F_TERMINATING},
    maps::{MAP_BACKENDS, MAP_SERVICES},
    service::{ServiceKey, ServiceSpec},
    sys,
};

struct Pending {
    idx: usize,
    key: ServiceKey,
    inst: Installed,
    spec: ServiceSpec,
    /// End of this service's slots in the batch.
    slots_end: usize,
}

fn batch_error(
    map: &'static str,
    key: ServiceKey,
    capacity: u32,
    e: std::io::Error,
) -> DataplaneError {
    if e.raw_os_error() == Some(libc::E2BIG) {
        DataplaneError::Full { key, map, capacity }
    } else {
        DataplaneError::io("batch update of map", map, e)
    }
}

impl ServiceTable {
    pub(crate) fn upsert_many(
        &mut self,
        items: Vec<(ServiceKey, ServiceSpec)>,
    ) -> Vec<(ServiceKey, Result<u32, DataplaneError>)> {
        let mut results = Vec::with_capacity(items.len());
        let mut single = Vec::new();
        let mut seen = BTreeSet::new();
        let mut pending: Vec<Pending> = Vec::new();
        let (mut slot_keys, mut slot_values) =
            (Vec::<Lb4BackendKey>::new(), Vec::<Lb4Backend>::new());
        for (idx, (key, spec)) in items.into_iter().enumerate() {
            let spec = spec.normalized();
            let previous = self.installed.get(&key);
            let shrinks = previous
                .is_some_and(|p| p.slots[1 - p.gen as usize] as usize > spec.backends.len());
            let maglev =
                spec.maglev || previous.is_some_and(|p| p.spec.maglev || p.maglev_chunks != [0, 0]);
            if !seen.insert(key) || shrinks || maglev {
                single.push((idx, key, spec));
                continue;
            }
            let inst = match self.prepare(&key, &spec) {
                Ok(Some(inst)) => inst,
                Ok(None) => {
                    results.push((idx, key, Ok(self.installed[&key].id)));
                    continue;
                }
                Err(e) => {
                    results.push((idx, key, Err(e)));
                    continue;
                }
            };
            let ready = spec.ready_count();
            for (slot, b) in spec.backends.iter().enumerate() {
                slot_keys.push(slot_key(inst.id, inst.gen, slot as u16));
                slot_values.push(Lb4Backend {
                    ip_be: u32::from(b.ip).to_be(),
                    port_be: b.port.to_be(),
                    flags: if slot >= ready { BE_F_TERMINATING } else { 0 },
                    pad: 0,
                });
            }
            pending.push(Pending {
                idx,
                key,
                inst,
                spec,
                slots_end: slot_keys.len(),
            });
        }

        // Phase 1: every slot. Services whose slots did not all land are abandoned.
        let written =
            match sys::map_update_batch(self.maps.backends_fd.as_fd(), &slot_keys, &slot_values) {
                Ok(()) => slot_keys.len(),
                Err((n, e)) => {
                    let first = pending
                        .iter()
                        .position(|p| p.slots_end > n)
                        .unwrap_or(pending.len());
                    let failed = pending.split_off(first);
                    let mut error = Some(e);
                    for p in failed {
                        let err = match error.take() {
                            Some(e) => {
                                batch_error(MAP_BACKENDS, p.key, self.sizes.backend_slots, e)
                            }
                            None => DataplaneError::BatchAborted {
                                key: p.key,
                                map: MAP_BACKENDS,
                            },
                        };
                        let abandoned = self.abandon(p.key, p.inst);
                        results.push((p.idx, p.key, abandoned.and(Err(err))));
                    }
                    n
                }
            };
        debug_assert!(pending.last().is_none_or(|p| p.slots_end <= written));

        // Phase 2: flip the services whose slots are all written.
        let svc_keys: Vec<Lb4ServiceKey> = pending.iter().map(|p| map_key(&p.key)).collect();
        let svc_values: Vec<Lb4Service> = pending
            .iter()
            .map(|p| self.service_value(&p.inst, &p.spec))
            .collect();
        let flipped =
            match sys::map_update_batch(self.maps.services_fd.as_fd(), &svc_keys, &svc_values) {
                Ok(()) => pending.len(),
                Err((n, e)) => {
                    let failed = pending.split_off(n);
                    let mut error = Some(e);
                    for p in failed {
                        let err = match error.take() {
                            Some(e) => batch_error(MAP_SERVICES, p.key, self.sizes.services, e),
                            None => DataplaneError::BatchAborted {
                                key: p.key,
                                map: MAP_SERVICES,
                            },
                        };
                        let abandoned = self.abandon(p.key, p.inst);
                        results.push((p.idx, p.key, abandoned.and(Err(err))));
                    }
                    n
                }
            };
        debug_assert_eq!(flipped, pending.len());
        for p in pending {
            let id = self.commit(p.key, p.inst, p.spec);
            results.push((p.idx, p.key, Ok(id)));
        }
        for (idx, key, spec) in single {
            let result = self.upsert(key, &spec);
            results.push((idx, key, result));
        }
        results.sort_by_key(|(idx, _, _)| *idx);
        results.into_iter().map(|(_, key, r)| (key, r)).collect()
    }
}
