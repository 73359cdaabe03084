//! The channel the store's single requests (ranges, puts, transactions, compactions) take to
//! etcd: one HTTP/2 connection to one member at a time, driven by the `h2` crate itself, which
//! `etcd-client` takes as a custom channel.
//!
//! `etcd-client`'s own channel is tonic's balanced one: a request goes from the caller to a
//! buffer task, which hands it to a load balancer over hyper's HTTP/2 client, which hands it
//! to its connection task (and to one more task for the request body). Each hand-over is a
//! task wake-up, often on the other core, and on this kind of machine (2 vCPUs shared with
//! etcd and the clients) those wake-ups were a large part of what a create over etcd cost
//! beyond etcd's own work. Here the caller's task writes its request into the h2 stream and
//! polls the answer itself; only the connection task is between it and the socket.
//!
//! Members are tried in turn: a request that finds no live connection connects to the
//! current member, and on failure to the next, so a dead member costs one refused connect.
//! A request that could not be sent anywhere fails as `Unavailable` with "connect error" in
//! its message, which the store sends again until its deadline, as with the balanced
//! channel. HTTP/2 pings every [`KEEP_ALIVE`] drop a connection whose member stopped
//! answering. Only unary calls take this channel (their request bodies end): the store's
//! one long watch stays on `etcd-client`'s balanced channel.

use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures::future::BoxFuture;
use http::uri::{Authority, Scheme};
use http::Uri;
use http_body_util::BodyExt;
use tokio::net::TcpStream;

type GrpcRequest = http::Request<tonic::body::Body>;
type GrpcResponse = http::Response<tonic::body::Body>;

/// How often an idle connection is pinged, and how long its answer may take.
const KEEP_ALIVE: Duration = Duration::from_secs(10);
/// hyper's HTTP/2 client windows (tonic's defaults): a large range answer streams at once.
const STREAM_WINDOW: u32 = 2 * 1024 * 1024;
const CONNECTION_WINDOW: u32 = 5 * 1024 * 1024;

/// One member's client URL, split for HTTP/2's pseudo-headers and the TCP connect.
#[derive(Clone, Debug)]
struct Member {
    authority: Authority,
    url: String,
}

/// A live connection to one member.
struct Connection {
    member: usize,
    sender: h2::client::SendRequest<Bytes>,
    /// Set once the connection's task has ended (closed, failed, or missed a ping).
    closed: Arc<AtomicBool>,
}

struct Shared {
    members: Vec<Member>,
    connect_timeout: Duration,
    /// The connection in use, and the member to try next when there is none.
    current: tokio::sync::Mutex<(Option<Connection>, usize)>,
}

/// A tower service sending each gRPC request to the member in use (see the module comment).
#[derive(Clone)]
pub struct DirectChannel {
    shared: Arc<Shared>,
}

/// A URL this channel cannot take: not `http://host:port` (or `host:port`).
#[derive(Debug, thiserror::Error)]
#[error("etcd endpoint {url:?}: {reason}")]
pub struct BadEndpoint {
    url: String,
    reason: &'static str,
}

impl DirectChannel {
    pub fn new(endpoints: &[String], connect_timeout: Duration) -> Result<Self, BadEndpoint> {
        let mut members = Vec::with_capacity(endpoints.len());
        for url in endpoints {
            let bad = |reason| BadEndpoint {
                url: url.clone(),
                reason,
            };
            // As etcd-client takes them: `host:port` is `http://host:port`.
            let full = match url.contains("://") {
                true => url.clone(),
                false => format!("http://{url}"),
            };
            let uri: Uri = full.parse().map_err(|_| bad("not a URL"))?;
            if uri.scheme() != Some(&Scheme::HTTP) {
                return Err(bad("only http:// client URLs are supported"));
            }
            let authority = uri.authority().cloned().ok_or_else(|| bad("no host"))?;
            members.push(Member {
                authority,
                url: url.clone(),
            });
        }
        if members.is_empty() {
            return Err(BadEndpoint {
                url: String::new(),
                reason: "no endpoints",
            });
        }
        Ok(Self {
            shared: Arc::new(Shared {
                members,
                connect_timeout,
                current: tokio::sync::Mutex::new((None, 0)),
            }),
        })
    }

    /// As `etcd-client`'s channel.
    pub fn into_etcd_channel(self) -> etcd_client::Channel {
        etcd_client::Channel::Custom(tower::util::BoxCloneSyncService::new(self))
    }
}

