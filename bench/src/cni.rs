//! `cargo xtask bench cni`: CNI ADD+DEL latency of bosun-cni (routed veth, built-in IPAM)
//! against Debian's bridge + host-local, measured in the same run, interleaved, each plugin
//! spawned directly from a thread inside a throwaway node netns with one pod netns reused
//! for every iteration. Everything happens inside those two namespaces and
//! `target/bench-work/cni`, all removed afterwards.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bosun_test_support::Netns;
use serde_json::{json, Value};

use super::{percentiles, write_results, Options, Row};
use xtask::util;

const DEBIAN_CNI: &str = "/usr/lib/cni";

/// One plugin under test: its binary and config.
struct Peer {
    name: &'static str,
    bin: PathBuf,
    conf: Value,
}

pub fn run(options: &Options) -> Result<()> {
    let iterations = if options.quick { 5 } else { 200 };
    util::run(util::cargo().args(["build", "--release", "-p", "bosun-cni"]))?;
    let work = util::target_dir().join("bench-work").join("cni");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = measure(&work, iterations);
    let _ = std::fs::remove_dir_all(&work);
    let rows = result?;
    write_results("cni", &rows)?;
    let p50 = |imp: &str| {
        rows.iter()
            .find(|r| r.case == "add+del" && r.implementation == imp && r.metric == "p50_ms")
            .map_or(f64::NAN, |r| r.value)
    };
    println!(
        "bosun-cni ADD+DEL p50 is {:.1}x faster than bridge+host-local",
        p50("bridge+host-local") / p50("bosun")
    );
    Ok(())
}

fn measure(work: &Path, iterations: usize) -> Result<Vec<Row>> {
    let node = Netns::create("bsnbench-node")?;
    let pod = Netns::create("bsnbench-pod")?;
    let peers = [
        Peer {
            name: "bosun",
            bin: util::target_dir().join("release").join("bosun-cni"),
            conf: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bosun-cni",
                "ipam": {"subnet": "10.244.0.0/24", "dataDir": work.join("bosun-ipam")},
            }),
        },
        Peer {
            name: "bridge+host-local",
            bin: Path::new(DEBIAN_CNI).join("bridge"),
            conf: json!({
                "cniVersion": "1.0.0", "name": "bench", "type": "bridge",
                "bridge": "bsnbench0", "isGateway": true, "ipMasq": false,
                "ipam": {"type": "host-local", "subnet": "10.245.0.0/24",
                         "dataDir": work.join("host-local"), "routes": [{"dst": "0.0.0.0/0"}]},
            }),
        },
    ];
    if !peers[1].bin.is_file() {
        bail!(
            "{} missing: apt-get install containernetworking-plugins",
            peers[1].bin.display()
        );
    }
    let pod_path = pod.path();
    // Every plugin runs from a thread that entered the node netns: the pod veth and routes
    // land there, never in the host's namespace.
    let samples = node.try_run_in(|| -> Result<Vec<[Vec<f64>; 3]>> {
        let mut samples: Vec<[Vec<f64>; 3]> = peers.iter().map(|_| Default::default()).collect();
        for i in 0..iterations {
            for (peer, out) in peers.iter().zip(samples.iter_mut()) {
                let id = format!("bench{i}");
                let t0 = Instant::now();
                invoke(peer, "ADD", &id, &pod_path)?;
                let t1 = Instant::now();
                invoke(peer, "DEL", &id, &pod_path)?;
                let t2 = Instant::now();
                out[0].push((t2 - t0).as_secs_f64() * 1e3);
                out[1].push((t1 - t0).as_secs_f64() * 1e3);
                out[2].push((t2 - t1).as_secs_f64() * 1e3);
            }
        }
        Ok(samples)
    })??;
    let mut rows = Vec::new();
    for (peer, [both, add, del]) in peers.iter().zip(samples) {
        for (case, sample) in [("add+del", both), ("add", add), ("del", del)] {
            let p = percentiles(sample).context("no samples")?;
            rows.push(Row::new(case, peer.name, "p50_ms", p.p50));
            rows.push(Row::new(case, peer.name, "p99_ms", p.p99));
        }
    }
    Ok(rows)
}

/// Runs one CNI verb of `peer` for attachment `id` in the pod netns; fails on a CNI error.
fn invoke(peer: &Peer, command: &str, id: &str, pod: &Path) -> Result<()> {
    let mut child = Command::new(&peer.bin)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("CNI_COMMAND", command)
        .env("CNI_CONTAINERID", id)
        .env("CNI_NETNS", pod)
        .env("CNI_IFNAME", "eth0")
        .env("CNI_PATH", DEBIAN_CNI)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", peer.bin.display()))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(peer.conf.to_string().as_bytes())?;
    }
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "{} {command} failed: {}{}",
            peer.name,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}
