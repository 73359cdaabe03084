//! kube-apiserver's health endpoints: `/healthz`, `/livez` and `/readyz` run their checks and
//! answer `ok`, or 500 listing each check (`[+]ping ok`, `[-]etcd failed: reason withheld`)
//! and `readyz check failed`; `?verbose` lists the checks of a healthy answer too and
//! `?exclude=NAME` skips one. `/readyz/etcd` runs one check (`ok`, or 500 `internal server
//! error: …`). The `etcd` checks read a key of the store within two seconds (kube's
//! `--etcd-healthcheck-timeout`), so a control whose etcd lost quorum is not ready — a load
//! balancer in front of several controls stops sending it requests.
//!
//! The top-level endpoints are public (system:public-info-viewer); the single checks need the
//! `get` of their path (system:monitoring).

use std::time::Duration;

use bytes::Bytes;
use http::{header, HeaderValue, Response, StatusCode};

use crate::http_util::{typed_response, ResponseBody};
use crate::store::Store;

/// How long the store check waits for its read (`--etcd-healthcheck-timeout`).
const STORE_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

/// The key the store checks read (kube reads `/registry/health`; it need not exist).
const HEALTH_KEY: &str = "/registry/health";

/// The health endpoints and the checks each runs, in order.
fn checks(endpoint: &str) -> Option<&'static [&'static str]> {
    match endpoint {
        "healthz" | "livez" => Some(&["ping", "log", "etcd"]),
        "readyz" => Some(&["ping", "log", "etcd", "etcd-readiness"]),
        _ => None,
    }
}

/// Which health request a path is: the endpoint and, for `/readyz/etcd`, the one check.
/// `None`: not a health path.
pub fn parse(path: &str) -> Option<(&str, Option<&str>)> {
    let path = path.strip_prefix('/')?;
    let (endpoint, check) = match path.split_once('/') {
        Some((endpoint, check)) => (endpoint, Some(check)),
        None => (path, None),
    };
    checks(endpoint)?;
    Some((endpoint, check))
}

/// Runs one check: `Err` says why it failed.
async fn run(store: &dyn Store, check: &str) -> Result<(), String> {
    match check {
        // Answering at all is the ping; tracing writes never block a request here.
        "ping" | "log" => Ok(()),
        "etcd" | "etcd-readiness" => {
            match tokio::time::timeout(STORE_CHECK_TIMEOUT, store.get(HEALTH_KEY)).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(error)) => Err(format!("error getting data from etcd: {error}")),
                Err(_) => Err(format!(
                    "etcd did not answer within {}s",
                    STORE_CHECK_TIMEOUT.as_secs()
                )),
            }
        }
        other => Err(format!("no check named {other:?}")),
    }
}

/// Answers `/<endpoint>[?verbose][&exclude=…]`, running every check of the endpoint.
pub async fn endpoint(store: &dyn Store, endpoint: &str, query: &str) -> Response<ResponseBody> {
    let Some(names) = checks(endpoint) else {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    };
    let mut verbose = false;
    let mut excluded: Vec<String> = Vec::new();
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        match &*key {
            "verbose" => verbose = true,
            "exclude" => excluded.push(value.into_owned()),
            _ => {}
        }
    }
    let mut listing = String::new();
    let mut failed = Vec::new();
    for name in names {
        if let Some(i) = excluded.iter().position(|e| e == name) {
            excluded.remove(i);
            listing.push_str(&format!("[+]{name} excluded: ok\n"));
            continue;
        }
        match run(store, name).await {
            Ok(()) => listing.push_str(&format!("[+]{name} ok\n")),
            Err(reason) => {
                tracing::warn!(check = name, %reason, "{endpoint} check failed");
                listing.push_str(&format!("[-]{name} failed: reason withheld\n"));
                failed.push(*name);
            }
        }
    }
    if !excluded.is_empty() {
        let quoted: Vec<String> = excluded.iter().map(|e| format!("{e:?}")).collect();
        listing.push_str(&format!(
            "warn: some health checks cannot be excluded: no matches for {}\n",
            quoted.join(",")
        ));
    }
    if !failed.is_empty() {
        return text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("{listing}{endpoint} check failed\n"),
        );
    }
    if !verbose {
        return text(StatusCode::OK, "ok".into());
    }
    text(
        StatusCode::OK,
        format!("{listing}{endpoint} check passed\n"),
    )
}

/// Answers `/<endpoint>/<check>`: `ok`, 500 with the reason, or 404 for a check the endpoint
/// does not run.
pub async fn single(store: &dyn Store, endpoint: &str, check: &str) -> Response<ResponseBody> {
    if !checks(endpoint).is_some_and(|names| names.contains(&check)) {
        return text(StatusCode::NOT_FOUND, "404 page not found\n".into());
    }
    match run(store, check).await {
        Ok(()) => text(StatusCode::OK, "ok".into()),
        Err(reason) => text(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal server error: {reason}\n"),
        ),
    }
}

fn text(code: StatusCode, body: String) -> Response<ResponseBody> {
    let mut response = typed_response(code, "text/plain; charset=utf-8", Bytes::from(body));
    response.headers_mut().insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn health_paths_name_their_endpoint_and_check() {
        assert_eq!(parse("/readyz"), Some(("readyz", None)));
        assert_eq!(parse("/livez/etcd"), Some(("livez", Some("etcd"))));
        assert_eq!(parse("/healthz/"), Some(("healthz", Some(""))));
        assert_eq!(parse("/version"), None);
        assert_eq!(parse("/readyzz"), None);
    }
}
