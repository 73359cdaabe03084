//! The control benchmark's measurements of `bosun-control` through its API, as a client
//! drives it: ConfigMaps in `default` created, read, created by concurrent clients, listed in
//! one JSON request and watched, each request on an HTTPS keep-alive connection
//! ([`super::control_client`]); the process's RSS read from /proc. The sequential creates and
//! gets ([`Sequential`]) take turns with the other servers' ([`super::control_seq`]); the rest
//! ([`measure_rest`]) runs on its own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde::de::IgnoredAny;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, timeout_at};

use super::agent_daemon::status_field;
use super::control::{
    configmap, latency_rows, object_name, watch_name, watch_rows, watched_index, Plan, Receipt,
};
use super::control_client::{Conn, Tls, REQUEST_LIMIT};
use super::control_procs::Control;
use super::Row;

const COLLECTION: &str = "/api/v1/namespaces/default/configmaps";
/// How long receipts of watched writes are awaited after the last write.
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

/// A sequential client of the API: single ConfigMaps created and read one at a time, timed,
/// on one keep-alive connection.
pub struct Sequential {
    tls: Tls,
    conn: Conn,
}

impl Sequential {
    /// Connects to `control` and warms up the connection, the handler and the store's first
    /// reads.
    pub async fn connect(control: &Control) -> Result<Self> {
        let tls = Tls::new(&control.kubeconfig)?;
        let mut conn = tls.connect().await?;
        for _ in 0..20 {
            conn.expect(
                Method::GET,
                &format!("{COLLECTION}?limit=1"),
                None,
                StatusCode::OK,
            )
            .await?;
        }
        Ok(Self { tls, conn })
    }

    /// Creates object `i`: its latency in ms.
    pub async fn create(&mut self, i: usize) -> Result<f64> {
        let body = configmap(&object_name(i));
        let start = Instant::now();
        self.conn
            .expect(Method::POST, COLLECTION, Some(body), StatusCode::CREATED)
            .await?;
        Ok(ms(start))
    }

    /// Gets object `i`: its latency in ms.
    pub async fn get(&mut self, i: usize) -> Result<f64> {
        let path = format!("{COLLECTION}/{}", object_name(i));
        let start = Instant::now();
        self.conn
            .expect(Method::GET, &path, None, StatusCode::OK)
            .await?;
        Ok(ms(start))
    }
}

/// The rest of the measurements of the API of `control`, as rows of `implementation`, once
/// `sequential` has created objects `0..plan.latency`: concurrent creates up to
/// [`Plan::objects`], RSS, lists, watches.
pub async fn measure_rest(
    control: &Control,
    sequential: Sequential,
    plan: &Plan,
    implementation: &str,
    rows: &mut Vec<Row>,
    notes: &mut Vec<String>,
) -> Result<()> {
    let Sequential { tls, mut conn } = sequential;
    let (per_s, samples) = concurrent_creates(&tls, plan).await?;
    rows.push(Row::new(
        "create_concurrent",
        implementation,
        "per_s",
        per_s,
    ));
    latency_rows(rows, "create_concurrent", implementation, samples);

    // At rest with every object stored: the lists below allocate their answers.
    sleep(Duration::from_secs(1)).await;
    let pid = control.process.pid;
    let rss = status_field(pid, "VmRSS").context("the control process's VmRSS")?;
    rows.push(Row::new("rss", implementation, "mb", rss / 1024.0));

    let mut lists = Vec::with_capacity(plan.lists);
    let mut items = 0;
    for _ in 0..plan.lists {
        let start = Instant::now();
        let body = conn
            .expect(Method::GET, COLLECTION, None, StatusCode::OK)
            .await?;
        lists.push(ms(start));
        items = count_items(&body)?;
    }
    if items < plan.objects {
        bail!("the list held {items} ConfigMaps, not {}", plan.objects);
    }
    if let Some(p) = super::percentiles(lists) {
        rows.push(Row::new("list", implementation, "ms", p.p50));
    }
    rows.push(Row::new("list", implementation, "items", items as f64));

    let rss = status_field(pid, "VmRSS").context("the control process's VmRSS")?;
    let peak = status_field(pid, "VmHWM").context("the control process's VmHWM")?;
    rows.push(Row::new(
        "rss",
        implementation,
        "after_lists_mb",
        rss / 1024.0,
    ));
    rows.push(Row::new("rss", implementation, "peak_mb", peak / 1024.0));

    let missed = watch(&tls, &mut conn, plan, implementation, rows).await?;
    if missed > 0 {
        notes.push(format!(
            "{implementation}: {missed} watch events never arrived within {DELIVERY_LIMIT:?}"
        ));
    }
    control.process.check()
}

