//! Giving freed heap memory back to the kernel. glibc keeps the pages that a burst of work
//! (a thousand pods starting, each thread with its own arena) freed, and they count in the
//! agent's RSS until something reuses them; `malloc_trim` returns every free page of every
//! arena. [`trim_every`] does it on a timer, off the async threads; [`limit_arenas`] keeps
//! the number of arenas small to begin with.

use std::time::Duration;

/// Returns the free pages of every arena to the kernel; whether any memory was released.
pub fn trim() -> bool {
    // SAFETY: malloc_trim(3) takes no pointer and only walks glibc's own arenas under their
    // locks; it is safe to call from any thread at any time.
    unsafe { libc::malloc_trim(0) == 1 }
}

/// The agent's arenas: the event loop's thread and the blocking pool's threads share them.
pub const AGENT_ARENAS: i32 = 2;

/// Caps glibc's malloc arenas at `arenas` (its default is 8 per core: each thread that
/// allocates while the others' arenas are busy gets its own, and the free memory scattered
/// over them stays resident), unless the operator chose with `MALLOC_ARENA_MAX`, which
/// glibc reads itself. Whether the cap was set.
pub fn limit_arenas(arenas: i32) -> bool {
    if std::env::var_os("MALLOC_ARENA_MAX").is_some() {
        return false;
    }
    // SAFETY: mallopt(3) takes two integers and only changes glibc's tunables under its own
    // lock; arenas that exist stay, new threads share the capped set.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, arenas) == 1 }
}

/// Trims every `period`, for ever (spawn it).
pub async fn trim_every(period: Duration) {
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let _ = tokio::task::spawn_blocking(trim).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rss_kib() -> u64 {
        let statm = std::fs::read_to_string("/proc/self/statm").expect("statm");
        let pages: u64 = statm
            .split_whitespace()
            .nth(1)
            .and_then(|p| p.parse().ok())
            .expect("rss");
        pages * 4
    }

    #[test]
    fn freed_pages_below_a_live_block_go_back() {
        // 64 MiB in small blocks (below the mmap threshold), one block kept above them so
        // free() alone cannot shrink the heap.
        let blocks: Vec<Vec<u8>> = (0..16 * 1024).map(|i| vec![i as u8; 4096]).collect();
        let top = vec![1u8; 4096];
        drop(blocks);
        let before = rss_kib();
        trim();
        let after = rss_kib();
        assert_eq!(top[0], 1);
        assert!(
            before.saturating_sub(after) >= 32 * 1024,
            "RSS {before} KiB before the trim, {after} KiB after"
        );
    }
}