impl Shared {
    /// A sender on a live connection, connecting to the members in turn if there is none; the
    /// member it goes to.
    async fn sender(&self) -> Result<(usize, h2::client::SendRequest<Bytes>), tonic::Status> {
        let mut current = self.current.lock().await;
        if let Some(connection) = &current.0 {
            if !connection.closed.load(Ordering::Acquire) {
                return Ok((connection.member, connection.sender.clone()));
            }
            current.1 = (connection.member + 1) % self.members.len();
            current.0 = None;
        }
        let mut failures = Vec::new();
        for _ in 0..self.members.len() {
            let member = current.1;
            match self.connect(member).await {
                Ok(connection) => {
                    let sender = connection.sender.clone();
                    current.0 = Some(connection);
                    return Ok((member, sender));
                }
                Err(error) => {
                    failures.push(format!("{}: {error}", self.members[member].url));
                    current.1 = (member + 1) % self.members.len();
                }
            }
        }
        Err(unsent(&failures.join("; ")))
    }

    /// Forgets the connection to `member` if it is still the one in use: the next request
    /// connects to the next member.
    async fn drop_connection(&self, member: usize) {
        let mut current = self.current.lock().await;
        if current.0.as_ref().is_some_and(|c| c.member == member) {
            current.0 = None;
            current.1 = (member + 1) % self.members.len();
        }
    }

    async fn connect(&self, member: usize) -> Result<Connection, String> {
        let address = self.members[member].authority.as_str().to_owned();
        let connecting = async {
            let tcp = TcpStream::connect(&address)
                .await
                .map_err(|e| e.to_string())?;
            tcp.set_nodelay(true).map_err(|e| e.to_string())?;
            h2::client::Builder::new()
                .initial_window_size(STREAM_WINDOW)
                .initial_connection_window_size(CONNECTION_WINDOW)
                .handshake::<_, Bytes>(tcp)
                .await
                .map_err(|e| e.to_string())
        };
        let (sender, mut connection) = tokio::time::timeout(self.connect_timeout, connecting)
            .await
            .map_err(|_| format!("no connection within {:?}", self.connect_timeout))??;
        let closed = Arc::new(AtomicBool::new(false));
        let pings = connection.ping_pong();
        let ended = Arc::clone(&closed);
        tokio::spawn(async move {
            let _ = connection.await;
            ended.store(true, Ordering::Release);
        });
        if let Some(pings) = pings {
            tokio::spawn(keep_alive(pings, Arc::clone(&closed)));
        }
        Ok(Connection {
            member,
            sender,
            closed,
        })
    }
}

/// Pings the connection every [`KEEP_ALIVE`] while it is open; one unanswered in time marks it
/// closed, so the next request connects again.
async fn keep_alive(mut pings: h2::PingPong, closed: Arc<AtomicBool>) {
    loop {
        tokio::time::sleep(KEEP_ALIVE).await;
        if closed.load(Ordering::Acquire) {
            return;
        }
        let answered = tokio::time::timeout(KEEP_ALIVE, pings.ping(h2::Ping::opaque())).await;
        if !matches!(answered, Ok(Ok(_))) {
            closed.store(true, Ordering::Release);
            return;
        }
    }
}

/// A request that never reached etcd, as the store recognises one (it sends it again).
fn unsent(why: &str) -> tonic::Status {
    tonic::Status::unavailable(format!("connect error: {why}"))
}

impl tower::Service<GrpcRequest> for DirectChannel {
    type Response = GrpcResponse;
    type Error = tower::BoxError;
    type Future = BoxFuture<'static, Result<GrpcResponse, tower::BoxError>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: GrpcRequest) -> Self::Future {
        let shared = Arc::clone(&self.shared);
        Box::pin(async move { shared.send(request).await })
    }
}

