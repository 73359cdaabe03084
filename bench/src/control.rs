//! `cargo xtask bench control`: the Kubernetes API of `bosun-control` on its embedded store
//! (SQLite, the default) and on etcd, against raw etcd puts and gets of the same payloads —
//! the floor any API over etcd stands on — all measured in the same run.
//!
//! For each of the three: single-object create (put) and get latency, creates/s with
//! [`Plan::clients`] concurrent clients (which also fills the store to [`Plan::objects`]),
//! the median of [`Plan::lists`] lists (range reads) of all those objects in one request,
//! watch delivery to [`Plan::watchers`] watchers (from a write's response to each watcher
//! holding the event), and for bosun the control process's RSS with the objects stored (at
//! rest before the lists; after them and its peak too). The API is driven as a client would:
//! HTTPS with the admin client certificate of `<data-dir>/admin.kubeconfig`
//! ([`super::control_api`]); etcd with the `etcd-client` crate ([`super::control_etcd`]).
//! Each etcd is a fresh one-member Debian etcd on loopback.
//!
//! All three servers start first. The sequential creates, then the gets, of objects
//! `0..`[`Plan::latency`] are interleaved over [`Plan::rounds`] rounds across the three
//! ([`super::control_seq`]), with a fourth client beside them: raw etcd again, creating its
//! objects with the create-if-absent transaction any create that must not overwrite sends
//! (kube-apiserver's and bosun's) — a reference printed beside the floor, which stays the
//! plain put — and a fifth: the thinnest API over that raw etcd ([`super::control_thin`]), a
//! process that only takes each body over the same HTTPS and sends that transaction, to show
//! what the second process hop alone costs on this machine. Each round, each client in turn creates (reads) its share, the
//! order of the turns rotating, and each server's samples are pooled across the rounds — so
//! the floor and the API over it see the same load of this shared machine, which drifts
//! within a run. The rest (concurrent creates, lists, RSS, watches) runs server by server on
//! the objects already there: raw etcd, then bosun embedded, then bosun over etcd, each
//! server stopped once measured.
//!
//! Everything runs under `target/bench-work/control`, removed at the end; the processes are
//! killed however the bench ends ([`super::control_procs`]). The measuring clients must not
//! be slower than the servers: a debug `bosun-bench` builds its release self and runs the
//! bench from it.
//!
//! Goals, printed not asserted: create p99 < 5 ms embedded; over etcd, create and get p99
//! within 1.5× of raw etcd's put and get; control RSS < 100 MB with the objects stored.

use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::control_etcd::Write;
use super::control_procs::{Control, Etcd};
use super::control_seq::{self, Sequential};
use super::{control_api, control_etcd, control_thin, percentiles, write_results, Options, Row};
use xtask::util;

pub const EMBEDDED: &str = "bosun-embedded";
pub const OVER_ETCD: &str = "bosun-etcd";
pub const ETCD: &str = "etcd";
/// Raw etcd's create-if-absent transactions: a reference beside the floor.
pub const ETCD_TXN: &str = "etcd-txn";
/// The thinnest API over raw etcd ([`super::control_thin`]): another reference.
pub const THIN: &str = "thin-api-etcd";

const CREATE_P99_GOAL_MS: f64 = 5.0;
const ETCD_RATIO_GOAL: f64 = 1.5;
const RSS_GOAL_MB: f64 = 100.0;
/// The size of each ConfigMap's `data.payload`: objects of about 1 KiB.
const PAYLOAD_BYTES: usize = 900;

/// Sizes of one run.
#[derive(Clone, Copy, Debug)]
pub struct Plan {
    /// Sequential creates, then gets, timed one by one on each server.
    pub latency: usize,
    /// Rounds the sequential creates (and gets) are interleaved over across the servers.
    pub rounds: usize,
    /// Objects stored once the concurrent creates are done (listed, and held for RSS).
    pub objects: usize,
    /// Concurrent clients for creates/s.
    pub clients: usize,
    /// Lists of all objects, timed one by one.
    pub lists: usize,
    pub watchers: usize,
    /// Writes whose delivery to every watcher is timed.
    pub watch_writes: usize,
    /// Pause between two watched writes.
    pub watch_gap: Duration,
}

