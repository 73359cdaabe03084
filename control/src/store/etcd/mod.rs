//! The etcd v3 backend: the [`Store`] trait mapped onto an etcd cluster through the
//! `etcd-client` crate, so the API runs on several machines the way kube-apiserver does.
//!
//! Every key lives under a configurable root prefix (`--etcd-prefix`); revisions are etcd's.
//! Create is a transaction comparing `create_revision == 0`; update and delete compare
//! `mod_revision` (and `create_revision > 0`, since a missing key's `mod_revision` compares as
//! 0) and read the current value in the same transaction when the comparison fails, so a
//! conflict names the current revision. Lists range over `[prefix, prefix_end)` at one
//! revision; watches (in `watch.rs`) start at `after_revision + 1` with previous values.
//! etcd reports its compacted revision only to a watch, so `Error::Compacted` carries the
//! revision a probe watch learns (see `watch::compacted_revision`); a watch from revision 0
//! on a compacted cluster cannot be refused up front and ends with `Compacted` instead.
//!
//! Single requests go over one HTTP/2 connection of their own (`direct.rs`); the watch over
//! `etcd-client`'s balanced channel. Every request carries etcd's `require-leader` flag and a deadline, so a cluster without
//! quorum fails requests quickly with an error naming the endpoints instead of hanging.

mod direct;
mod health;
mod hub;
mod watch;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use bytes::Bytes;
use etcd_client::{
    Client, CompactionOptions, Compare, CompareOp, ConnectOptions, DeleteOptions, GetOptions,
    KvClient, PutOptions, Txn, TxnOp, TxnOpResponse, TxnResponse, WatchClient,
};

use super::input::{check_revision, prefix_end, Limits};
use super::watch_keys::WatchKeys;
use super::{Deleted, Error, KeyValue, ListOptions, ListPage, Op, Result, Store, WatchStream};

/// Where the etcd cluster is and how long to wait for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Client URLs of the members (`http://host:2379`); requests go to any of them.
    pub endpoints: Vec<String>,
    /// Prepended to every key (may be empty).
    pub prefix: String,
    pub limits: Limits,
    /// Longest wait for one request before it fails with [`Error::EtcdUnavailable`].
    pub request_timeout: Duration,
    /// Longest wait for a connection to a member.
    pub connect_timeout: Duration,
}

impl EtcdConfig {
    pub fn new(endpoints: Vec<String>, prefix: impl Into<String>) -> EtcdConfig {
        EtcdConfig {
            endpoints,
            prefix: prefix.into(),
            limits: Limits::default(),
            request_timeout: Duration::from_secs(10),
            connect_timeout: Duration::from_secs(3),
        }
    }
}

/// The largest answer accepted from etcd (gRPC's default is 4 MiB, less than a big list;
/// kube-apiserver's etcd client accepts up to 2 GiB too).
const MAX_ANSWER_BYTES: usize = i32::MAX as usize;

/// A store on an etcd v3 cluster.
#[derive(Clone)]
pub struct EtcdStore {
    kv: KvClient,
    watcher: WatchClient,
    /// Holds the endpoint set of the balanced channel the watcher takes (`kv` takes the
    /// direct one of `direct.rs`).
    _client: Client,
    /// The one etcd watch the store's watches share.
    hub: Arc<hub::HubSlot>,
    config: EtcdConfig,
    /// The endpoints as errors name them.
    endpoints: String,
}

impl std::fmt::Debug for EtcdStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EtcdStore")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

/// What failed in one etcd call, before it is named with the operation and key.
enum Failure {
    Etcd(etcd_client::Error),
    Timeout,
}

impl From<etcd_client::Error> for Failure {
    fn from(error: etcd_client::Error) -> Failure {
        Failure::Etcd(error)
    }
}

/// The pause before sending again a request that could not be sent.
const RESEND_PAUSE: Duration = Duration::from_millis(20);

