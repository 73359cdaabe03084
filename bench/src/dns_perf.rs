//! dnsperf runs of the DNS benchmark and what is read from their output: a throughput run
//! (as many queries as the server answers, `-q` outstanding) and a latency run at a fixed
//! rate (`-Q`) with `-v`, whose per-query latencies give p50/p99. Every run is bounded by
//! `-l` seconds and made from the "pod" netns.

use std::path::Path;

use anyhow::{bail, Context, Result};
use bosun_test_support::Netns;
use xtask::util;

use super::{percentiles, Percentiles};

/// Queries kept in flight by the throughput run (dnsperf's default).
const OUTSTANDING: &str = "100";

/// What a throughput run measured.
#[derive(Debug, PartialEq)]
pub struct Throughput {
    pub qps: f64,
    pub lost: u64,
}

/// The server under test, as dnsperf reaches it.
pub struct Target<'a> {
    pub server: &'a str,
    pub port: u16,
}

fn dnsperf(pod: &Netns, target: &Target, queries: &Path, seconds: u32) -> std::process::Command {
    let mut c = pod.command("dnsperf");
    c.args(["-s", target.server, "-p", &target.port.to_string()])
        .arg("-d")
        .arg(queries)
        .args(["-l", &seconds.to_string(), "-t", "2"]);
    c
}

/// Queries/s with [`OUTSTANDING`] queries in flight for `seconds`; fails unless every
/// answer was NOERROR.
pub fn throughput(
    pod: &Netns,
    target: &Target,
    queries: &Path,
    seconds: u32,
) -> Result<Throughput> {
    let out = util::output(dnsperf(pod, target, queries, seconds).args(["-q", OUTSTANDING]))?;
    parse_summary(&out).with_context(|| format!("dnsperf against {}", target.server))
}

/// p50/p99 latency in ms at `rate` queries/s for `seconds`; fails unless every query was
/// answered NOERROR.
pub fn latency(
    pod: &Netns,
    target: &Target,
    queries: &Path,
    seconds: u32,
    rate: u32,
) -> Result<Percentiles> {
    let mut c = dnsperf(pod, target, queries, seconds);
    let out = util::output(c.args(["-Q", &rate.to_string(), "-v"]))?;
    let samples =
        parse_latencies(&out).with_context(|| format!("dnsperf -v against {}", target.server))?;
    percentiles(samples).context("dnsperf answered no query")
}

/// `Queries per second:` and `Queries lost:` of dnsperf's statistics; any response code but
/// NOERROR is an error.
pub fn parse_summary(out: &str) -> Result<Throughput> {
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name).map(str::trim))
            .with_context(|| format!("no `{name}` in dnsperf's output:\n{out}"))
    };
    let qps: f64 = field("Queries per second:")?
        .parse()
        .context("queries per second")?;
    let lost = field("Queries lost:")?;
    let lost: u64 = lost
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .parse()
        .context("queries lost")?;
    let codes = field("Response codes:")?;
    for code in codes.split(", ") {
        if !code.starts_with("NOERROR ") {
            bail!("dnsperf got {code} (expected only NOERROR)");
        }
    }
    Ok(Throughput { qps, lost })
}

/// Each answered query's latency in ms from dnsperf `-v` lines (`> NOERROR name A 0.000182`);
/// any other response code is an error.
pub fn parse_latencies(out: &str) -> Result<Vec<f64>> {
    let mut samples = Vec::new();
    for line in out.lines().filter_map(|l| l.strip_prefix("> ")) {
        let mut words = line.split_whitespace();
        let code = words.next().unwrap_or_default();
        if code != "NOERROR" {
            bail!("dnsperf: {line} (expected only NOERROR)");
        }
        let seconds: f64 = words
            .next_back()
            .unwrap_or_default()
            .parse()
            .with_context(|| format!("latency of `{line}`"))?;
        samples.push(seconds * 1e3);
    }
    Ok(samples)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SUMMARY: &str = "\
Statistics:

  Queries sent:         5
  Queries completed:    5 (100.00%)
  Queries lost:         0 (0.00%)

  Response codes:       NOERROR 5 (100.00%)
  Average packet size:  request 39, response 49
  Run time (s):         1.000124
  Queries per second:   4.999380
";

    #[test]
    fn the_summary_gives_queries_per_second_and_losses() {
        let t = parse_summary(SUMMARY).unwrap();
        assert_eq!(
            t,
            Throughput {
                qps: 4.999380,
                lost: 0
            }
        );
    }

    #[test]
    fn any_code_but_noerror_fails_the_run() {
        let out = SUMMARY.replace(
            "NOERROR 5 (100.00%)",
            "NOERROR 3 (60.00%), NXDOMAIN 2 (40.00%)",
        );
        let e = parse_summary(&out).unwrap_err().to_string();
        assert!(e.contains("NXDOMAIN 2"), "{e}");
    }

    #[test]
    fn verbose_lines_give_latencies_in_ms() {
        let out = "[Status] Sending\n> NOERROR svc-1.ns-1.svc.cluster.local A 0.000182\n\
                   > NOERROR x.example A 0.001374\nStatistics:\n";
        let samples = parse_latencies(out).unwrap();
        assert_eq!(samples.len(), 2);
        assert!((samples[0] - 0.182).abs() < 1e-9 && (samples[1] - 1.374).abs() < 1e-9);
        assert!(parse_latencies("> SERVFAIL x.example A 2.0\n").is_err());
    }
}