impl Plan {
    pub fn new(options: &Options) -> Self {
        if options.quick {
            Self {
                latency: 100,
                rounds: 10,
                objects: 500,
                clients: 16,
                lists: 2,
                watchers: 10,
                watch_writes: 10,
                watch_gap: Duration::from_millis(10),
            }
        } else {
            Self {
                latency: 2000,
                rounds: 10,
                objects: 10_000,
                clients: 16,
                lists: 5,
                watchers: 100,
                watch_writes: 100,
                watch_gap: Duration::from_millis(10),
            }
        }
    }
}

/// The name of object `i` of the bench (also the etcd key's last segment).
pub fn object_name(i: usize) -> String {
    format!("cm-{i:06}")
}

/// The name of watched write `i`.
pub fn watch_name(i: usize) -> String {
    format!("watch-{i:06}")
}

/// The JSON ConfigMap `name` (about 1 KiB): the API's request body and etcd's value.
pub fn configmap(name: &str) -> bytes::Bytes {
    let payload: String = (0..PAYLOAD_BYTES)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default", "labels": {"bench": "control"}},
        "data": {"payload": payload},
    })
    .to_string()
    .into()
}

/// The index of the watched write an API watch event (one JSON line) is about, if it is
/// the ADDED event of one: `"name":"watch-000042"` → 42.
pub fn watched_index(line: &[u8]) -> Option<usize> {
    let text = std::str::from_utf8(line).ok()?;
    if !text.contains(r#""type":"ADDED""#) {
        return None;
    }
    let marker = r#""name":"watch-"#;
    let start = text.find(marker)? + marker.len();
    let digits = &text[start..];
    let end = digits.find('"')?;
    digits[..end].parse().ok()
}

/// One watcher's receipt: watcher, write index, when it arrived.
pub type Receipt = (usize, usize, Instant);

/// Delivery latencies in ms (a receipt before the write's response counts as 0) and how many
/// (watcher, write) pairs never arrived.
pub fn delivery(
    answered: &[Option<Instant>],
    receipts: &[Receipt],
    watchers: usize,
) -> (Vec<f64>, usize) {
    let mut seen = std::collections::HashSet::new();
    let mut samples = Vec::new();
    for &(watcher, index, at) in receipts {
        let Some(Some(answered)) = answered.get(index) else {
            continue;
        };
        if seen.insert((watcher, index)) {
            samples.push(at.saturating_duration_since(*answered).as_secs_f64() * 1e3);
        }
    }
    let written = answered.iter().filter(|a| a.is_some()).count();
    (samples, (written * watchers).saturating_sub(seen.len()))
}

/// The watch rows of `implementation`: delivery p50/p99 from each write's response, p99
/// from each write's request (the write's own latency included: a watcher may hold the event
/// before the writer holds the answer, which counts as 0 from the response), and the
/// (watcher, write) pairs that never arrived, which it returns.
pub fn watch_rows(
    rows: &mut Vec<Row>,
    implementation: &str,
    writes: &[(Instant, Option<Instant>)],
    receipts: &[Receipt],
    watchers: usize,
) -> usize {
    let answered: Vec<Option<Instant>> = writes.iter().map(|w| w.1).collect();
    let (samples, missed) = delivery(&answered, receipts, watchers);
    latency_rows(rows, "watch", implementation, samples);
    let sent: Vec<Option<Instant>> = writes.iter().map(|w| w.1.map(|_| w.0)).collect();
    if let Some(p) = percentiles(delivery(&sent, receipts, watchers).0) {
        rows.push(Row::new("watch", implementation, "from_sent_p99_ms", p.p99));
    }
    rows.push(Row::new("watch", implementation, "missed", missed as f64));
    missed
}

/// Rows `case`/`implementation` p50_ms and p99_ms of `samples` (none for an empty sample).
pub fn latency_rows(rows: &mut Vec<Row>, case: &str, implementation: &str, samples: Vec<f64>) {
    if let Some(p) = percentiles(samples) {
        rows.push(Row::new(case, implementation, "p50_ms", p.p50));
        rows.push(Row::new(case, implementation, "p99_ms", p.p99));
    }
}

