//! The built-in IPAM: one IPv4 range per network, one file per allocated address
//! (`<dataDir>/<network>/<ip>` holding the container id and ifname), serialised across
//! processes by flock(2) on `<dataDir>/<network>/lock`, so concurrent ADDs never hand out one
//! address twice. Never allocates the network or broadcast address of the subnet.
//!
//! An index (`<network>/attachments/<container id>/<ifname>` holding the address) finds an
//! attachment's address without reading every allocation, so ADD and DEL cost the same with
//! a thousand pods as with one. The address file stays the truth: an index entry whose
//! address file names another attachment is ignored. A store written before the index had
//! one gets it built once, under the lock (`index-v1` marks it done).

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use ipnet::Ipv4Net;
use nix::fcntl::{Flock, FlockArg};

use crate::spec::{code, Attachment, CniError, IpamConf};

/// Default root of allocation folders.
pub const DEFAULT_DATA_DIR: &str = "/var/lib/bosun/cni/ipam";
const LOCK_FILE: &str = "lock";
const LAST_FILE: &str = "last_reserved_ip";
const INDEX_DIR: &str = "attachments";
const INDEX_DONE: &str = "index-v1";

/// One recorded allocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    pub ip: Ipv4Addr,
    pub container_id: String,
    pub ifname: String,
}

/// The allocation store of one network.
#[derive(Debug, Clone)]
pub struct IpamStore {
    dir: PathBuf,
    first: u32,
    last: u32,
}

fn io_err(op: &str, path: &Path, e: std::io::Error) -> CniError {
    CniError::new(
        code::IO_FAILURE,
        format!("ipam: {op}"),
        format!("{}: {e}", path.display()),
    )
}

