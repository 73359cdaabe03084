//! `cargo xtask setup`: make a fresh Debian 12 machine able to build and test bosun.
//!
//! Idempotent: it asks dpkg which packages are missing and only then runs `apt-get update` and
//! `apt-get install`; it adds rustfmt/clippy only when `cargo fmt`/`cargo clippy` do not run.
//! It never removes or upgrades anything that is already installed.

use anyhow::{bail, Result};

use crate::util::{self, cmd};

/// Debian 12 (bookworm) packages the build, the tests and the benchmarks need.
pub const DEBIAN_PACKAGES: &[&str] = &[
    // Test images are built from its static /bin/busybox.
    "busybox-static",
    // Peer runtimes for the pods benchmark and behaviour comparisons.
    "crun",
    "runc",
    // eBPF programs are C, compiled by clang and inspected with llvm/bpftool (DESIGN.md §4a).
    "clang",
    "llvm",
    "libbpf-dev",
    "bpftool",
    // Test netns "nodes", routes, and the kube-proxy-layout peers of the routing benchmark.
    "iproute2",
    "iptables",
    "nftables",
    "kmod",
    // CNI bridge + host-local plugins.
    "containernetworking-plugins",
    // Image inspection and the local registry for pull tests (DESIGN.md §6).
    "skopeo",
    "umoci",
    "docker-registry",
    // Benchmarks and scripts.
    "hyperfine",
    "wrk",
    "jq",
    // protoc: etcd-client (bosun-control's etcd store backend) builds its protos with
    // tonic-build, bosun-csi its CSI protos with tonic-prost-build. Only crates xtask does not
    // depend on may need it (DESIGN.md §4).
    "protobuf-compiler",
    // protobuf's well-known types (google/protobuf/descriptor.proto, struct.proto…), which
    // etcd-client's protos import: protobuf-compiler only recommends them.
    "libprotobuf-dev",
    // bosun-csi-local: mkfs.ext4 and resize2fs for its file-backed volumes (losetup and mount
    // come from util-linux/mount, which every Debian has).
    "e2fsprogs",
    // etcd 3.4 (/usr/bin/etcd): the control store's etcd backend is tested against a real
    // 3-member cluster on loopback.
    "etcd-server",
    // The cluster benchmark's peer: containerd (a private instance) starting the same
    // containers with `ctr`.
    "containerd",
    // The DNS benchmark: its load generator, and its peer (the binary alone: `dnsmasq`
    // would also start a resolver service on the host).
    "dnsperf",
    "dnsmasq-base",
];

/// Packages installed only when their command is missing: a machine may already have the
/// command from elsewhere (kubectl from a vendor repository), which must not be replaced.
pub const COMMAND_PACKAGES: &[(&str, &str)] = &[
    // The control plane's tests drive the API with the real kubectl.
    ("kubectl", "kubernetes-client"),
];

/// Runs the setup verb.
pub fn run() -> Result<()> {
    let installed = install_debian_packages()?;
    let components = install_rust_components()?;
    if !installed && !components {
        println!("setup: nothing to do, everything is installed");
    }
    Ok(())
}

/// Installs the missing Debian packages; returns whether anything was installed.
fn install_debian_packages() -> Result<bool> {
    let mut missing: Vec<&str> = DEBIAN_PACKAGES
        .iter()
        .copied()
        .filter(|package| !is_installed(package))
        .collect();
    missing.extend(
        COMMAND_PACKAGES
            .iter()
            .filter(|(command, package)| !command_exists(command) && !is_installed(package))
            .map(|(_, package)| *package),
    );
    if missing.is_empty() {
        println!(
            "setup: all {} Debian packages are installed",
            DEBIAN_PACKAGES.len()
        );
        return Ok(false);
    }
    println!(
        "setup: installing missing Debian packages: {}",
        missing.join(" ")
    );
    if !util::is_root() {
        bail!("setup must run as root to install {}", missing.join(" "));
    }
    util::run(cmd("apt-get", ["update", "-q"]).env("DEBIAN_FRONTEND", "noninteractive"))?;
    util::run(
        cmd(
            "apt-get",
            ["install", "-y", "-q", "--no-install-recommends"],
        )
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"),
    )?;
    let still_missing: Vec<&str> = missing
        .into_iter()
        .filter(|package| !is_installed(package))
        .collect();
    if !still_missing.is_empty() {
        bail!("apt-get did not install {}", still_missing.join(" "));
    }
    println!("setup: Debian packages installed");
    Ok(true)
}

/// Whether `command` is found on the PATH.
fn command_exists(command: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|path| std::env::split_paths(&path).any(|dir| dir.join(command).is_file()))
}

/// Whether dpkg reports `package` as fully installed.
fn is_installed(package: &str) -> bool {
    util::output(&mut cmd("dpkg-query", ["-W", "-f=${Status}", package]))
        .is_ok_and(|status| status_is_installed(&status))
}

/// Parses dpkg's `${Status}`: "install ok installed" is the only fully installed state.
fn status_is_installed(status: &str) -> bool {
    status.trim() == "install ok installed"
}

/// Adds rustfmt and clippy to the active toolchain when cargo cannot run them; returns
/// whether anything was added.
fn install_rust_components() -> Result<bool> {
    let fmt_works = util::succeeds(util::cargo().args(["fmt", "--version"]));
    let clippy_works = util::succeeds(util::cargo().args(["clippy", "--version"]));
    if fmt_works && clippy_works {
        println!("setup: rustfmt and clippy are installed");
        return Ok(false);
    }
    println!("setup: adding rustfmt and clippy to the active toolchain");
    util::run(&mut cmd(
        "rustup",
        ["component", "add", "rustfmt", "clippy"],
    ))?;
    Ok(true)
}

/// What `demo` and `up` start with: setup, the test images, and a release build with
/// `build_args` (e.g. `["-p", "bosun-agent"]`). Returns the images directory.
pub fn prepare_release(build_args: &[&str]) -> Result<std::path::PathBuf> {
    run()?;
    let images_dir = crate::images::run(false)?;
    util::run(
        util::cargo()
            .current_dir(util::workspace_root())
            .args(["build", "--release"])
            .args(build_args),
    )?;
    Ok(images_dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_install_ok_installed_counts_as_installed() {
        assert!(status_is_installed("install ok installed"));
        assert!(!status_is_installed("unknown ok not-installed"));
        assert!(!status_is_installed("deinstall ok config-files"));
        assert!(!status_is_installed("install ok half-configured"));
    }

    #[test]
    fn package_list_has_no_duplicates() {
        let mut sorted = DEBIAN_PACKAGES.to_vec();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), DEBIAN_PACKAGES.len());
    }
}