/// The request failed before reaching etcd: no connection to the member could be made.
fn never_sent(error: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return matches!(error, etcd_client::Error::TransportError(_));
    };
    status.code() == tonic::Code::Unavailable && status.message().contains("connect error")
}

/// The client's own deadline (the same request timeout) expired.
fn timed_out(error: &etcd_client::Error) -> bool {
    let etcd_client::Error::GRpcStatus(status) = error else {
        return false;
    };
    status.code() == tonic::Code::Cancelled && status.message() == "Timeout expired"
}

/// What etcd's refusal of a revision says.
#[derive(PartialEq, Eq)]
enum RevisionRefusal {
    Compacted,
    Future,
}

fn revision_refusal(failure: &Failure) -> Option<RevisionRefusal> {
    let Failure::Etcd(etcd_client::Error::GRpcStatus(status)) = failure else {
        return None;
    };
    let message = status.message();
    if message.contains("required revision has been compacted") {
        Some(RevisionRefusal::Compacted)
    } else if message.contains("required revision is a future revision") {
        Some(RevisionRefusal::Future)
    } else {
        None
    }
}

/// A store key-value from an etcd one, the store's root prefix `root` taken off its key.
fn store_kv(root: &str, kv: &etcd_client::KeyValue) -> KeyValue {
    let key = kv.key();
    let key = key.strip_prefix(root.as_bytes()).unwrap_or(key);
    KeyValue {
        key: String::from_utf8_lossy(key).into_owned(),
        value: Bytes::copy_from_slice(kv.value()),
        create_revision: kv.create_revision(),
        mod_revision: kv.mod_revision(),
    }
}

impl EtcdStore {
    /// Connects to the cluster and checks that it answers.
    pub async fn connect(config: EtcdConfig) -> Result<EtcdStore> {
        let endpoints = config.endpoints.join(",");
        let options = ConnectOptions::new()
            .with_timeout(config.request_timeout)
            .with_connect_timeout(config.connect_timeout)
            .with_keep_alive(Duration::from_secs(10), config.request_timeout)
            .with_require_leader(true);
        let opening = |source| Error::Etcd {
            op: Op::Open,
            key: String::new(),
            endpoints: endpoints.clone(),
            source,
        };
        let client = Client::connect(&config.endpoints, Some(options))
            .await
            .map_err(opening)?;
        // Single requests take the direct channel; the watch, etcd-client's balanced one.
        let direct = direct::DirectChannel::new(&config.endpoints, config.connect_timeout)
            .map_err(|bad| opening(etcd_client::Error::InvalidArgs(bad.to_string())))?;
        let requests = Client::from_channel(
            direct.into_etcd_channel(),
            Some(ConnectOptions::new().with_require_leader(true)),
        )
        .await
        .map_err(opening)?;
        let store = EtcdStore {
            kv: requests
                .kv_client()
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            watcher: client
                .watch_client()
                .max_decoding_message_size(MAX_ANSWER_BYTES),
            _client: client,
            hub: Arc::default(),
            config,
            endpoints,
        };
        // Errors name the prefix, the store's "key" as a whole.
        let prefix = store.config.prefix.clone();
        store
            .header_revision()
            .await
            .map_err(|failure| store.error(Op::Open, &prefix, failure))?;
        store.hub.start(&store).await;
        Ok(store)
    }

    fn error(&self, op: Op, key: &str, failure: Failure) -> Error {
        match failure {
            Failure::Etcd(source) => Error::Etcd {
                op,
                key: key.to_owned(),
                endpoints: self.endpoints.clone(),
                source,
            },
            Failure::Timeout => Error::EtcdUnavailable {
                op,
                key: key.to_owned(),
                endpoints: self.endpoints.clone(),
                waited: self.config.request_timeout,
            },
        }
    }