pub fn run(options: &Options) -> Result<()> {
    // One build of both: built apart, the crates they share would get different features
    // and be rebuilt each time.
    util::run(util::cargo().args([
        "build",
        "--release",
        "-p",
        "bosun-control",
        "-p",
        "bosun-bench",
    ]))?;
    if cfg!(debug_assertions) {
        return optimized(options);
    }
    let plan = Plan::new(options);
    let bin = util::target_dir().join("release").join("bosun-control");
    let work = util::target_dir().join("bench-work").join("control");
    let _ = std::fs::remove_dir_all(&work);
    std::fs::create_dir_all(&work).with_context(|| format!("creating {}", work.display()))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    let mut rows = Vec::new();
    let mut notes = vec![format!(
        "{} sequential creates then gets per server, interleaved over {} rounds across the three \
         servers (all running; the order rotating each round), raw etcd's create-if-absent \
         transactions and the thinnest API over raw etcd; then per server: {} objects in \
         all ({} clients for the rest), {} lists, {} watchers × {} writes; ConfigMaps of {} bytes \
         of JSON; the bench's clients (a release build) share the machine's {} cpus with the \
         servers",
        plan.latency,
        plan.rounds,
        plan.objects,
        plan.clients,
        plan.lists,
        plan.watchers,
        plan.watch_writes,
        configmap(&object_name(0)).len(),
        std::thread::available_parallelism().map_or(1, |n| n.get()),
    )];
    let measured = measure(&runtime, &plan, &bin, &work, &mut rows, &mut notes);
    drop(runtime);
    let _ = std::fs::remove_dir_all(&work);
    if !rows.is_empty() {
        write_results("control", &rows)?;
        print!("{}", report(&rows, plan.objects));
    }
    for note in notes {
        println!("note: {note}");
    }
    measured
}

/// Runs this bench again from the release build: sub-millisecond latencies taken by an
/// unoptimized client (rustls, hyper, and etcd-client for the floor) would mostly measure it.
fn optimized(options: &Options) -> Result<()> {
    let mut command = Command::new(util::target_dir().join("release").join("bosun-bench"));
    command.arg("control");
    if options.quick {
        command.arg("--quick");
    }
    util::run(&mut command)
}

/// All three servers started on fresh state; their sequential creates and gets interleaved;
/// then the rest of raw etcd's, bosun embedded's and bosun over etcd's measurements, each
/// server stopped once measured.
fn measure(
    runtime: &tokio::runtime::Runtime,
    plan: &Plan,
    bin: &Path,
    work: &Path,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let etcd = Etcd::start(&work.join("etcd-raw"))?;
    let embedded = Control::start(bin, &work.join("embedded"), None)?;
    let bosun_etcd = Etcd::start(&work.join("etcd-bosun"))?;
    let over_etcd = Control::start(bin, &work.join("over-etcd"), Some(&bosun_etcd.endpoint))?;
    // By path, not `current_exe`: the build at the start may have replaced this binary.
    let bench = util::target_dir().join("release").join("bosun-bench");
    let thin = control_thin::start(&bench, &work.join("thin-api"), &etcd.endpoint, &over_etcd)?;
    let log =
        |name: &str, control: &Control| format!("{name}; log:\n{}", control.process.log_tail());
    let (raw, api_embedded, api_over) = runtime.block_on(async {
        let mut raw = control_etcd::Sequential::connect(&etcd.endpoint, Write::Put)
            .await
            .context("raw etcd")?;
        let mut raw_txn = control_etcd::Sequential::connect(&etcd.endpoint, Write::CreateTxn)
            .await
            .context("raw etcd")?;
        let mut api_embedded = control_api::Sequential::connect(&embedded)
            .await
            .with_context(|| log(EMBEDDED, &embedded))?;
        let mut api_over = control_api::Sequential::connect(&over_etcd)
            .await
            .with_context(|| log(OVER_ETCD, &over_etcd))?;
        let mut api_thin = control_api::Sequential::connect(&thin)
            .await
            .with_context(|| log(THIN, &thin))?;
        let mut servers = [
            (ETCD, Sequential::Etcd(&mut raw)),
            (ETCD_TXN, Sequential::Etcd(&mut raw_txn)),
            (THIN, Sequential::Api(&mut api_thin, &thin)),
            (EMBEDDED, Sequential::Api(&mut api_embedded, &embedded)),
            (OVER_ETCD, Sequential::Api(&mut api_over, &over_etcd)),
        ];
        control_seq::measure(&mut servers, plan, rows).await?;
        anyhow::Ok((raw, api_embedded, api_over))
    })?;
    drop(thin);
    runtime
        .block_on(control_etcd::measure_rest(raw, plan, rows))
        .context("raw etcd")?;
    // For scale: etcd's own RSS holding the same objects (never part of bosun's), after its
    // range reads.
    let rss = super::agent_daemon::status_field(etcd.process.pid, "VmRSS")?;
    rows.push(Row::new("rss", ETCD, "mb", rss / 1024.0));
    drop(etcd);
    runtime
        .block_on(control_api::measure_rest(
            &embedded,
            api_embedded,
            plan,
            EMBEDDED,
            rows,
            notes,
        ))
        .with_context(|| log(EMBEDDED, &embedded))?;
    drop(embedded);
    runtime
        .block_on(control_api::measure_rest(
            &over_etcd, api_over, plan, OVER_ETCD, rows, notes,
        ))
        .with_context(|| log(OVER_ETCD, &over_etcd))?;
    Ok(())
}

