//! A store that times every call of the store it wraps, for kube-apiserver's storage metrics
//! (served at `/metrics` by `api::metrics_scrape`, under kube's names whichever backend is
//! used): `etcd_request_duration_seconds` and `etcd_requests_total` by operation (get, list,
//! count, create, update, delete, watch — until established —, compact) and type (the
//! resource, `deployments.apps`, from the key; `""` for a prefix wider than one resource),
//! and `etcd_request_errors_total`. A refusal the store answers by design (not found, already
//! exists, a stale revision) is no error.

use std::sync::{Arc, OnceLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use super::{
    Deleted, Error, KeyValue, Limits, ListOptions, ListPage, MemberHealth, Result, Store,
    WatchStream,
};

/// kube-apiserver's buckets of `etcd_request_duration_seconds`.
const BUCKETS: [f64; 23] = [
    0.005, 0.025, 0.05, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.25, 1.5, 2.0, 3.0, 4.0, 5.0, 6.0, 8.0,
    10.0, 15.0, 20.0, 30.0, 45.0, 60.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct Call {
    operation: &'static str,
    r#type: String,
}

/// The storage metrics of this process.
pub struct StorageMetrics {
    registry: Registry,
    durations: Family<Call, Histogram, fn() -> Histogram>,
    totals: Family<Call, Counter>,
    errors: Family<Call, Counter>,
}

impl StorageMetrics {
    fn new() -> StorageMetrics {
        let mut registry = Registry::default();
        let durations = Family::<Call, Histogram, fn() -> Histogram>::new_with_constructor(|| {
            Histogram::new(BUCKETS)
        });
        let totals = Family::<Call, Counter>::default();
        let errors = Family::<Call, Counter>::default();
        registry.register(
            "etcd_request_duration_seconds",
            "Etcd request latency in seconds for each operation and object type",
            durations.clone(),
        );
        registry.register(
            "etcd_requests",
            "Etcd request counts for each operation and object type",
            totals.clone(),
        );
        registry.register(
            "etcd_request_errors",
            "Etcd failed request counts for each operation and object type",
            errors.clone(),
        );
        StorageMetrics {
            registry,
            durations,
            totals,
            errors,
        }
    }

    /// The metrics in the Prometheus text format (version 0.0.4), into `out`.
    pub fn encode(&self, out: &mut String) {
        if let Err(error) =
            prometheus_client::encoding::prometheus_text::encode(out, &self.registry)
        {
            tracing::warn!(%error, "encoding the storage metrics");
        }
    }

    fn record<T>(&self, operation: &'static str, key: &str, started: Instant, result: &Result<T>) {
        let call = Call {
            operation,
            r#type: resource_of(key),
        };
        self.durations
            .get_or_create(&call)
            .observe(started.elapsed().as_secs_f64());
        if let Err(error) = result {
            if !matches!(
                error,
                Error::NotFound { .. } | Error::AlreadyExists { .. } | Error::Conflict { .. }
            ) {
                self.errors.get_or_create(&call).inc();
            }
        }
        self.totals.get_or_create(&call).inc();
    }
}

/// The process's storage metrics.
pub fn storage_metrics() -> &'static StorageMetrics {
    static METRICS: OnceLock<StorageMetrics> = OnceLock::new();
    METRICS.get_or_init(StorageMetrics::new)
}

/// `deployments.apps` (`configmaps` for the core group) of a key or prefix
/// `/registry/<group>/<plural>/…`; empty when it names no one resource.
fn resource_of(key: &str) -> String {
    let mut parts = key.trim_start_matches('/').split('/');
    match (parts.next(), parts.next(), parts.next()) {
        (Some("registry"), Some("core"), Some(plural)) if !plural.is_empty() => plural.to_owned(),
        (Some("registry"), Some(group), Some(plural)) if !plural.is_empty() => {
            format!("{plural}.{group}")
        }
        _ => String::new(),
    }
}

/// The wrapped store, timed.
pub struct TimedStore {
    inner: Arc<dyn Store>,
}

impl TimedStore {
    pub fn new(inner: Arc<dyn Store>) -> TimedStore {
        TimedStore { inner }
    }
}

#[async_trait]
impl Store for TimedStore {
    fn limits(&self) -> &Limits {
        self.inner.limits()
    }

    async fn revision(&self) -> Result<i64> {
        self.inner.revision().await
    }

    async fn members_health(&self) -> Vec<MemberHealth> {
        self.inner.members_health().await
    }

    async fn get(&self, key: &str) -> Result<Option<KeyValue>> {
        let started = Instant::now();
        let result = self.inner.get(key).await;
        storage_metrics().record("get", key, started, &result);
        result
    }

    async fn list(&self, prefix: &str, options: &ListOptions) -> Result<ListPage> {
        let started = Instant::now();
        let result = self.inner.list(prefix, options).await;
        storage_metrics().record("list", prefix, started, &result);
        result
    }

    async fn count(&self, prefix: &str) -> Result<u64> {
        let started = Instant::now();
        let result = self.inner.count(prefix).await;
        storage_metrics().record("count", prefix, started, &result);
        result
    }

    async fn create(&self, key: &str, value: Bytes) -> Result<KeyValue> {
        let started = Instant::now();
        let result = self.inner.create(key, value).await;
        storage_metrics().record("create", key, started, &result);
        result
    }

    async fn update(&self, key: &str, value: Bytes, expected: i64) -> Result<KeyValue> {
        let started = Instant::now();
        let result = self.inner.update(key, value, expected).await;
        storage_metrics().record("update", key, started, &result);
        result
    }

    async fn delete(&self, key: &str, expected: Option<i64>) -> Result<Deleted> {
        let started = Instant::now();
        let result = self.inner.delete(key, expected).await;
        storage_metrics().record("delete", key, started, &result);
        result
    }

    async fn watch(&self, prefix: &str, after_revision: i64) -> Result<WatchStream> {
        let started = Instant::now();
        let result = self.inner.watch(prefix, after_revision).await;
        storage_metrics().record("watch", prefix, started, &result);
        result
    }

    async fn watch_named(
        &self,
        prefix: &str,
        name: &str,
        after_revision: i64,
    ) -> Result<WatchStream> {
        let started = Instant::now();
        let result = self.inner.watch_named(prefix, name, after_revision).await;
        storage_metrics().record("watch", prefix, started, &result);
        result
    }

    async fn compact(&self, revision: i64) -> Result<i64> {
        let started = Instant::now();
        let result = self.inner.compact(revision).await;
        storage_metrics().record("compact", "", started, &result);
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_name_their_resource_as_kube_does() {
        assert_eq!(
            resource_of("/registry/core/configmaps/default/a"),
            "configmaps"
        );
        assert_eq!(
            resource_of("/registry/apps/deployments/"),
            "deployments.apps"
        );
        assert_eq!(resource_of("/registry/"), "");
        assert_eq!(resource_of(""), "");
    }

    #[tokio::test]
    async fn calls_are_timed_counted_and_failures_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        let sqlite =
            super::super::SqliteStore::open(super::super::SqliteConfig::new(dir.path())).unwrap();
        let store = TimedStore::new(Arc::new(sqlite));
        let key = "/registry/core/configmaps/timed-test/a";
        store.create(key, Bytes::from_static(b"{}")).await.unwrap();
        assert!(store.create(key, Bytes::from_static(b"{}")).await.is_err());
        store.get(key).await.unwrap();
        let mut out = String::new();
        storage_metrics().encode(&mut out);
        let line = |name: &str| {
            out.lines()
                .find(|l| l.starts_with(name))
                .and_then(|l| l.rsplit(' ').next())
                .and_then(|v| v.parse::<f64>().ok())
        };
        let created = r#"etcd_requests_total{operation="create",type="configmaps"}"#;
        assert!(line(created).is_some_and(|n| n >= 2.0), "{out}");
        let timed = r#"etcd_request_duration_seconds_count{operation="get",type="configmaps"}"#;
        assert!(line(timed).is_some_and(|n| n >= 1.0), "{out}");
        // AlreadyExists is an answer, not a failure.
        assert!(
            !out.contains(r#"etcd_request_errors_total{operation="create",type="configmaps"}"#),
            "{out}"
        );
    }
}