impl IpamStore {
    /// The store for network `network` with range from `conf`.
    pub fn new(conf: &IpamConf, network: &str) -> Result<Self, CniError> {
        if network.is_empty() || network.contains('/') || network.starts_with('.') {
            return Err(CniError::new(
                code::INVALID_CONFIG,
                "invalid network name",
                network,
            ));
        }
        let root = conf
            .data_dir
            .clone()
            .unwrap_or_else(|| DEFAULT_DATA_DIR.into());
        let (first, last) = host_range(conf.subnet, conf.range_start, conf.range_end)?;
        Ok(IpamStore {
            dir: root.join(network),
            first,
            last,
        })
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn lock(&self) -> Result<Flock<File>, CniError> {
        fs::create_dir_all(&self.dir).map_err(|e| io_err("creating", &self.dir, e))?;
        let path = self.dir.join(LOCK_FILE);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| io_err("opening", &path, e))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, e)| io_err("locking", &path, e.into()))
    }

    /// Every allocation on disk (caller should hold the lock for a consistent view).
    fn read_all(&self) -> Result<Vec<Allocation>, CniError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_err("listing", &self.dir, e)),
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(ip) = name.to_str().and_then(|n| n.parse::<Ipv4Addr>().ok()) else {
                continue;
            };
            let Ok(text) = fs::read_to_string(entry.path()) else {
                continue;
            };
            let mut lines = text.lines();
            out.push(Allocation {
                ip,
                container_id: lines.next().unwrap_or_default().to_owned(),
                ifname: lines.next().unwrap_or_default().to_owned(),
            });
        }
        Ok(out)
    }

    /// Allocations, read under the lock.
    pub fn allocations(&self) -> Result<Vec<Allocation>, CniError> {
        let _lock = self.lock()?;
        self.read_all()
    }

    /// The address of (container id, ifname): the existing one if ADD is repeated, else the
    /// next free address after the last one handed out (round robin, like host-local).
    pub fn allocate(&self, container_id: &str, ifname: &str) -> Result<Ipv4Addr, CniError> {
        let _lock = self.lock()?;
        self.ensure_index()?;
        if let Some(ip) = self.indexed(container_id, ifname) {
            return Ok(ip);
        }
        let last_path = self.dir.join(LAST_FILE);
        let last = fs::read_to_string(&last_path)
            .ok()
            .and_then(|s| s.trim().parse::<Ipv4Addr>().ok())
            .map(u32::from)
            .filter(|ip| (self.first..=self.last).contains(ip))
            .unwrap_or(self.last);
        let size = self.last - self.first + 1;
        for step in 1..=size {
            let candidate = self.first + (last - self.first + step) % size;
            let ip = Ipv4Addr::from(candidate);
            let path = self.dir.join(ip.to_string());
            let mut file = match OpenOptions::new().write(true).create_new(true).open(&path) {
                Ok(f) => f,
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(e) => return Err(io_err("creating", &path, e)),
            };
            file.write_all(format!("{container_id}\n{ifname}\n").as_bytes())
                .map_err(|e| io_err("writing", &path, e))?;
            self.write_index(container_id, ifname, ip)?;
            fs::write(&last_path, ip.to_string()).map_err(|e| io_err("writing", &last_path, e))?;
            return Ok(ip);
        }
        Err(CniError::new(
            code::TRY_AGAIN,
            "ipam: no free address in range",
            format!(
                "{} .. {}",
                Ipv4Addr::from(self.first),
                Ipv4Addr::from(self.last)
            ),
        ))
    }

    /// The address (container id, ifname) holds, read under the lock.
    pub fn held_by(&self, container_id: &str, ifname: &str) -> Result<Option<Ipv4Addr>, CniError> {
        let _lock = self.lock()?;
        self.ensure_index()?;
        Ok(self.indexed(container_id, ifname))
    }

    fn index_path(&self, container_id: &str, ifname: &str) -> PathBuf {
        self.dir.join(INDEX_DIR).join(container_id).join(ifname)
    }

    /// The indexed address of the attachment, if its address file agrees.
    fn indexed(&self, container_id: &str, ifname: &str) -> Option<Ipv4Addr> {
        let ip: Ipv4Addr = fs::read_to_string(self.index_path(container_id, ifname))
            .ok()?
            .trim()
            .parse()
            .ok()?;
        let held = fs::read_to_string(self.dir.join(ip.to_string())).ok()?;
        let mut lines = held.lines();
        (lines.next() == Some(container_id) && lines.next() == Some(ifname)).then_some(ip)
    }

    fn write_index(&self, container_id: &str, ifname: &str, ip: Ipv4Addr) -> Result<(), CniError> {
        let path = self.index_path(container_id, ifname);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent).map_err(|e| io_err("creating", parent, e))?;
        }
        fs::write(&path, ip.to_string()).map_err(|e| io_err("writing", &path, e))
    }

    fn remove_index(&self, container_id: &str, ifname: &str) -> Result<(), CniError> {
        let path = self.index_path(container_id, ifname);
        remove_file(&path)?;
        if let Some(parent) = path.parent() {
            let _ = fs::remove_dir(parent); // only when no other interface is left
        }
        Ok(())
    }

    /// Builds the index of a store written before it had one (caller holds the lock).
    fn ensure_index(&self) -> Result<(), CniError> {
        let done = self.dir.join(INDEX_DONE);
        if done.exists() {
            return Ok(());
        }
        for a in self.read_all()? {
            self.write_index(&a.container_id, &a.ifname, a.ip)?;
        }
        fs::write(&done, "").map_err(|e| io_err("writing", &done, e))
    }

    /// Releases whatever (container id, ifname) holds; releasing nothing is fine.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<Ipv4Addr>, CniError> {
        let _lock = self.lock()?;
        self.ensure_index()?;
        let held = self.indexed(container_id, ifname);
        if let Some(ip) = held {
            remove_file(&self.dir.join(ip.to_string()))?;
        }
        self.remove_index(container_id, ifname)?;
        Ok(held.into_iter().collect())
    }

    /// Releases every allocation not in `valid` (GC); returns what was released.
    pub fn release_all_but(&self, valid: &[Attachment]) -> Result<Vec<Allocation>, CniError> {
        let _lock = self.lock()?;
        let leaked: Vec<Allocation> = self
            .read_all()?
            .into_iter()
            .filter(|a| {
                !valid
                    .iter()
                    .any(|v| v.container_id == a.container_id && v.ifname == a.ifname)
            })
            .collect();
        for a in &leaked {
            remove_file(&self.dir.join(a.ip.to_string()))?;
            self.remove_index(&a.container_id, &a.ifname)?;
        }
        Ok(leaked)
    }

    /// Whether a free address remains (STATUS).
    pub fn has_free(&self) -> Result<bool, CniError> {
        let used = self.allocations()?.len() as u64;
        Ok(used < u64::from(self.last - self.first) + 1)
    }
}

fn remove_file(path: &Path) -> Result<(), CniError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(io_err("removing", path, e)),
        _ => Ok(()),
    }
}