    /// Runs one etcd call under the request deadline. A request that never left this process
    /// (no connection to the member the balancer picked, e.g. a dead one) is sent again, to
    /// any member, until the deadline.
    async fn call<C, T, F, Fut>(&self, client: &C, mut call: F) -> Result<T, Failure>
    where
        C: Clone,
        F: FnMut(C) -> Fut,
        Fut: std::future::Future<Output = Result<T, etcd_client::Error>>,
    {
        let deadline = tokio::time::Instant::now() + self.config.request_timeout;
        let mut unsent = None;
        loop {
            match tokio::time::timeout_at(deadline, call(client.clone())).await {
                Ok(Ok(value)) => return Ok(value),
                Ok(Err(error)) if never_sent(&error) => unsent = Some(error),
                Ok(Err(error)) if timed_out(&error) => return Err(Failure::Timeout),
                Ok(Err(error)) => return Err(Failure::Etcd(error)),
                Err(_) => return Err(unsent.map_or(Failure::Timeout, Failure::Etcd)),
            }
            if tokio::time::timeout_at(deadline, tokio::time::sleep(RESEND_PAUSE))
                .await
                .is_err()
            {
                return Err(unsent.map_or(Failure::Timeout, Failure::Etcd));
            }
        }
    }

    /// The etcd key of a store key.
    fn full(&self, key: &str) -> Vec<u8> {
        format!("{}{key}", self.config.prefix).into_bytes()
    }

    /// The etcd range `[start, end)` of the store keys starting with `prefix`.
    fn bounds(&self, prefix: &str) -> (Vec<u8>, Vec<u8>) {
        let start = self.full(prefix);
        let end = prefix_end(&format!("{}{prefix}", self.config.prefix))
            .map(String::into_bytes)
            .unwrap_or_else(|| vec![0]); // "\0": every key from `start` on.
        let start = if start.is_empty() { vec![0] } else { start };
        (start, end)
    }

    /// A store key-value from an etcd one (the root prefix removed).
    fn kv(&self, kv: &etcd_client::KeyValue) -> KeyValue {
        store_kv(&self.config.prefix, kv)
    }

    /// The cluster's newest revision, from a read of one key no store key can be.
    async fn header_revision(&self) -> Result<i64, Failure> {
        let probe = self.full("\0");
        let response = self
            .call(&self.kv, |mut client| {
                let probe = probe.clone();
                async move {
                    client
                        .get(probe, Some(GetOptions::new().with_count_only()))
                        .await
                }
            })
            .await?;
        Ok(response.header().map_or(0, |header| header.revision()))
    }

    async fn txn(&self, txn: Txn) -> Result<TxnResponse, Failure> {
        self.call(&self.kv, |mut client| {
            let txn = txn.clone();
            async move { client.txn(txn).await }
        })
        .await
    }

    /// A range read of `[start, options' end)`.
    async fn range(
        &self,
        start: Vec<u8>,
        options: GetOptions,
    ) -> Result<etcd_client::GetResponse, Failure> {
        self.call(&self.kv, |mut client| {
            let (start, options) = (start.clone(), options.clone());
            async move { client.get(start, Some(options)).await }
        })
        .await
    }

