//! The control benchmark's floor: raw etcd puts, gets, a range read and watches of the same
//! ConfigMap payloads under kube-apiserver's key layout, through the `etcd-client` crate —
//! what any API over etcd costs at least. The sequential puts and gets ([`Sequential`]) take
//! turns with the two bosun servers' ([`super::control_seq`]), as do, for reference, the same
//! creates sent as create-if-absent transactions ([`Write::CreateTxn`]); the rest
//! ([`measure_rest`]) runs on its own.

use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use etcd_client::{
    Client, Compare, CompareOp, ConnectOptions, GetOptions, KvClient, Txn, TxnOp, WatchOptions,
};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::{sleep, timeout, timeout_at};

use super::control::{
    configmap, latency_rows, object_name, watch_name, watch_rows, Plan, Receipt, ETCD,
};
use super::Row;

const PREFIX: &str = "/registry/configmaps/default/";
/// Where [`Write::CreateTxn`] creates its objects: outside [`PREFIX`], so the floor's range
/// reads and watches never see them.
const TXN_PREFIX: &str = "/registry/configmaps/txn-reference/";
const REQUEST_LIMIT: Duration = Duration::from_secs(30);
const DELIVERY_LIMIT: Duration = Duration::from_secs(30);
/// A range of every object is larger than gRPC's default 4 MiB.
const MAX_ANSWER_BYTES: usize = i32::MAX as usize;

fn ms(since: Instant) -> f64 {
    since.elapsed().as_secs_f64() * 1e3
}

fn key(name: &str) -> String {
    format!("{PREFIX}{name}")
}

async fn connect(endpoint: &str) -> Result<Client> {
    let options = ConnectOptions::new()
        .with_timeout(REQUEST_LIMIT)
        .with_connect_timeout(Duration::from_secs(5));
    Client::connect([endpoint], Some(options))
        .await
        .with_context(|| format!("connecting to etcd at {endpoint}"))
}

/// How the floor's sequential client writes an object.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Write {
    /// A plain put under [`PREFIX`]: the floor.
    Put,
    /// A transaction putting the key only if it does not exist (`create_revision == 0`), under
    /// [`TXN_PREFIX`]: the least any create that must not overwrite costs etcd — what
    /// kube-apiserver and bosun send for a create. A reference beside the floor, not the floor.
    CreateTxn,
}

/// The floor's sequential client: puts (or create transactions) and gets of single objects,
/// one at a time, timed.
pub struct Sequential {
    client: Client,
    kv: KvClient,
    write: Write,
}

impl Sequential {
    /// Connects to raw etcd at `endpoint` and warms the connection up.
    pub async fn connect(endpoint: &str, write: Write) -> Result<Self> {
        let client = connect(endpoint).await?;
        let mut kv = client
            .kv_client()
            .max_decoding_message_size(MAX_ANSWER_BYTES);
        for _ in 0..20 {
            kv.get(key("warm-up"), None).await?;
        }
        Ok(Self { client, kv, write })
    }

    fn key(&self, name: &str) -> String {
        match self.write {
            Write::Put => key(name),
            Write::CreateTxn => format!("{TXN_PREFIX}{name}"),
        }
    }

    /// Writes object `i`: its latency in ms.
    pub async fn create(&mut self, i: usize) -> Result<f64> {
        let name = object_name(i);
        let key = self.key(&name);
        let value = configmap(&name).to_vec();
        let start = Instant::now();
        match self.write {
            Write::Put => {
                self.kv.put(key, value, None).await?;
            }
            Write::CreateTxn => {
                let txn = Txn::new()
                    .when([Compare::create_revision(key.clone(), CompareOp::Equal, 0)])
                    .and_then([TxnOp::put(key, value, None)]);
                if !self.kv.txn(txn).await?.succeeded() {
                    bail!("{name} was there before its create");
                }
            }
        }
        Ok(ms(start))
    }

    /// Gets object `i`, which must be there: its latency in ms.
    pub async fn get(&mut self, i: usize) -> Result<f64> {
        let key = self.key(&object_name(i));
        let start = Instant::now();
        let answer = self.kv.get(key, None).await?;
        let latency = ms(start);
        if answer.kvs().is_empty() {
            bail!("etcd lost {}", object_name(i));
        }
        Ok(latency)
    }
}

