//! The pinned maps as userspace knows them: their names in the object (versioned: a layout
//! change gets a new name, so an upgrade never reads old bytes with a new layout) and their
//! capacities. Shared by the loader, which creates or adopts them, and the service table,
//! which writes them. Pure data.

use crate::{error::DataplaneError, layout::MAGLEV_CHUNK, maglev::is_prime};

pub(crate) const MAP_SERVICES: &str = "bosun_svc_v1";
pub(crate) const MAP_BACKENDS: &str = "bosun_be_v1";
pub(crate) const MAP_MAGLEV: &str = "bosun_maglev_v1";
pub(crate) const MAP_AFFINITY: &str = "bosun_aff_v1";
pub(crate) const MAP_REVNAT: &str = "bosun_revnat_v1";
pub(crate) const MAP_COUNTERS: &str = "bosun_cnt_v1";
pub(crate) const MAPS: [&str; 6] = [
    MAP_SERVICES,
    MAP_BACKENDS,
    MAP_MAGLEV,
    MAP_AFFINITY,
    MAP_REVNAT,
    MAP_COUNTERS,
];

/// Map capacities, fixed when the maps are created (an adopted map keeps its size; see
/// [`crate::SockLb::map_sizes`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MapSizes {
    /// Service entries (VIP, port, proto); also bounds service ids and the counters.
    pub services: u32,
    /// Backend slots over all services. A service uses up to twice its backend count (two
    /// generations, so an update never shows a half-written service).
    pub backend_slots: u32,
    /// Services that may use Maglev at the same time.
    pub maglev_services: u32,
    /// Maglev table size M, a prime well above the backend count (16381; 1021 in tests).
    pub maglev_table_size: u32,
    /// ClientIP affinity entries (LRU).
    pub affinity: u32,
    /// Reverse translation entries, one per translated socket and backend (LRU).
    pub revnat: u32,
}

impl Default for MapSizes {
    fn default() -> Self {
        MapSizes {
            services: 65536,
            backend_slots: 262144,
            maglev_services: 64,
            maglev_table_size: 16381,
            affinity: 65536,
            revnat: 262144,
        }
    }
}

impl MapSizes {
    /// Maglev chunks per table (map values of `MAGLEV_CHUNK` entries).
    pub(crate) fn maglev_chunks_per_table(&self) -> u32 {
        self.maglev_table_size.div_ceil(MAGLEV_CHUNK as u32)
    }

    pub(crate) fn maglev_map_entries(&self) -> u32 {
        (self.maglev_services.max(1) * 2).saturating_mul(self.maglev_chunks_per_table())
    }

    pub(crate) fn validate(&self) -> Result<(), DataplaneError> {
        let bad = |what: String| Err(DataplaneError::InvalidSizes(what));
        if !is_prime(self.maglev_table_size) || self.maglev_table_size > u16::MAX as u32 {
            return bad(format!(
                "maglev_table_size {} must be a prime below 65536",
                self.maglev_table_size
            ));
        }
        for (name, v) in [
            ("services", self.services),
            ("backend_slots", self.backend_slots),
            ("affinity", self.affinity),
            ("revnat", self.revnat),
        ] {
            if v == 0 {
                return bad(format!("{name} must be at least 1"));
            }
        }
        Ok(())
    }
}
