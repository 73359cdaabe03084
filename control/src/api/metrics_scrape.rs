//! `GET /metrics`: kube-apiserver's Prometheus endpoint. The request metrics
//! (`crate::server_metrics`), then what each scrape reads afresh: `apiserver_storage_objects`
//! (the store's count of each resource's keys, as kube-apiserver's storage metrics) and the
//! process's `process_*` metrics from /proc. For administrators and whoever RBAC lets `get` the
//! non-resource URL `/metrics` (kube's `system:monitoring` group and ClusterRole); others get
//! kube's 403.

use std::sync::Arc;

use bytes::Bytes;
use http::{Method, Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use super::ApiState;
use crate::authn::Identity;
use crate::http_util::{typed_response, ResponseBody};
use crate::kinds::RESOURCES;
use crate::status::ApiError;

pub const PATH: &str = "/metrics";

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResourceLabel {
    resource: String,
}

/// The answer to `method` on `path` when it is `/metrics`.
pub async fn handle(
    state: &Arc<ApiState>,
    identity: &Identity,
    method: &Method,
    path: &str,
) -> Option<Response<ResponseBody>> {
    if path != PATH {
        return None;
    }
    if method != Method::GET {
        return Some(ApiError::method_not_allowed(method, path).into_response());
    }
    if let Err(error) = super::authorize_path(state, identity, path).await {
        return Some(error.into_response());
    }
    let mut out = String::new();
    state.server_metrics.encode(&mut out);
    crate::store::storage_metrics().encode(&mut out);
    let mut scrape = Registry::default();
    scrape.register(
        "apiserver_storage_objects",
        "Number of stored objects at the time of last check split by kind",
        storage_objects(state).await,
    );
    process_metrics(&mut scrape);
    if let Err(error) = prometheus_client::encoding::prometheus_text::encode(&mut out, &scrape) {
        tracing::warn!(%error, "encoding the scrape metrics");
    }
    Some(typed_response(
        StatusCode::OK,
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE,
        Bytes::from(out),
    ))
}

/// Each stored resource's object count (`deployments.apps`), once per store prefix; a
/// resource whose count fails is left out rather than reported as 0.
async fn storage_objects(state: &ApiState) -> Family<ResourceLabel, Gauge> {
    let family = Family::<ResourceLabel, Gauge>::default();
    let mut seen = std::collections::HashSet::new();
    for r in RESOURCES.iter().filter(|r| r.served()) {
        let prefix = r.key_prefix();
        if !seen.insert(prefix.clone()) {
            continue;
        }
        let resource = match r.group {
            "" => r.plural.to_owned(),
            group => format!("{}.{group}", r.plural),
        };
        match state.store.count(&prefix).await {
            Ok(n) => {
                let gauge = family.get_or_create(&ResourceLabel { resource });
                gauge.set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            Err(error) => tracing::debug!(%error, %prefix, "counting stored objects"),
        }
    }
    family
}

/// Prometheus' process collector, from /proc/self: resident and virtual memory, CPU time,
/// open and maximum file descriptors, start time.
fn process_metrics(registry: &mut Registry) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let kib = |field: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(field))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<i64>().ok())
            .map(|n| n * 1024)
    };
    let mut gauge = |name: &str, help: &str, value: Option<i64>| {
        if let Some(value) = value {
            let g = Gauge::<i64>::default();
            g.set(value);
            registry.register(name, help, g);
        }
    };
    gauge(
        "process_resident_memory_bytes",
        "Resident memory size in bytes",
        kib("VmRSS:"),
    );
    gauge(
        "process_virtual_memory_bytes",
        "Virtual memory size in bytes",
        kib("VmSize:"),
    );
    let open = std::fs::read_dir("/proc/self/fd").map(|d| d.count() as i64);
    gauge(
        "process_open_fds",
        "Number of open file descriptors",
        open.ok(),
    );
    let max = nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, _)| i64::try_from(soft).unwrap_or(i64::MAX));
    gauge(
        "process_max_fds",
        "Maximum number of open file descriptors",
        max,
    );
    let (cpu, start) = cpu_and_start();
    if let Some(start) = start {
        gauge(
            "process_start_time_seconds",
            "Start time of the process since unix epoch in seconds",
            Some(start),
        );
    }
    if let Some(seconds) = cpu {
        let c = Counter::<f64, std::sync::atomic::AtomicU64>::default();
        c.inc_by(seconds);
        registry.register(
            "process_cpu_seconds",
            "Total user and system CPU time spent in seconds",
            c,
        );
    }
}

/// (user + system CPU seconds, start time since the epoch) from /proc/self/stat and /proc/stat.
fn cpu_and_start() -> (Option<f64>, Option<i64>) {
    let ticks = nix::unistd::sysconf(nix::unistd::SysconfVar::CLK_TCK)
        .ok()
        .flatten()
        .filter(|t| *t > 0)
        .unwrap_or(100) as f64;
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command, which is in parentheses and may hold spaces.
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let field = |n: usize| fields.get(n).and_then(|f| f.parse::<f64>().ok());
    // utime, stime and starttime are fields 14, 15 and 22 of the line; 3 is the first here.
    let cpu = field(14 - 3)
        .zip(field(15 - 3))
        .map(|(u, s)| (u + s) / ticks);
    let boot = std::fs::read_to_string("/proc/stat").ok().and_then(|s| {
        s.lines()
            .find_map(|l| l.strip_prefix("btime "))
            .and_then(|v| v.trim().parse::<i64>().ok())
    });
    let start = boot
        .zip(field(22 - 3))
        .map(|(boot, since)| boot + (since / ticks) as i64);
    (cpu, start)
}