/// The usable host range of `subnet` (no network/broadcast address for prefixes < 31),
/// narrowed by `start`/`end`, as u32 bounds.
pub fn host_range(
    subnet: Ipv4Net,
    start: Option<Ipv4Addr>,
    end: Option<Ipv4Addr>,
) -> Result<(u32, u32), CniError> {
    let (mut first, mut last) = (u32::from(subnet.network()), u32::from(subnet.broadcast()));
    if subnet.prefix_len() < 31 {
        first += 1;
        last -= 1;
    }
    for (name, bound) in [("rangeStart", start), ("rangeEnd", end)] {
        if let Some(ip) = bound {
            if !subnet.contains(&ip) {
                return Err(CniError::new(
                    code::INVALID_CONFIG,
                    format!("ipam.{name} outside subnet"),
                    format!("{ip} not in {subnet}"),
                ));
            }
        }
    }
    first = start.map_or(first, |s| first.max(u32::from(s)));
    last = end.map_or(last, |e| last.min(u32::from(e)));
    if first > last {
        return Err(CniError::new(
            code::INVALID_CONFIG,
            "ipam: empty range",
            format!("{subnet} start {start:?} end {end:?}"),
        ));
    }
    Ok((first, last))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &Path, subnet: &str) -> IpamStore {
        let conf = IpamConf {
            ipam_type: None,
            subnet: subnet.parse().unwrap(),
            range_start: None,
            range_end: None,
            data_dir: Some(dir.to_owned()),
        };
        IpamStore::new(&conf, "net").unwrap()
    }

    #[test]
    fn allocation_is_idempotent_and_released_once() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path(), "10.9.0.0/30");
        let a = s.allocate("c1", "eth0").unwrap();
        assert_eq!(a, s.allocate("c1", "eth0").unwrap());
        let b = s.allocate("c2", "eth0").unwrap();
        assert_ne!(a, b);
        assert_eq!(s.allocate("c3", "eth0").unwrap_err().code, code::TRY_AGAIN);
        assert_eq!(s.release("c1", "eth0").unwrap(), vec![a]);
        assert!(s.release("c1", "eth0").unwrap().is_empty());
    }

    #[test]
    fn a_store_written_before_the_index_gets_one() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path(), "10.9.0.0/24");
        let dir = s.dir().to_owned();
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("10.9.0.7"), "old\neth0\n").unwrap();
        assert_eq!(
            s.allocate("old", "eth0").unwrap(),
            Ipv4Addr::new(10, 9, 0, 7)
        );
        assert!(dir.join(INDEX_DONE).exists());
        assert_eq!(
            s.release("old", "eth0").unwrap(),
            [Ipv4Addr::new(10, 9, 0, 7)]
        );
        assert!(!dir.join("10.9.0.7").exists());
        assert!(!dir.join(INDEX_DIR).join("old").exists());
    }

    #[test]
    fn an_index_entry_the_address_file_denies_is_ignored() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path(), "10.9.0.0/24");
        let a = s.allocate("c1", "eth0").unwrap();
        // A crash between writing the index and the address: the index names an address that
        // another attachment holds.
        let b = s.allocate("c2", "eth0").unwrap();
        fs::write(s.index_path("c1", "eth0"), b.to_string()).unwrap();
        fs::remove_file(s.dir().join(a.to_string())).unwrap();
        assert!(s.release("c1", "eth0").unwrap().is_empty());
        assert_eq!(s.held_by("c2", "eth0").unwrap(), Some(b));
        let again = s.allocate("c1", "eth0").unwrap();
        assert_ne!(again, b);
        assert_eq!(s.held_by("c1", "eth0").unwrap(), Some(again));
    }

    #[test]
    fn gc_keeps_only_valid_attachments() {
        let tmp = tempfile::tempdir().unwrap();
        let s = store(tmp.path(), "10.9.0.0/24");
        s.allocate("keep", "eth0").unwrap();
        s.allocate("leak", "eth0").unwrap();
        let valid = [Attachment {
            container_id: "keep".into(),
            ifname: "eth0".into(),
        }];
        let leaked = s.release_all_but(&valid).unwrap();
        assert_eq!(leaked.len(), 1);
        assert_eq!(leaked[0].container_id, "leak");
        assert_eq!(s.allocations().unwrap().len(), 1);
    }

    #[test]
    fn range_excludes_network_and_broadcast() {
        let (f, l) = host_range("10.0.0.0/24".parse().unwrap(), None, None).unwrap();
        assert_eq!(Ipv4Addr::from(f), Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(Ipv4Addr::from(l), Ipv4Addr::new(10, 0, 0, 254));
        assert!(host_range(
            "10.0.0.0/24".parse().unwrap(),
            Some([10, 1, 0, 1].into()),
            None
        )
        .is_err());
    }
}
