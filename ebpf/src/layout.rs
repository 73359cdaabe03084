//! `#[repr(C)]` mirrors of the map keys and values in `include/bosun_lb.h`.
//!
//! Owns the byte layout userspace writes into the maps; nothing else. Every struct is
//! hole-free with explicit padding, byte order is in the field name (`*_be`), and sizes are
//! asserted at compile time. The test below compares every field against the layout probe
//! that `build.rs` compiles from the C header, so the two can never drift apart.

/// `BOSUN_SVC_F_AFFINITY`: ClientIP affinity with `affinity_timeout_s`.
pub const SVC_F_AFFINITY: u16 = 0x0001;
/// `BOSUN_SVC_F_MAGLEV`: backend chosen from the Maglev table.
pub const SVC_F_MAGLEV: u16 = 0x0002;
/// `BOSUN_BE_F_TERMINATING`: terminating but serving backend.
pub const BE_F_TERMINATING: u8 = 0x01;
/// `BOSUN_MAGLEV_CHUNK`: Maglev table entries per map value.
pub const MAGLEV_CHUNK: usize = 64;

/// `struct bosun_lb4_service_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Lb4ServiceKey {
    pub vip_be: u32,
    pub port_be: u16,
    pub proto: u8,
    pub pad: u8,
}

/// `struct bosun_lb4_service`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lb4Service {
    pub service_id: u32,
    pub ready_count: u16,
    pub terminating_count: u16,
    pub flags: u16,
    pub gen: u8,
    pub pad: u8,
    pub affinity_timeout_s: u32,
    pub maglev_size: u32,
}

/// `struct bosun_lb4_backend_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lb4BackendKey {
    pub service_id: u32,
    pub slot: u16,
    pub gen: u8,
    pub pad: u8,
}

/// `struct bosun_lb4_backend`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lb4Backend {
    pub ip_be: u32,
    pub port_be: u16,
    pub flags: u8,
    pub pad: u8,
}

/// `struct bosun_lb4_maglev_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lb4MaglevKey {
    pub service_id: u32,
    pub chunk: u16,
    pub gen: u8,
    pub pad: u8,
}

/// `struct bosun_lb4_maglev_chunk`.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Lb4MaglevChunk {
    pub slot: [u16; MAGLEV_CHUNK],
}

/// `struct bosun_lb4_affinity_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lb4AffinityKey {
    pub netns_cookie: u64,
    pub service_id: u32,
    pub pad: u32,
}

/// `struct bosun_lb4_affinity`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lb4Affinity {
    pub last_used_ns: u64,
    pub ip_be: u32,
    pub port_be: u16,
    pub slot: u16,
}

/// `struct bosun_lb4_revnat_key`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct Lb4RevNatKey {
    pub cookie: u64,
    pub ip_be: u32,
    pub port_be: u16,
    pub pad: u16,
}

/// `struct bosun_lb4_revnat`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lb4RevNat {
    pub vip_be: u32,
    pub port_be: u16,
    pub pad: u16,
    pub service_id: u32,
}

/// `struct bosun_lb4_counters`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Lb4Counters {
    pub connections: u64,
    pub datagrams: u64,
    pub refused: u64,
}

const _: () = {
    use core::mem::size_of;
    assert!(size_of::<Lb4ServiceKey>() == 8);
    assert!(size_of::<Lb4Service>() == 20);
    assert!(size_of::<Lb4BackendKey>() == 8);
    assert!(size_of::<Lb4Backend>() == 8);
    assert!(size_of::<Lb4MaglevKey>() == 8);
    assert!(size_of::<Lb4MaglevChunk>() == 2 * MAGLEV_CHUNK);
    assert!(size_of::<Lb4AffinityKey>() == 16);
    assert!(size_of::<Lb4Affinity>() == 16);
    assert!(size_of::<Lb4RevNatKey>() == 16);
    assert!(size_of::<Lb4RevNat>() == 12);
    assert!(size_of::<Lb4Counters>() == 24);
};

#[cfg(test)]
mod tests {
    use super::*;
    use core::mem::{offset_of, size_of, size_of_val};

    /// What the C compiler says: "struct field offset size" per line.
    const PROBE: &str = include_str!(concat!(env!("OUT_DIR"), "/layout.txt"));

    fn field_size<T, F>(_: fn(&T) -> &F) -> usize {
        size_of::<F>()
    }

    macro_rules! rust_layout {
        ($out:ident, $c:literal, $t:ty, [$($f:ident),*]) => {
            $out.push(format!("{} - 0 {}", $c, size_of::<$t>()));
            $(
                $out.push(format!(
                    "{} {} {} {}",
                    $c,
                    stringify!($f),
                    offset_of!($t, $f),
                    field_size(|v: &$t| &v.$f)
                ));
            )*
        };
    }

    #[test]
    fn rust_mirrors_match_the_c_header() {
        let mut rust = Vec::new();
        rust_layout!(
            rust,
            "bosun_lb4_service_key",
            Lb4ServiceKey,
            [vip_be, port_be, proto, pad]
        );
        rust_layout!(
            rust,
            "bosun_lb4_service",
            Lb4Service,
            [
                service_id,
                ready_count,
                terminating_count,
                flags,
                gen,
                pad,
                affinity_timeout_s,
                maglev_size
            ]
        );
        rust_layout!(
            rust,
            "bosun_lb4_backend_key",
            Lb4BackendKey,
            [service_id, slot, gen, pad]
        );
        rust_layout!(
            rust,
            "bosun_lb4_backend",
            Lb4Backend,
            [ip_be, port_be, flags, pad]
        );
        rust_layout!(
            rust,
            "bosun_lb4_maglev_key",
            Lb4MaglevKey,
            [service_id, chunk, gen, pad]
        );
        rust_layout!(rust, "bosun_lb4_maglev_chunk", Lb4MaglevChunk, [slot]);
        rust_layout!(
            rust,
            "bosun_lb4_affinity_key",
            Lb4AffinityKey,
            [netns_cookie, service_id, pad]
        );
        rust_layout!(
            rust,
            "bosun_lb4_affinity",
            Lb4Affinity,
            [last_used_ns, ip_be, port_be, slot]
        );
        rust_layout!(
            rust,
            "bosun_lb4_revnat_key",
            Lb4RevNatKey,
            [cookie, ip_be, port_be, pad]
        );
        rust_layout!(
            rust,
            "bosun_lb4_revnat",
            Lb4RevNat,
            [vip_be, port_be, pad, service_id]
        );
        rust_layout!(
            rust,
            "bosun_lb4_counters",
            Lb4Counters,
            [connections, datagrams, refused]
        );
        rust.push(format!("const BOSUN_MAGLEV_CHUNK {MAGLEV_CHUNK} 0"));
        rust.push(format!("const BOSUN_SVC_F_AFFINITY {SVC_F_AFFINITY} 0"));
        rust.push(format!("const BOSUN_SVC_F_MAGLEV {SVC_F_MAGLEV} 0"));
        rust.push(format!("const BOSUN_BE_F_TERMINATING {BE_F_TERMINATING} 0"));

        let c: Vec<&str> = PROBE.lines().collect();
        assert_eq!(
            c.len(),
            rust.len(),
            "the probe and the mirrors list different fields"
        );
        for (c_line, rust_line) in c.iter().zip(&rust) {
            assert_eq!(
                c_line, rust_line,
                "layout differs between bosun_lb.h and layout.rs"
            );
        }
        assert_eq!(
            size_of_val(&Lb4MaglevChunk {
                slot: [0; MAGLEV_CHUNK]
            }),
            128
        );
    }
}
