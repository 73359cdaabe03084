//! The node's client of the API server: `kube`'s client (its URL, credentials and CA from the
//! kubeconfig, its base-URI and auth layers) over **one HTTP/2 connection** — how kubelet's
//! client-go talks to kube-apiserver. `kube::Client::try_from` speaks HTTP/1.1, where every
//! request in flight needs a connection of its own: a node starting 500 pods opened ~500 TLS
//! connections at once (each with its buffers on both ends, and a handshake), and kept them
//! idle. Over HTTP/2 the watches and requests are streams of one connection, kept alive with
//! pings so a silently lost server is noticed.

use std::time::Duration;

use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use kube::client::ConfigExt;
use tower::ServiceBuilder;

/// Receive windows as client-go's (4 MiB a stream) and larger for the connection: the
/// server never waits for a window update from a node busy starting pods — with HTTP/2's
/// 64 KiB, every watch and list shared one small window.
const STREAM_WINDOW: u32 = 4 << 20;
const CONNECTION_WINDOW: u32 = 32 << 20;

/// How often an idle connection is pinged, and how long the answer may take.
const KEEP_ALIVE: Duration = Duration::from_secs(20);
const KEEP_ALIVE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the client could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Kube(#[from] kube::Error),
    #[error("tls-server-name {0:?} is not a DNS name or IP address")]
    ServerName(String),
}

/// `config`'s client, over HTTP/2 (the server must offer `h2`: bosun-control and
/// kube-apiserver do).
pub fn http2_client(config: kube::Config) -> Result<kube::Client, ClientError> {
    let mut http = HttpConnector::new();
    http.enforce_http(false);
    http.set_connect_timeout(config.connect_timeout);
    let tls = config.rustls_client_config()?;
    let mut https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http();
    if let Some(name) = &config.tls_server_name {
        let name = rustls::pki_types::ServerName::try_from(name.clone())
            .map_err(|_| ClientError::ServerName(name.clone()))?;
        https = https.with_server_name_resolver(hyper_rustls::FixedServerNameResolver::new(name));
    }
    let https = https.enable_http2().wrap_connector(http);
    let client = hyper_util::client::legacy::Client::builder(TokioExecutor::new())
        .http2_only(true)
        .http2_initial_stream_window_size(STREAM_WINDOW)
        .http2_initial_connection_window_size(CONNECTION_WINDOW)
        .timer(TokioTimer::new())
        .http2_keep_alive_interval(KEEP_ALIVE)
        .http2_keep_alive_timeout(KEEP_ALIVE_TIMEOUT)
        .http2_keep_alive_while_idle(true)
        .build(https);
    let service = ServiceBuilder::new()
        .layer(config.base_uri_layer())
        .option_layer(config.auth_layer()?)
        .map_err(tower::BoxError::from)
        .service(client);
    Ok(kube::Client::new(service, config.default_namespace))
}
