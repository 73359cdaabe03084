//! The busybox root filesystem shared by every test image.
//!
//! Built only from Debian's `busybox-static` binary and fixed text: /bin/busybox plus one
//! `/bin/<applet> -> busybox` symlink per applet, the usual top-level directories, and
//! passwd/group entries for root, nobody and uid 1000. Nothing is downloaded.

use std::path::Path;

use anyhow::{bail, Context, Result};

use super::layer::Entry;
use crate::util::{self, cmd};

/// Applets the tests rely on; a busybox without one of them is refused.
pub const REQUIRED_APPLETS: &[&str] = &[
    "sh", "httpd", "nc", "sleep", "wget", "true", "false", "echo", "cat", "env", "id", "hostname",
    "ls", "ps", "kill", "grep", "head", "seq", "touch", "mkdir", "rm", "dd",
];

const PASSWD: &str = "\
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
user1000:x:1000:1000:user1000:/tmp:/bin/sh
";

const GROUP: &str = "\
root:x:0:
nobody:x:65534:
user1000:x:1000:
";

pub const INDEX_HTML: &str = "hello from bosun\n";

/// The rootfs entries for the busybox binary at `busybox`.
pub fn busybox_rootfs(busybox: &Path) -> Result<Vec<Entry>> {
    let binary =
        std::fs::read(busybox).with_context(|| format!("reading {}", busybox.display()))?;
    let listing = util::output(&mut cmd(&busybox.to_string_lossy(), ["--list"]))?;
    let applets = applets(&listing)?;

    let mut entries = vec![
        Entry::dir("bin", 0o755),
        Entry::file("bin/busybox", 0o755, binary),
        Entry::dir("dev", 0o755),
        Entry::dir("etc", 0o755),
        Entry::file("etc/passwd", 0o644, PASSWD),
        Entry::file("etc/group", 0o644, GROUP),
        Entry::dir("proc", 0o555),
        Entry::dir("root", 0o700),
        Entry::dir("sys", 0o555),
        Entry::dir("tmp", 0o1777),
        Entry::dir("var", 0o755),
        Entry::dir("var/www", 0o755),
        Entry::file("var/www/index.html", 0o644, INDEX_HTML),
    ];
    entries.extend(
        applets
            .iter()
            .map(|applet| Entry::symlink(&format!("bin/{applet}"), "busybox")),
    );
    Ok(entries)
}

/// Parses `busybox --list`: one applet per line, sorted, without `busybox` itself.
fn applets(listing: &str) -> Result<Vec<&str>> {
    let mut applets: Vec<&str> = listing
        .lines()
        .map(str::trim)
        .filter(|name| !name.is_empty() && *name != "busybox")
        .collect();
    if let Some(bad) = applets.iter().find(|name| name.contains('/')) {
        bail!("busybox --list printed a path, not an applet name: {bad}");
    }
    applets.sort_unstable();
    applets.dedup();
    let missing: Vec<&str> = REQUIRED_APPLETS
        .iter()
        .copied()
        .filter(|required| applets.binary_search(required).is_err())
        .collect();
    if !missing.is_empty() {
        bail!(
            "busybox lacks applets the tests need: {}",
            missing.join(" ")
        );
    }
    Ok(applets)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn applet_list_excludes_busybox_and_requires_the_test_applets() {
        let mut listing = REQUIRED_APPLETS.join("\n");
        listing.push_str("\nbusybox\nzcat\n");
        let applets = applets(&listing).unwrap();
        assert!(!applets.contains(&"busybox"));
        assert!(applets.contains(&"zcat"));
        assert!(applets.is_sorted());

        let err = applets_error("sh\necho\n");
        assert!(err.contains("httpd"), "{err}");
    }

    fn applets_error(listing: &str) -> String {
        applets(listing).unwrap_err().to_string()
    }
}