fn find(rows: &[Row], case: &str, implementation: &str, metric: &str) -> Option<f64> {
    rows.iter()
        .find(|r| r.case == case && r.implementation == implementation && r.metric == metric)
        .map(|r| r.value)
}

/// The ratio lines (each bosun over raw etcd) and the goal lines.
pub fn report(rows: &[Row], objects: usize) -> String {
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let mut out = String::new();
    let compared = [
        ("create", "p50_ms"),
        ("create", "p99_ms"),
        ("get", "p50_ms"),
        ("get", "p99_ms"),
        ("create_concurrent", "per_s"),
        ("list", "ms"),
        ("watch", "p99_ms"),
    ];
    for (case, metric) in compared {
        let Some(floor) = find(rows, case, ETCD, metric) else {
            continue;
        };
        for bosun in [THIN, EMBEDDED, OVER_ETCD] {
            if let Some(value) = find(rows, case, bosun, metric) {
                let _ = writeln!(
                    out,
                    "ratio {case} {metric}: {bosun} {value:.3} / raw etcd {floor:.3} = {:.2}×",
                    value / floor
                );
            }
        }
    }
    if let Some(p99) = find(rows, "create", EMBEDDED, "p99_ms") {
        let _ = writeln!(
            out,
            "goal embedded create p99: {p99:.2} ms (< {CREATE_P99_GOAL_MS} ms): {}",
            verdict(p99 < CREATE_P99_GOAL_MS)
        );
    }
    for (case, peer) in [("create", "put"), ("get", "get")] {
        let bosun = find(rows, case, OVER_ETCD, "p99_ms");
        let floor = find(rows, case, ETCD, "p99_ms");
        if let (Some(bosun), Some(floor)) = (bosun, floor) {
            let ratio = bosun / floor;
            let _ = writeln!(
                out,
                "goal over etcd {case} p99: {bosun:.2} ms / raw etcd {peer} {floor:.2} ms = \
                 {ratio:.2}× (≤ {ETCD_RATIO_GOAL}×): {}",
                verdict(ratio <= ETCD_RATIO_GOAL)
            );
        }
    }
    let txn = find(rows, "create", ETCD_TXN, "p99_ms");
    let put = find(rows, "create", ETCD, "p99_ms");
    let over = find(rows, "create", OVER_ETCD, "p99_ms");
    if let (Some(txn), Some(put), Some(over)) = (txn, put, over) {
        let _ = writeln!(
            out,
            "reference: raw etcd create-if-absent txn p99 {txn:.2} ms = {:.2}× raw etcd put; \
             bosun over etcd create p99 = {:.2}× the txn",
            txn / put,
            over / txn
        );
    }
    let thin = find(rows, "create", THIN, "p99_ms");
    if let (Some(thin), Some(put), Some(over)) = (thin, put, over) {
        let _ = writeln!(
            out,
            "reference: the thinnest API over etcd (no API logic) create p99 {thin:.2} ms = \
             {:.2}× raw etcd put; bosun over etcd create p99 = {:.2}× the thin API",
            thin / put,
            over / thin
        );
    }
    for bosun in [EMBEDDED, OVER_ETCD] {
        if let Some(rss) = find(rows, "rss", bosun, "mb") {
            let _ = writeln!(
                out,
                "goal {bosun} RSS with {objects} objects: {rss:.1} MB (< {RSS_GOAL_MB} MB): {}",
                verdict(rss < RSS_GOAL_MB)
            );
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configmaps_are_about_a_kib_of_json_naming_the_object() {
        let body = configmap(&object_name(42));
        assert!((900..1200).contains(&body.len()), "{}", body.len());
        let value: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(value["metadata"]["name"], "cm-000042");
        assert_eq!(value["kind"], "ConfigMap");
    }

    #[test]
    fn watched_index_reads_added_watch_objects_only() {
        let added = br#"{"type":"ADDED","object":{"kind":"ConfigMap","metadata":{"name":"watch-000042","namespace":"default"}}}"#;
        assert_eq!(watched_index(added), Some(42));
        let modified = br#"{"type":"MODIFIED","object":{"metadata":{"name":"watch-000042"}}}"#;
        assert_eq!(watched_index(modified), None);
        let other = br#"{"type":"ADDED","object":{"metadata":{"name":"cm-000001"}}}"#;
        assert_eq!(watched_index(other), None);
    }

    #[test]
    fn delivery_counts_each_pair_once_and_the_missing_ones() {
        let t0 = Instant::now();
        let ms = |n: u64| t0 + Duration::from_millis(n);
        let answered = [Some(ms(10)), Some(ms(20)), None];
        let receipts = [
            (0, 0, ms(12)),
            (1, 0, ms(15)),
            (0, 1, ms(19)), // before the writer saw its answer: 0
            (0, 1, ms(40)), // a duplicate
            (1, 2, ms(50)), // a write that never answered
        ];
        let (mut samples, missed) = delivery(&answered, &receipts, 2);
        samples.sort_by(f64::total_cmp);
        assert_eq!(samples, [0.0, 2.0, 5.0]);
        assert_eq!(missed, 1, "watcher 1 never got write 1");
    }

    #[test]
    fn report_prints_ratios_and_goal_verdicts() {
        let rows = [
            Row::new("create", EMBEDDED, "p99_ms", 3.0),
            Row::new("create", OVER_ETCD, "p99_ms", 6.0),
            Row::new("create", ETCD, "p99_ms", 5.0),
            Row::new("create", ETCD_TXN, "p99_ms", 4.0),
            Row::new("create", THIN, "p99_ms", 4.8),
            Row::new("get", OVER_ETCD, "p99_ms", 2.0),
            Row::new("get", ETCD, "p99_ms", 0.5),
            Row::new("rss", EMBEDDED, "mb", 150.0),
        ];
        let report = report(&rows, 10_000);
        assert!(
            report.contains("ratio create p99_ms: bosun-etcd 6.000 / raw etcd 5.000 = 1.20×"),
            "{report}"
        );
        assert!(
            report.contains("goal embedded create p99: 3.00 ms (< 5 ms): met"),
            "{report}"
        );
        assert!(
            report.contains(
                "goal over etcd create p99: 6.00 ms / raw etcd put 5.00 ms = 1.20× (≤ 1.5×): met"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "goal over etcd get p99: 2.00 ms / raw etcd get 0.50 ms = 4.00× (≤ 1.5×): MISSED"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "reference: raw etcd create-if-absent txn p99 4.00 ms = 0.80× raw etcd put; \
                 bosun over etcd create p99 = 1.50× the txn"
            ),
            "{report}"
        );
        assert!(
            report.contains(
                "reference: the thinnest API over etcd (no API logic) create p99 4.80 ms = \
                 0.96× raw etcd put; bosun over etcd create p99 = 1.25× the thin API"
            ),
            "{report}"
        );
        assert!(
            report.contains("ratio create p99_ms: thin-api-etcd 4.800 / raw etcd 5.000 = 0.96×"),
            "{report}"
        );
        assert!(
            !report.contains("raw etcd 4.000"),
            "the reference is never the floor: {report}"
        );
        assert!(
            report.contains(
                "goal bosun-embedded RSS with 10000 objects: 150.0 MB (< 100 MB): MISSED"
            ),
            "{report}"
        );
    }

    #[test]
    fn quick_plans_are_small_and_full_ones_match_the_issue() {
        let quick = Plan::new(&Options {
            quick: true,
            ..Options::default()
        });
        assert!(quick.objects <= 1000 && quick.latency < quick.objects);
        assert!(quick.rounds >= 3 && quick.latency >= quick.rounds);
        let full = Plan::new(&Options::default());
        assert_eq!(
            (full.objects, full.clients, full.watchers),
            (10_000, 16, 100)
        );
    }
}