impl Shared {
    async fn send(&self, request: GrpcRequest) -> Result<GrpcResponse, tower::BoxError> {
        let (mut parts, body) = request.into_parts();
        // Unary calls only: the body is the one request message.
        let body = body.collect().await?.to_bytes();
        let path = parts
            .uri
            .path_and_query()
            .cloned()
            .ok_or_else(|| tonic::Status::internal("a gRPC request without a path"))?;
        let mut failures = Vec::new();
        for _ in 0..=self.members.len() {
            let (member, sender) = self.sender().await?;
            let mut sender = match sender.ready().await {
                Ok(sender) => sender,
                Err(error) => {
                    failures.push(format!("{}: {error}", self.members[member].url));
                    self.drop_connection(member).await;
                    continue;
                }
            };
            parts.uri = Uri::builder()
                .scheme(Scheme::HTTP)
                .authority(self.members[member].authority.clone())
                .path_and_query(path.clone())
                .build()?;
            let head = http::Request::from_parts(parts.clone(), ());
            let (answer, mut stream) = match sender.send_request(head, body.is_empty()) {
                Ok(sent) => sent,
                Err(error) => {
                    failures.push(format!("{}: {error}", self.members[member].url));
                    self.drop_connection(member).await;
                    continue;
                }
            };
            if !body.is_empty() {
                stream.send_data(body.clone(), true)?;
            }
            let answer = answer.await?;
            return Ok(answer.map(|recv| {
                tonic::body::Body::new(Answer {
                    recv,
                    reading: Reading::Data,
                })
            }));
        }
        Err(Box::new(unsent(&failures.join("; "))))
    }
}

/// An answer's body: its DATA frames (their flow-control window given back as they come),
/// then its trailers (gRPC's status).
struct Answer {
    recv: h2::RecvStream,
    reading: Reading,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Reading {
    Data,
    Trailers,
    Done,
}

impl http_body::Body for Answer {
    type Data = Bytes;
    type Error = h2::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, h2::Error>>> {
        if self.reading == Reading::Data {
            match std::task::ready!(self.recv.poll_data(cx)) {
                Some(Ok(data)) => {
                    let _ = self.recv.flow_control().release_capacity(data.len());
                    return Poll::Ready(Some(Ok(http_body::Frame::data(data))));
                }
                Some(Err(error)) => {
                    self.reading = Reading::Done;
                    return Poll::Ready(Some(Err(error)));
                }
                None => self.reading = Reading::Trailers,
            }
        }
        if self.reading == Reading::Done {
            return Poll::Ready(None);
        }
        let trailers = std::task::ready!(self.recv.poll_trailers(cx));
        self.reading = Reading::Done;
        match trailers {
            Ok(Some(trailers)) => Poll::Ready(Some(Ok(http_body::Frame::trailers(trailers)))),
            Ok(None) => Poll::Ready(None),
            Err(error) => Poll::Ready(Some(Err(error))),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.reading == Reading::Done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_are_http_urls_with_a_host() {
        let good = [
            "http://127.0.0.1:2379".to_owned(),
            "http://etcd-2:2379".to_owned(),
        ];
        let channel = DirectChannel::new(&good, Duration::from_secs(1)).unwrap();
        let authorities: Vec<&str> = channel
            .shared
            .members
            .iter()
            .map(|m| m.authority.as_str())
            .collect();
        assert_eq!(authorities, ["127.0.0.1:2379", "etcd-2:2379"]);
        for (bad, why) in [
            ("https://127.0.0.1:2379", "only http://"),
            ("unix://etcd.sock", "only http://"),
            ("http://", "not a URL"),
            ("not a url at all", "not a URL"),
        ] {
            let error = DirectChannel::new(&[bad.to_owned()], Duration::from_secs(1))
                .err()
                .unwrap_or_else(|| panic!("{bad} was taken"))
                .to_string();
            assert!(error.contains(why) && error.contains(bad), "{bad}: {error}");
        }
        let none = DirectChannel::new(&[], Duration::from_secs(1))
            .err()
            .unwrap();
        assert!(none.to_string().contains("no endpoints"), "{none}");
    }

    #[tokio::test]
    async fn a_request_no_member_takes_is_unavailable_as_never_sent() {
        // A port nothing listens on: bound, then closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let url = format!("http://127.0.0.1:{port}");
        let channel =
            DirectChannel::new(std::slice::from_ref(&url), Duration::from_secs(1)).unwrap();
        let mut service = channel.clone();
        let request = http::Request::builder()
            .uri("/etcdserverpb.KV/Range")
            .body(tonic::body::Body::empty())
            .unwrap();
        let error = tower::Service::call(&mut service, request)
            .await
            .unwrap_err();
        let status = error.downcast::<tonic::Status>().unwrap();
        assert_eq!(status.code(), tonic::Code::Unavailable);
        assert!(
            status.message().starts_with("connect error: "),
            "{status:?}"
        );
        assert!(status.message().contains(&url), "{status:?}");
    }
}
