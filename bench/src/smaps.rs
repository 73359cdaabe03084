//! Where a process's anonymous memory is, from /proc/PID/smaps: the main heap (`[heap]`),
//! glibc's per-thread malloc arenas (anonymous read-write mappings at a 64 MiB-aligned
//! address, glibc's HEAP_MAX_SIZE), thread stacks (a read-write mapping right after a
//! no-access guard page), the main stack, and everything else anonymous (large
//! `mmap`-backed allocations, runtime buffers). A note for the benches' RSS rows.

use std::fmt;

use anyhow::{Context, Result};

const ARENA_ALIGN: u64 = 64 << 20;

/// Anonymous kB (resident) by kind, and how many mappings of each kind hold any.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct AnonBreakdown {
    pub heap_kb: u64,
    pub arenas_kb: u64,
    pub arenas: u32,
    pub thread_stacks_kb: u64,
    pub thread_stacks: u32,
    pub main_stack_kb: u64,
    pub other_kb: u64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Heap,
    Arena,
    ThreadStack,
    MainStack,
    Other,
    /// File-backed or special: not counted.
    Skip,
}

/// One mapping's header line of smaps: `start-end perms offset dev inode [path]`.
struct Header<'a> {
    start: u64,
    end: u64,
    perms: &'a str,
    path: &'a str,
}

fn header(line: &str) -> Option<Header<'_>> {
    let mut fields = line.split_whitespace();
    let range = fields.next()?;
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let perms = fields.next()?;
    let _offset = fields.next()?;
    let _dev = fields.next()?;
    let inode = fields.next()?;
    let path = fields.next().unwrap_or("");
    (inode.chars().all(|c| c.is_ascii_digit()) && perms.len() == 4).then_some(Header {
        start,
        end,
        perms,
        path,
    })
}

impl AnonBreakdown {
    /// Parses the text of /proc/PID/smaps.
    pub fn parse(smaps: &str) -> AnonBreakdown {
        let mut out = AnonBreakdown::default();
        let mut kind = Kind::Skip;
        // The previous mapping: a no-access anonymous one ending where this one starts is a
        // thread stack's guard.
        let mut guard_end: Option<u64> = None;
        for line in smaps.lines() {
            if let Some(h) = header(line) {
                let anon_rw = h.path.is_empty() && h.perms.starts_with("rw");
                kind = match h.path {
                    "[heap]" => Kind::Heap,
                    "[stack]" => Kind::MainStack,
                    _ if anon_rw && h.start % ARENA_ALIGN == 0 => Kind::Arena,
                    _ if anon_rw && guard_end == Some(h.start) => Kind::ThreadStack,
                    _ if anon_rw => Kind::Other,
                    _ => Kind::Skip,
                };
                guard_end = (h.path.is_empty() && h.perms.starts_with("---")).then_some(h.end);
                continue;
            }
            let Some(rest) = line.strip_prefix("Anonymous:") else {
                continue;
            };
            let kb: u64 = rest
                .split_whitespace()
                .next()
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            if kb == 0 {
                continue;
            }
            match kind {
                Kind::Heap => out.heap_kb += kb,
                Kind::Arena => {
                    out.arenas_kb += kb;
                    out.arenas += 1;
                }
                Kind::ThreadStack => {
                    out.thread_stacks_kb += kb;
                    out.thread_stacks += 1;
                }
                Kind::MainStack => out.main_stack_kb += kb,
                Kind::Other => out.other_kb += kb,
                Kind::Skip => {}
            }
        }
        out
    }

    /// Of a running process.
    pub fn of(pid: u32) -> Result<AnonBreakdown> {
        let text = std::fs::read_to_string(format!("/proc/{pid}/smaps"))
            .with_context(|| format!("reading /proc/{pid}/smaps"))?;
        Ok(AnonBreakdown::parse(&text))
    }
}

impl fmt::Display for AnonBreakdown {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mb = |kb: u64| kb as f64 / 1024.0;
        write!(
            f,
            "anonymous: heap {:.1} MB, {} malloc arenas {:.1} MB, {} thread stacks {:.1} MB, \
             main stack {:.1} MB, other {:.1} MB",
            mb(self.heap_kb),
            self.arenas,
            mb(self.arenas_kb),
            self.thread_stacks,
            mb(self.thread_stacks_kb),
            mb(self.main_stack_kb),
            mb(self.other_kb)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mappings_are_sorted_by_kind() {
        let smaps = "\
55d000000000-55d000100000 r-xp 00000000 fd:01 123 /usr/bin/bosun-agent
Anonymous:             0 kB
55d000200000-55d000600000 rw-p 00000000 00:00 0 [heap]
Anonymous:          3000 kB
7f0004000000-7f0004800000 rw-p 00000000 00:00 0
Anonymous:          5000 kB
7f0004800000-7f0008000000 ---p 00000000 00:00 0
Anonymous:             0 kB
7f0010000000-7f0010001000 ---p 00000000 00:00 0
Anonymous:             0 kB
7f0010001000-7f0010201000 rw-p 00000000 00:00 0
Anonymous:           100 kB
7f0020001000-7f0020201000 rw-p 00000000 00:00 0
Anonymous:            40 kB
7ffd00000000-7ffd00021000 rw-p 00000000 00:00 0 [stack]
Anonymous:            20 kB
";
        let b = AnonBreakdown::parse(smaps);
        assert_eq!(
            b,
            AnonBreakdown {
                heap_kb: 3000,
                arenas_kb: 5000,
                arenas: 1,
                thread_stacks_kb: 100,
                thread_stacks: 1,
                main_stack_kb: 20,
                other_kb: 40,
            }
        );
        assert!(b.to_string().contains("1 malloc arenas 4.9 MB"), "{b}");
    }
}
