//! One review POSTed to a webhook over HTTPS (HTTP/1.1, the server verified against the
//! webhook's `caBundle`), within the webhook's timeout — AdmissionReviews, ConversionReviews,
//! and (`send`, also in the clear) audit EventLists. Failures are worded as
//! kube-apiserver's Go client words them (`Post "https://…?timeout=10s": dial tcp …: connect:
//! connection refused`, `context deadline exceeded`), since users search for those texts.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use rustls::ClientConfig;
use serde_json::Value;
use tokio_rustls::TlsConnector;

/// The largest AdmissionReview answer read (kube reads whatever comes; an object is at most
/// a few MiB).
const MAX_RESPONSE_BYTES: usize = 16 << 20;

/// Where one call goes.
pub struct Destination {
    /// What to dial: `host:port`.
    pub dial: String,
    /// The name the server's certificate must hold.
    pub server_name: String,
    /// The Host header and the URL shown in errors: `https://<host>/<path>?timeout=10s`.
    pub host: String,
    pub path_and_query: String,
    /// Sent as `Authorization: Bearer …` (an audit webhook's kubeconfig token).
    pub bearer_token: Option<String>,
    /// `https`, or `http` (an audit webhook may be called in the clear).
    pub scheme: &'static str,
}

impl Destination {
    pub fn url(&self) -> String {
        format!("{}://{}{}", self.scheme, self.host, self.path_and_query)
    }
}

/// `Post "<url>": <detail>`, as Go's HTTP client reports a failed request.
pub fn post_error(destination: &Destination, detail: impl std::fmt::Display) -> String {
    format!("Post \"{}\": {detail}", destination.url())
}

fn dial_error(destination: &Destination, error: &std::io::Error) -> String {
    let why = match error.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".to_owned(),
        std::io::ErrorKind::HostUnreachable => "connect: no route to host".to_owned(),
        _ => error.to_string(),
    };
    post_error(destination, format!("dial tcp {}: {why}", destination.dial))
}

/// A call that failed: the webhook's HTTP code (0 when none came) and the text after kube's
/// "failed to call webhook: ".
pub struct CallError {
    pub code: u16,
    pub text: String,
}

impl From<String> for CallError {
    fn from(text: String) -> CallError {
        CallError { code: 0, text }
    }
}

/// POSTs `review` and returns the parsed answer (with its HTTP code).
pub async fn post(
    tls: Arc<ClientConfig>,
    destination: &Destination,
    review: &Value,
    timeout: Duration,
) -> Result<(u16, Value), CallError> {
    let body = serde_json::to_vec(review).map_err(|e| post_error(destination, e))?;
    let (code, bytes) = send(Some(tls), destination, Bytes::from(body), timeout).await?;
    let answer = serde_json::from_slice(&bytes).map_err(|e| CallError {
        code,
        text: format!("the server's answer is not an AdmissionReview: {e}"),
    })?;
    Ok((code, answer))
}

/// POSTs the JSON `body` over TLS (`tls`) or plain TCP (`None`, an `http://` URL) within
/// `timeout`: the HTTP code and the answer's bytes of a 2xx answer.
pub async fn send(
    tls: Option<Arc<ClientConfig>>,
    destination: &Destination,
    body: Bytes,
    timeout: Duration,
) -> Result<(u16, Bytes), CallError> {
    let exchange = async {
        let tcp = tokio::net::TcpStream::connect(&destination.dial)
            .await
            .map_err(|e| dial_error(destination, &e))?;
        let Some(tls) = tls else {
            return exchange(tcp, destination, body).await;
        };
        let name = ServerName::try_from(destination.server_name.clone())
            .map_err(|e| post_error(destination, e))?;
        let stream = TlsConnector::from(tls)
            .connect(name, tcp)
            .await
            .map_err(|e| {
                post_error(
                    destination,
                    format!("tls: failed to verify certificate: {e}"),
                )
            })?;
        exchange(stream, destination, body).await
    };
    match tokio::time::timeout(timeout, exchange).await {
        Ok(result) => result,
        Err(_) => Err(post_error(destination, "context deadline exceeded").into()),
    }
}

async fn exchange<S>(
    stream: S,
    destination: &Destination,
    body: Bytes,
) -> Result<(u16, Bytes), CallError>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| post_error(destination, e))?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(%error, "webhook connection");
        }
    });
    let mut request = http::Request::post(destination.path_and_query.as_str())
        .header(http::header::HOST, destination.host.as_str())
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::ACCEPT, "application/json, */*");
    if let Some(token) = &destination.bearer_token {
        request = request.header(http::header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let request = request
        .body(Full::new(body))
        .map_err(|e| post_error(destination, e))?;
    let response = sender
        .send_request(request)
        .await
        .map_err(|e| post_error(destination, e))?;
    let status = response.status();
    let bytes = Limited::new(response.into_body(), MAX_RESPONSE_BYTES)
        .collect()
        .await
        .map_err(|e| post_error(destination, e))?
        .to_bytes();
    let code = status.as_u16();
    if !status.is_success() {
        return Err(CallError {
            code,
            text: format!(
                "the server responded with the status code {code} but did not return more information"
            ),
        });
    }
    Ok((code, bytes))
}