/// Creates the objects from [`Plan::latency`] to [`Plan::objects`] from [`Plan::clients`]
/// connections at once: creates per second over the whole batch, and each create's latency.
async fn concurrent_creates(tls: &Tls, plan: &Plan) -> Result<(f64, Vec<f64>)> {
    let mut conns = Vec::with_capacity(plan.clients);
    for _ in 0..plan.clients {
        conns.push(tls.connect().await?);
    }
    let (first, end, clients) = (plan.latency, plan.objects, plan.clients);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for (client, mut conn) in conns.into_iter().enumerate() {
        tasks.spawn(async move {
            let mut samples = Vec::new();
            for i in (first + client..end).step_by(clients) {
                let body = configmap(&object_name(i));
                let sent = Instant::now();
                conn.expect(Method::POST, COLLECTION, Some(body), StatusCode::CREATED)
                    .await?;
                samples.push(ms(sent));
            }
            anyhow::Ok(samples)
        });
    }
    let mut samples = Vec::with_capacity(end - first);
    while let Some(result) = tasks.join_next().await {
        samples.extend(result??);
    }
    let seconds = start.elapsed().as_secs_f64();
    Ok((samples.len() as f64 / seconds, samples))
}

/// The number of items of a JSON list.
fn count_items(body: &[u8]) -> Result<usize> {
    #[derive(serde::Deserialize)]
    struct List {
        items: Option<Vec<IgnoredAny>>,
    }
    let list: List = serde_json::from_slice(body).context("the list's JSON")?;
    Ok(list.items.map_or(0, |items| items.len()))
}

/// [`Plan::watchers`] watches of the collection from its current resourceVersion, then
/// [`Plan::watch_writes`] creates, one at a time: rows of the delivery latency; returns how
/// many events never arrived.
async fn watch(
    tls: &Tls,
    conn: &mut Conn,
    plan: &Plan,
    implementation: &str,
    rows: &mut Vec<Row>,
) -> Result<usize> {
    let body = conn
        .expect(
            Method::GET,
            &format!("{COLLECTION}?limit=1"),
            None,
            StatusCode::OK,
        )
        .await?;
    let list: serde_json::Value = serde_json::from_slice(&body)?;
    let revision = list["metadata"]["resourceVersion"]
        .as_str()
        .context("the list has no resourceVersion")?
        .to_owned();
    let path = format!("{COLLECTION}?watch=true&resourceVersion={revision}&timeoutSeconds=600");
    let (receipts_tx, mut receipts_rx) = mpsc::unbounded_channel::<Receipt>();
    let (ready_tx, mut ready_rx) = mpsc::channel::<()>(plan.watchers);
    let mut watchers = JoinSet::new();
    for watcher in 0..plan.watchers {
        let (tls, path, receipts, ready) = (
            tls.clone(),
            path.clone(),
            receipts_tx.clone(),
            ready_tx.clone(),
        );
        let writes = plan.watch_writes;
        watchers.spawn(async move {
            let mut conn = tls.connect().await?;
            let response = timeout(REQUEST_LIMIT, conn.open(Method::GET, &path, None))
                .await
                .context("starting a watch timed out")??;
            if response.status() != StatusCode::OK {
                bail!("a watch answered {}", response.status());
            }
            let _ = ready.send(()).await;
            let mut body = response.into_body();
            let (mut buffer, mut got) = (Vec::new(), 0);
            while got < writes {
                let Some(frame) = body.frame().await else {
                    break;
                };
                let at = Instant::now();
                let Ok(data) = frame?.into_data() else {
                    continue;
                };
                buffer.extend_from_slice(&data);
                while let Some(newline) = buffer.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = buffer.drain(..=newline).collect();
                    if let Some(index) = watched_index(&line) {
                        got += 1;
                        let _ = receipts.send((watcher, index, at));
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    drop((receipts_tx, ready_tx));
    for _ in 0..plan.watchers {
        let ready = timeout(REQUEST_LIMIT, ready_rx.recv()).await;
        if !matches!(ready, Ok(Some(()))) {
            watchers.abort_all();
            while let Some(result) = watchers.join_next().await {
                if let Ok(Err(error)) = result {
                    return Err(error.context("a watcher failed"));
                }
            }
            bail!("the watchers did not all start within {REQUEST_LIMIT:?}");
        }
    }
    // The answer's headers come as the watch starts; let the last ones settle.
    sleep(Duration::from_millis(200)).await;
    let mut writes = Vec::with_capacity(plan.watch_writes);
    for i in 0..plan.watch_writes {
        let body = configmap(&watch_name(i));
        let sent = Instant::now();
        conn.expect(Method::POST, COLLECTION, Some(body), StatusCode::CREATED)
            .await?;
        writes.push((sent, Some(Instant::now())));
        sleep(plan.watch_gap).await;
    }
    let deadline = tokio::time::Instant::now() + DELIVERY_LIMIT;
    let mut receipts = Vec::with_capacity(plan.watchers * plan.watch_writes);
    while receipts.len() < plan.watchers * plan.watch_writes {
        match timeout_at(deadline, receipts_rx.recv()).await {
            Ok(Some(receipt)) => receipts.push(receipt),
            _ => break,
        }
    }
    watchers.abort_all();
    let missed = watch_rows(rows, implementation, &writes, &receipts, plan.watchers);
    Ok(missed)
}