/// The rest of raw etcd's measurements, as rows of [`ETCD`], once `sequential` has put
/// objects `0..plan.latency`: concurrent puts up to [`Plan::objects`], range reads of them
/// all, watches.
pub async fn measure_rest(sequential: Sequential, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let Sequential { client, mut kv, .. } = sequential;
    let (first, end, clients) = (plan.latency, plan.objects, plan.clients);
    let start = Instant::now();
    let mut tasks = JoinSet::new();
    for client in 0..clients {
        let mut kv = kv.clone();
        tasks.spawn(async move {
            let mut samples = Vec::new();
            for i in (first + client..end).step_by(clients) {
                let name = object_name(i);
                let value = configmap(&name).to_vec();
                let sent = Instant::now();
                kv.put(key(&name), value, None).await?;
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
    rows.push(Row::new(
        "create_concurrent",
        ETCD,
        "per_s",
        samples.len() as f64 / seconds,
    ));
    latency_rows(rows, "create_concurrent", ETCD, samples);

    let mut lists = Vec::with_capacity(plan.lists);
    let mut items = 0;
    for _ in 0..plan.lists {
        let start = Instant::now();
        let answer = kv
            .get(PREFIX, Some(GetOptions::new().with_prefix()))
            .await?;
        lists.push(ms(start));
        items = answer.kvs().len();
    }
    if items < plan.objects {
        bail!("the range held {items} keys, not {}", plan.objects);
    }
    if let Some(p) = super::percentiles(lists) {
        rows.push(Row::new("list", ETCD, "ms", p.p50));
    }
    rows.push(Row::new("list", ETCD, "items", items as f64));
    watch(&client, plan, rows).await
}

/// [`Plan::watchers`] etcd watches (each its own stream) of the watched writes' prefix, then
/// [`Plan::watch_writes`] puts, one at a time: rows of the delivery latency.
async fn watch(client: &Client, plan: &Plan, rows: &mut Vec<Row>) -> Result<()> {
    let prefix = key("watch-");
    let (receipts_tx, mut receipts_rx) = mpsc::unbounded_channel::<Receipt>();
    let mut streams = Vec::with_capacity(plan.watchers);
    for _ in 0..plan.watchers {
        let mut watch = client.watch_client();
        let options = WatchOptions::new().with_prefix();
        let start = async {
            let mut stream = watch.watch(prefix.clone(), Some(options)).await?;
            // The first answer says the watch exists: writes after it are seen.
            match stream.message().await? {
                Some(answer) if answer.created() => anyhow::Ok(stream),
                other => bail!("etcd did not create the watch: {other:?}"),
            }
        };
        let stream = timeout(REQUEST_LIMIT, start)
            .await
            .context("starting an etcd watch timed out")??;
        streams.push(stream);
    }
    let mut watchers = JoinSet::new();
    for (watcher, mut stream) in streams.into_iter().enumerate() {
        let (receipts, prefix, writes) = (receipts_tx.clone(), prefix.clone(), plan.watch_writes);
        watchers.spawn(async move {
            let mut got = 0;
            while got < writes {
                let Some(message) = stream.message().await? else {
                    break;
                };
                let at = Instant::now();
                for event in message.events() {
                    let index = event
                        .kv()
                        .and_then(|kv| kv.key_str().ok())
                        .and_then(|k| k.strip_prefix(&prefix))
                        .and_then(|n| n.parse::<usize>().ok());
                    if let Some(index) = index {
                        got += 1;
                        let _ = receipts.send((watcher, index, at));
                    }
                }
            }
            anyhow::Ok(())
        });
    }
    drop(receipts_tx);
    sleep(Duration::from_millis(200)).await;
    let mut kv = client.kv_client();
    let mut writes = Vec::with_capacity(plan.watch_writes);
    for i in 0..plan.watch_writes {
        let name = watch_name(i);
        let value = configmap(&name).to_vec();
        let sent = Instant::now();
        kv.put(key(&name), value, None).await?;
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
    watch_rows(rows, ETCD, &writes, &receipts, plan.watchers);
    Ok(())
}
