//! The routing benchmark's human report: one table per metric (rows = service counts,
//! columns = impls) and the goals as measured ratios — reported, never asserted.

use std::fmt::Write as _;

use super::{routing::IMPLS, Row};

const METRICS: [(&str, &str); 11] = [
    ("sync_full_ms", "full sync of all services, ms"),
    (
        "sync_full_noflush_ms",
        "iptables full sync with kube-proxy's --noflush, ms (> = killed at the limit)",
    ),
    ("sync_one_ms", "one endpoint change, ms (median)"),
    ("dataplane_cpu_ms", "CPU of the full sync, ms"),
    ("conn_rps", "new connection per request, req/s"),
    ("conn_p50_ms", "new connection request p50, ms"),
    ("conn_p99_ms", "new connection request p99, ms"),
    ("conn_cpu_us", "machine CPU per new-connection request, µs"),
    ("keepalive_rps", "keep-alive (wrk -t2 -c32), req/s"),
    ("keepalive_cpu_us", "machine CPU per keep-alive request, µs"),
    ("conn_errors", "failed new-connection requests"),
];

const NO_IPVS: &str = "not available on this kernel (no IP_VS)";

fn value(rows: &[Row], n: u32, imp: &str, metric: &str) -> Option<f64> {
    let case = format!("services={n}");
    rows.iter()
        .find(|r| r.case == case && r.implementation == imp && r.metric == metric)
        .map(|r| r.value)
}

fn fmt(v: f64) -> String {
    match v.abs() {
        a if a >= 100.0 => format!("{v:.0}"),
        a if a >= 1.0 => format!("{v:.2}"),
        _ => format!("{v:.4}"),
    }
}

/// One block per metric: rows = service counts, columns = impls.
pub fn matrix(rows: &[Row], counts: &[u32], ipvs: bool) -> String {
    let mut out =
        String::from("\nrouting: services × dataplane (same client, backends, machine, run)\n");
    let ipvs_cell = if ipvs { "not measured" } else { "n/a" };
    for (metric, title) in METRICS {
        let _ = writeln!(out, "\n{metric}: {title}");
        let _ = write!(out, "{:>9}", "services");
        for imp in IMPLS {
            let _ = write!(out, " {imp:>11}");
        }
        out.push('\n');
        for &n in counts {
            let _ = write!(out, "{n:>9}");
            for imp in IMPLS {
                let timeout = value(rows, n, imp, &metric.replace("_ms", "_timeout_ms"));
                let cell = match (value(rows, n, imp, metric), timeout) {
                    (Some(v), _) => fmt(v),
                    (None, Some(limit)) => format!(">{}", fmt(limit)),
                    (None, None) if imp == "ipvs" => ipvs_cell.to_owned(),
                    (None, None) => "-".to_owned(),
                };
                let _ = write!(out, " {cell:>11}");
            }
            out.push('\n');
        }
    }
    if ipvs {
        out.push_str("\nipvs: the kernel has IP_VS, but this benchmark has no ipvs peer yet\n");
    } else {
        let _ = writeln!(out, "\nipvs: {NO_IPVS}");
    }
    out.push_str(concat!(
        "direct: no service; new connections round-robin over the 10 backends, wrk to ",
        "10.250.0.1:8080; sync columns do not apply\n"
    ));
    out
}

/// The goals against what was measured.
pub fn goals(rows: &[Row], counts: &[u32]) -> String {
    let mut out = String::from("\ngoals (reported, not asserted):\n");
    let Some(&big) = counts
        .iter()
        .find(|&&n| n == 10_000)
        .or(counts.iter().max())
    else {
        return out;
    };
    let note = if big == 10_000 {
        String::new()
    } else {
        format!(" [no 10000 case: at {big}]")
    };
    let v = |n: u32, imp: &str, metric: &str| value(rows, n, imp, metric);
    let mut line = |goal: &str, got: Option<(f64, String)>, ok: &dyn Fn(f64) -> bool| {
        let verdict = match &got {
            Some((x, _)) if ok(*x) => "met",
            Some(_) => "MISSED",
            None => "not measured",
        };
        let shown = got.map(|(_, s)| s).unwrap_or_default();
        let _ = writeln!(out, "  {goal:<58} {shown:>22}  {verdict}{note}");
    };
    let ratio = |a: Option<f64>, b: Option<f64>| match (a, b) {
        (Some(a), Some(b)) if b > 0.0 => Some((a / b, format!("{:.3}×", a / b))),
        _ => None,
    };
    line(
        "bosun full sync of 10 000 services × 10 endpoints < 100 ms",
        v(big, "bosun", "sync_full_ms").map(|x| (x, format!("{} ms", fmt(x)))),
        &|x| x < 100.0,
    );
    line(
        "bosun one endpoint change < 1 ms",
        v(big, "bosun", "sync_one_ms").map(|x| (x, format!("{} ms", fmt(x)))),
        &|x| x < 1.0,
    );
    let small = counts.iter().min().copied().unwrap_or(1);
    line(
        &format!("bosun conn_rps at {big} within 5 % of at {small} (≥ 0.95×)"),
        ratio(v(big, "bosun", "conn_rps"), v(small, "bosun", "conn_rps")),
        &|x| x >= 0.95,
    );
    line(
        "bosun conn_rps ≥ 1.5× iptables",
        ratio(v(big, "bosun", "conn_rps"), v(big, "iptables", "conn_rps")),
        &|x| x >= 1.5,
    );
    line(
        "bosun conn_rps within 5 % of direct (≥ 0.95×)",
        ratio(v(big, "bosun", "conn_rps"), v(big, "direct", "conn_rps")),
        &|x| x >= 0.95,
    );
    line(
        "(context) bosun conn_rps vs nftables",
        ratio(v(big, "bosun", "conn_rps"), v(big, "nftables", "conn_rps")),
        &|_| true,
    );
    out
}
