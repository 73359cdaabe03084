//! Interface names derived from the attachment, so every interface bosun-cni creates on a
//! node is recognisably ours (`bsn` prefix) and can be found again from (container id, ifname)
//! alone — DEL and GC need no state beyond that.

use sha2::{Digest, Sha256};

/// The prefix of every host-side interface bosun-cni creates.
pub const HOST_IF_PREFIX: &str = "bsn";

/// The host-side veth name for an attachment: `bsn` + 11 hex digits of
/// sha256(container id, NUL, ifname) — 14 bytes, within IFNAMSIZ.
pub fn host_if_name(container_id: &str, ifname: &str) -> String {
    let mut hash = Sha256::new();
    hash.update(container_id.as_bytes());
    hash.update([0u8]);
    hash.update(ifname.as_bytes());
    let digest = hex::encode(hash.finalize());
    format!("{HOST_IF_PREFIX}{}", &digest[..11])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_are_short_stable_and_prefixed() {
        let a = host_if_name("pod-uid-1", "eth0");
        assert_eq!(a, host_if_name("pod-uid-1", "eth0"));
        assert_ne!(a, host_if_name("pod-uid-1", "eth1"));
        assert!(a.starts_with("bsn") && a.len() <= 15);
    }
}