    /// The failure of a compare-and-swap: the key is gone, or at another revision.
    fn refused(&self, op: Op, key: &str, expected: i64, response: &TxnResponse) -> Error {
        let current = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Get(get) => get.kvs().first().map(|kv| kv.mod_revision()),
            _ => None,
        });
        match current {
            Some(current) => Error::Conflict {
                op,
                key: key.to_owned(),
                expected,
                current,
            },
            None => Error::NotFound {
                op,
                key: key.to_owned(),
            },
        }
    }

    /// The `Compacted` error for a read at `requested`, with the cluster's compacted revision.
    async fn compacted(&self, op: Op, key: &str, requested: i64) -> Error {
        let compacted_revision = watch::compacted_revision(self).await.max(requested + 1);
        Error::Compacted {
            op,
            key: key.to_owned(),
            requested,
            compacted_revision,
        }
    }

    /// The error for etcd's refusal to read at `requested`.
    async fn revision_error(&self, op: Op, key: &str, requested: i64, failure: Failure) -> Error {
        match revision_refusal(&failure) {
            Some(RevisionRefusal::Compacted) => self.compacted(op, key, requested).await,
            Some(RevisionRefusal::Future) => match self.header_revision().await {
                Ok(current) => Error::FutureRevision {
                    op,
                    key: key.to_owned(),
                    requested,
                    current,
                },
                Err(failure) => self.error(op, key, failure),
            },
            None => self.error(op, key, failure),
        }
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn limits(&self) -> &Limits {
        &self.config.limits
    }

    async fn revision(&self) -> Result<i64> {
        self.header_revision()
            .await
            .map_err(|failure| self.error(Op::Revision, "", failure))
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        self.config.limits.check_key(Op::Get, key)?;
        let response = self
            .range(self.full(key), GetOptions::new())
            .await
            .map_err(|failure| self.error(Op::Get, key, failure))?;
        Ok(response.kvs().first().map(|kv| self.kv(kv)))
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        self.config.limits.check_prefix(Op::List, prefix)?;
        if let Some(revision) = options.revision {
            check_revision(Op::List, prefix, revision)?;
        }
        if options.revision == Some(0) {
            // Revision 0 is before every write (etcd's own first revision is 1); etcd would
            // read 0 as "the newest".
            return Ok(ListPage {
                items: Vec::new(),
                revision: 0,
                more: false,
            });
        }
        let (mut start, end) = self.bounds(prefix);
        if let Some(after) = &options.after_key {
            let mut next = self.full(after);
            next.push(0);
            start = start.max(next);
        }
        let mut get = GetOptions::new().with_range(end);
        if options.limit > 0 {
            get = get.with_limit(i64::try_from(options.limit).unwrap_or(i64::MAX));
        }
        let requested = options.revision.filter(|revision| *revision > 0);
        if let Some(revision) = requested {
            get = get.with_revision(revision);
        }
        let response = match self.range(start, get).await {
            Ok(response) => response,
            Err(failure) => {
                let requested = requested.unwrap_or(0);
                return Err(self
                    .revision_error(Op::List, prefix, requested, failure)
                    .await);
            }
        };
        let header = response.header().map_or(0, |header| header.revision());
        Ok(ListPage {
            items: response.kvs().iter().map(|kv| self.kv(kv)).collect(),
            revision: requested.unwrap_or(header),
            more: response.more(),
        })
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        self.config.limits.check_prefix(Op::Count, prefix)?;
        let (start, end) = self.bounds(prefix);
        let options = GetOptions::new().with_range(end).with_count_only();
        let response = self
            .range(start, options)
            .await
            .map_err(|failure| self.error(Op::Count, prefix, failure))?;
        Ok(u64::try_from(response.count()).unwrap_or(0))
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        self.config.limits.check_write(Op::Create, key, &value)?;
        let full = self.full(key);
        let txn = Txn::new()
            .when([Compare::create_revision(full.clone(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(full, value.to_vec(), None)]);
        let response = self
            .txn(txn)
            .await
            .map_err(|failure| self.error(Op::Create, key, failure))?;
        if !response.succeeded() {
            return Err(Error::AlreadyExists {
                op: Op::Create,
                key: key.to_owned(),
            });
        }
        let revision = response.header().map_or(0, |header| header.revision());
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision: revision,
            mod_revision: revision,
        })
    }

    async fn update(
        &self,
        key: &str,
        value: Bytes,
        expected_mod_revision: i64,
    ) -> Result<KeyValue> {
        self.config.limits.check_write(Op::Update, key, &value)?;
        let full = self.full(key);
        let txn = Txn::new()
            .when([
                Compare::create_revision(full.clone(), CompareOp::Greater, 0),
                Compare::mod_revision(full.clone(), CompareOp::Equal, expected_mod_revision),
            ])
            .and_then([TxnOp::put(
                full.clone(),
                value.to_vec(),
                Some(PutOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self
            .txn(txn)
            .await
            .map_err(|failure| self.error(Op::Update, key, failure))?;
        if !response.succeeded() {
            return Err(self.refused(Op::Update, key, expected_mod_revision, &response));
        }
        let revision = response.header().map_or(0, |header| header.revision());
        let create_revision = response
            .op_responses()
            .into_iter()
            .find_map(|op| match op {
                TxnOpResponse::Put(put) => put.prev_key().map(|kv| kv.create_revision()),
                _ => None,
            })
            .unwrap_or(revision);
        Ok(KeyValue {
            key: key.to_owned(),
            value,
            create_revision,
            mod_revision: revision,
        })
    }

    async fn delete(&self, key: &str, expected_mod_revision: Option<i64>) -> Result<Deleted> {
        self.config.limits.check_key(Op::Delete, key)?;
        let full = self.full(key);
        let mut compares = vec![Compare::create_revision(
            full.clone(),
            CompareOp::Greater,
            0,
        )];
        if let Some(expected) = expected_mod_revision {
            compares.push(Compare::mod_revision(
                full.clone(),
                CompareOp::Equal,
                expected,
            ));
        }
        let txn = Txn::new()
            .when(compares)
            .and_then([TxnOp::delete(
                full.clone(),
                Some(DeleteOptions::new().with_prev_key()),
            )])
            .or_else([TxnOp::get(full, None)]);
        let response = self
            .txn(txn)
            .await
            .map_err(|failure| self.error(Op::Delete, key, failure))?;
        if !response.succeeded() {
            let expected = expected_mod_revision.unwrap_or(0);
            return Err(self.refused(Op::Delete, key, expected, &response));
        }
        let revision = response.header().map_or(0, |header| header.revision());
        let prev = response.op_responses().into_iter().find_map(|op| match op {
            TxnOpResponse::Delete(delete) => delete.prev_kvs().first().map(|kv| self.kv(kv)),
            _ => None,
        });
        match prev {
            Some(prev) => Ok(Deleted { prev, revision }),
            // Deleted without a previous value: only if someone else's delete won the race.
            None => Err(Error::NotFound {
                op: Op::Delete,
                key: key.to_owned(),
            }),
        }
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        watch::watch(self, &WatchKeys::under(prefix), after_revision).await
    }

    async fn watch_named(
        &self,
        prefix: &str,
        name: &str,
        after_revision: i64,
    ) -> Result<WatchStream> {
        watch::watch(self, &WatchKeys::named(prefix, name), after_revision).await
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        check_revision(Op::Compact, "", revision)?;
        let current = self
            .header_revision()
            .await
            .map_err(|failure| self.error(Op::Compact, "", failure))?;
        if revision > current {
            return Err(Error::FutureRevision {
                op: Op::Compact,
                key: String::new(),
                requested: revision,
                current,
            });
        }
        if revision == 0 {
            return Ok(watch::compacted_revision(self).await);
        }
        let compact = |mut client: KvClient| async move {
            let options = CompactionOptions::new().with_physical();
            client.compact(revision, Some(options)).await
        };
        let compacted = match self.call(&self.kv, compact).await {
            Ok(_) => revision,
            Err(failure) if revision_refusal(&failure) == Some(RevisionRefusal::Compacted) => {
                // Already compacted at or past `revision`.
                watch::compacted_revision(self).await.max(revision)
            }
            Err(failure) => return Err(self.error(Op::Compact, "", failure)),
        };
        self.hub.compacted(compacted).await;
        Ok(compacted)
    }

    async fn members_health(&self) -> Vec<super::MemberHealth> {
        health::members(&self.config.endpoints, self.config.connect_timeout).await
    }
}
