//! `cargo xtask bench pull`: pull + unpack of a ~100 MB, 6-layer image (built from Debian
//! packages, `pull_image.rs`) from Debian's `docker-registry` on 127.0.0.1, into a cold store
//! each run: the release `bosun-agent image pull` against `skopeo copy docker://… oci:DIR` +
//! `umoci unpack`, interleaved, in the same run. Rows `case=pull100m impl=bosun|skopeo+umoci
//! metric=p50_ms`, and bosun's `peak_rss_mb` (the child's maxrss, see [`measured`]).
//!
//! Everything lives in `target/bench-work/pull` and the registry's temp directory, both
//! removed afterwards; the image itself is cached in `target/bench-cache/pull100m`.

use std::ffi::OsString;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::time::Instant;

use anyhow::{bail, Context, Result};
use bosun_test_support::Registry;
use nix::sys::resource::{getrusage, UsageWho};

use super::{percentiles, pull_image, write_results, Options, Row};
use xtask::util;

const CASE: &str = "pull100m";
const REPO: &str = "bench/pull100m:1";
/// The hidden first argument that makes `bosun-bench` run [`measure_child`].
pub const MEASURE_ARG: &str = "__measure";

pub fn run(options: &Options) -> Result<()> {
    let runs = if options.quick { 1 } else { 5 };
    util::run(util::cargo().args(["build", "--release", "-p", "bosun-agent"]))?;
    let agent = util::target_dir().join("release").join("bosun-agent");
    let image = pull_image::ensure(&util::target_dir().join("bench-cache").join(CASE))?;
    println!(
        "pull: {} layers, {:.1} MB compressed, {:.1} MB unpacked",
        image.layers,
        image.compressed as f64 / 1e6,
        image.uncompressed as f64 / 1e6
    );
    let registry = Registry::start()?;
    registry.push_layout(&image.layout, pull_image::TAG, REPO)?;
    let reference = format!("{}/{REPO}", registry.host);
    let work = util::target_dir().join("bench-work").join("pull");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let result = measure(&work, &agent, &registry.host, &reference, runs);
    let _ = std::fs::remove_dir_all(&work);
    let rows = result?;
    write_results("pull", &rows)?;
    let value = |imp: &str, metric: &str| {
        rows.iter()
            .find(|r| r.implementation == imp && r.metric == metric)
            .map_or(f64::NAN, |r| r.value)
    };
    println!(
        "bosun pull+unpack p50 is {:.2}x faster than skopeo+umoci; bosun peak RSS {:.1} MB",
        value("skopeo+umoci", "p50_ms") / value("bosun", "p50_ms"),
        value("bosun", "peak_rss_mb")
    );
    Ok(())
}

fn measure(
    work: &Path,
    agent: &Path,
    host: &str,
    reference: &str,
    runs: usize,
) -> Result<Vec<Row>> {
    let (mut bosun, mut peer, mut rss) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..runs {
        let root = work.join(format!("bosun-{i}"));
        let mut pull = Command::new(agent);
        pull.arg("--root")
            .arg(&root)
            .args(["--insecure-registry", host, "--log-level", "warn"])
            .args(["image", "pull", reference]);
        let (ms, maxrss_kb) = measured(&pull)?;
        bosun.push(ms);
        rss.push(maxrss_kb as f64 / 1024.0);
        let _ = std::fs::remove_dir_all(&root);

        let dir = work.join(format!("skopeo-{i}"));
        let layout = dir.join("layout");
        let bundle = dir.join("bundle");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let t0 = Instant::now();
        run_quiet(
            Command::new("skopeo")
                .args(["copy", "--quiet", "--src-tls-verify=false"])
                .arg(format!("docker://{reference}"))
                .arg(format!("oci:{}:{}", layout.display(), pull_image::TAG)),
        )?;
        run_quiet(
            Command::new("umoci")
                .arg("unpack")
                .arg("--image")
                .arg(format!("{}:{}", layout.display(), pull_image::TAG))
                .arg(&bundle),
        )?;
        peer.push(t0.elapsed().as_secs_f64() * 1e3);
        let _ = std::fs::remove_dir_all(&dir);
    }
    let mut rows = Vec::new();
    for (imp, sample) in [("bosun", bosun), ("skopeo+umoci", peer)] {
        let p = percentiles(sample).context("no samples")?;
        rows.push(Row::new(CASE, imp, "p50_ms", p.p50));
    }
    let max_rss = rss.into_iter().fold(0.0, f64::max);
    rows.push(Row::new(CASE, "bosun", "peak_rss_mb", max_rss));
    Ok(rows)
}

fn run_quiet(command: &mut Command) -> Result<()> {
    let out = command
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting {command:?}"))?;
    if !out.status.success() {
        bail!(
            "{command:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// Runs `command` through a fresh `bosun-bench __measure` process, whose only child it is:
/// that process's `getrusage(RUSAGE_CHILDREN)` then is the command's own (its maxrss is the
/// peak RSS of the command, as wait4 would report it). Returns wall ms and maxrss in KiB.
fn measured(command: &Command) -> Result<(f64, i64)> {
    let exe = std::env::current_exe().context("locating bosun-bench")?;
    let out = Command::new(exe)
        .arg(MEASURE_ARG)
        .arg(command.get_program())
        .args(command.get_args())
        .stdin(Stdio::null())
        .output()
        .context("starting the measuring process")?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() {
        bail!(
            "{command:?} failed: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let line = stdout.lines().last().unwrap_or("");
    let mut fields = line.split_whitespace();
    match (
        fields.next().and_then(|f| f.parse().ok()),
        fields.next().and_then(|f| f.parse().ok()),
    ) {
        (Some(ms), Some(kb)) => Ok((ms, kb)),
        _ => bail!("the measuring process printed {line:?}"),
    }
}

/// `bosun-bench __measure PROGRAM ARGS…`: runs the program (its stdout sent to our stderr),
/// then prints `<wall ms> <maxrss KiB>` and exits with its status.
pub fn measure_child(args: &[OsString]) -> ExitCode {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("{MEASURE_ARG}: no program");
        return ExitCode::FAILURE;
    };
    let stderr = std::io::stderr().as_fd().try_clone_to_owned();
    let t0 = Instant::now();
    let status = match stderr {
        Ok(fd) => Command::new(PathBuf::from(program))
            .args(rest)
            .stdin(Stdio::null())
            .stdout(Stdio::from(fd))
            .status(),
        Err(e) => Err(e),
    };
    let ms = t0.elapsed().as_secs_f64() * 1e3;
    let status = match status {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{MEASURE_ARG}: starting {}: {e}", program.to_string_lossy());
            return ExitCode::FAILURE;
        }
    };
    let maxrss = getrusage(UsageWho::RUSAGE_CHILDREN).map_or(-1, |u| u.max_rss());
    println!("{ms:.3} {maxrss}");
    if status.success() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
