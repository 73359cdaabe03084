//! Maglev lookup table generation (Eisenbud et al., NSDI 2016), pure Rust.
//!
//! Each backend gets a permutation of the table's M positions from two hashes of its address
//! (offset, skip); backends take turns claiming their next free position until the table is
//! full. Every backend ends up with M/N entries ± 1, and removing one backend moves mostly
//! the entries it owned. The hash is fixed here (FNV-1a + a 64-bit finalizer), never std's
//! `DefaultHasher`, so every node and every agent version builds the same table.

use std::net::Ipv4Addr;

/// True when `n` is prime (the table size must be, so every skip walks the whole table).
pub fn is_prime(n: u32) -> bool {
    if n < 2 {
        return false;
    }
    let mut d = 2u32;
    while (d as u64) * (d as u64) <= n as u64 {
        if n % d == 0 {
            return false;
        }
        d += 1;
    }
    true
}

fn hash(bytes: &[u8], seed: u64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
    for &b in bytes {
        h ^= b as u64;
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // splitmix64 finalizer: spreads FNV's weak low bits.
    h ^= h >> 30;
    h = h.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    h ^= h >> 27;
    h = h.wrapping_mul(0x94d0_49bb_1331_11eb);
    h ^ (h >> 31)
}

/// Builds a table of `size` entries (a prime larger than the backend count) over
/// `backends`; each entry is an index into `backends`. Empty when there are no backends.
pub fn maglev_table(backends: &[(Ipv4Addr, u16)], size: u32) -> Vec<u16> {
    assert!(is_prime(size), "maglev table size {size} is not prime");
    assert!(
        backends.len() <= size as usize && backends.len() <= u16::MAX as usize,
        "{} backends do not fit a maglev table of {size}",
        backends.len()
    );
    if backends.is_empty() {
        return Vec::new();
    }
    let m = size as u64;
    let perms: Vec<(u64, u64)> = backends
        .iter()
        .map(|(ip, port)| {
            let mut name = [0u8; 6];
            name[..4].copy_from_slice(&ip.octets());
            name[4..].copy_from_slice(&port.to_be_bytes());
            let offset = hash(&name, 0x6d61_676c_6576_3031) % m;
            let skip = hash(&name, 0x736b_6970_7365_6564) % (m - 1) + 1;
            (offset, skip)
        })
        .collect();
    const EMPTY: u16 = u16::MAX;
    let mut table = vec![EMPTY; size as usize];
    let mut next = vec![0u64; backends.len()];
    let mut filled = 0usize;
    'fill: loop {
        for (i, &(offset, skip)) in perms.iter().enumerate() {
            let mut pos = (offset + next[i] * skip) % m;
            while table[pos as usize] != EMPTY {
                next[i] += 1;
                pos = (offset + next[i] * skip) % m;
            }
            table[pos as usize] = i as u16;
            next[i] += 1;
            filled += 1;
            if filled == size as usize {
                break 'fill;
            }
        }
    }
    table
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backends(n: u8) -> Vec<(Ipv4Addr, u16)> {
        (0..n)
            .map(|i| (Ipv4Addr::new(10, 250, 1, i), 8080))
            .collect()
    }

    #[test]
    fn primes_are_recognised() {
        assert!(is_prime(1021) && is_prime(16381) && is_prime(65521));
        assert!(!is_prime(1) && !is_prime(1024) && !is_prime(16383));
    }

    #[test]
    fn table_spreads_entries_evenly() {
        let table = maglev_table(&backends(10), 16381);
        let mut counts = [0usize; 10];
        table.iter().for_each(|&i| counts[i as usize] += 1);
        for c in counts {
            assert!((1637..=1639).contains(&c), "uneven spread: {counts:?}");
        }
    }

    #[test]
    fn removing_one_backend_of_many_moves_little_more_than_its_share() {
        let all = backends(20);
        let before = maglev_table(&all, 16381);
        let mut fewer = all.clone();
        let gone = fewer.remove(7);
        let after = maglev_table(&fewer, 16381);
        let moved = before
            .iter()
            .zip(&after)
            .filter(|(b, a)| all[**b as usize] != gone && all[**b as usize] != fewer[**a as usize])
            .count();
        // Entries of surviving backends that changed owner: Maglev promises "few".
        let share = 16381 / 20;
        assert!(
            moved < share / 2,
            "{moved} entries of surviving backends moved"
        );
    }

    #[test]
    fn same_input_same_table() {
        assert_eq!(
            maglev_table(&backends(3), 1021),
            maglev_table(&backends(3), 1021)
        );
        assert!(maglev_table(&[], 1021).is_empty());
    }
}
