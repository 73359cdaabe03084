//! Forwarding names outside the cluster to the node's resolvers (the `nameserver`s of
//! `--resolv-conf`), over one UDP socket made in the node's netns, with a cache. Each query
//! goes out with an ID of ours (responses are matched by ID and source); an upstream that does
//! not answer within [`TIMEOUT`] is skipped for the next. Answers are cached for their smallest
//! TTL (negative ones for the SOA minimum), at most [`MAX_TTL`], like CoreDNS's cache plugin.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use hickory_proto::op::{Message, MessageType, OpCode, Query, ResponseCode};
use hickory_proto::rr::{DNSClass, RData, RecordType};
use hickory_proto::serialize::binary::{BinDecodable, BinEncodable};
use tokio::net::UdpSocket;
use tokio::sync::oneshot;

use super::wire::{Prepared, Question};

/// How long one upstream gets to answer.
pub const TIMEOUT: Duration = Duration::from_secs(2);
/// Longest time an answer stays cached (CoreDNS cache's default for the cluster's Corefile).
pub const MAX_TTL: u32 = 30;
/// Entries kept; past this the cache starts again empty.
const CACHE_ENTRIES: usize = 10_000;

/// The question in wire form with the name lowercase (`wire::Question`'s key).
type Key = Vec<u8>;

/// A cached upstream answer, and its UDP answer encoded for one value of its countdown.
struct Cached {
    until: Instant,
    message: Message,
    wire: Option<(u32, Prepared)>,
}

#[derive(Debug, thiserror::Error)]
pub enum ForwardError {
    #[error("no upstream resolver (no nameserver in --resolv-conf)")]
    NoUpstream,
    #[error("no upstream resolver answered {name} {rtype}")]
    Timeout { name: String, rtype: RecordType },
    #[error("sending to {upstream}: {source}")]
    Send {
        upstream: SocketAddr,
        source: std::io::Error,
    },
    #[error("encoding the query: {0}")]
    Encode(#[from] hickory_proto::ProtoError),
}

/// The forwarder: shared by the server's tasks.
pub struct Forwarder {
    upstreams: Vec<SocketAddr>,
    socket: Arc<UdpSocket>,
    pending: Mutex<HashMap<u16, oneshot::Sender<Message>>>,
    cache: Mutex<HashMap<Key, Cached>>,
}

impl Forwarder {
    /// Forwards to `upstreams` through `socket` (bound, non-blocking); starts the receiver.
    pub fn start(upstreams: Vec<SocketAddr>, socket: UdpSocket) -> Arc<Forwarder> {
        let fw = Arc::new(Forwarder {
            upstreams,
            socket: Arc::new(socket),
            pending: Mutex::default(),
            cache: Mutex::default(),
        });
        tokio::spawn(receive(Arc::downgrade(&fw), fw.socket.clone()));
        fw
    }

    /// The upstream's answer to (name, type, class): from the cache while it is fresh (TTLs
    /// counted down), else asked of each upstream in turn.
    pub async fn resolve(
        &self,
        name: &hickory_proto::rr::Name,
        rtype: RecordType,
        class: DNSClass,
    ) -> Result<Message, ForwardError> {
        let mut lower = Query::query(name.to_lowercase(), rtype);
        lower.set_query_class(class);
        let key = lower.to_bytes()?;
        if let Some(hit) = self.cached(&key) {
            return Ok(hit);
        }
        if self.upstreams.is_empty() {
            return Err(ForwardError::NoUpstream);
        }
        let mut query = Query::query(name.clone(), rtype);
        query.set_query_class(class);
        for upstream in &self.upstreams {
            let (tx, rx) = oneshot::channel();
            let id = self.register(tx);
            let mut msg = Message::new();
            msg.set_id(id)
                .set_message_type(MessageType::Query)
                .set_op_code(OpCode::Query)
                .set_recursion_desired(true)
                .add_query(query.clone());
            let bytes = msg.to_vec()?;
            if let Err(source) = self.socket.send_to(&bytes, upstream).await {
                self.unregister(id);
                tracing::debug!(%upstream, error = %source, "DNS upstream send failed");
                continue;
            }
            match tokio::time::timeout(TIMEOUT, rx).await {
                Ok(Ok(mut answer)) => {
                    // Clients see at most what the cache keeps.
                    for r in answer.answers_mut() {
                        r.set_ttl(r.ttl().min(MAX_TTL));
                    }
                    self.store(key, &answer);
                    return Ok(answer);
                }
                _ => {
                    self.unregister(id);
                    tracing::debug!(%upstream, %name, %rtype, "DNS upstream did not answer");
                }
            }
        }
        Err(ForwardError::Timeout {
            name: name.to_string(),
            rtype,
        })
    }

    fn register(&self, tx: oneshot::Sender<Message>) -> u16 {
        let mut pending = self.pending.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            let id = fastrand::u16(..);
            if let std::collections::hash_map::Entry::Vacant(e) = pending.entry(id) {
                e.insert(tx);
                return id;
            }
        }
    }

    fn unregister(&self, id: u16) {
        self.pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }

    fn cached(&self, key: &[u8]) -> Option<Message> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let hit = cache.get(key)?;
        let left = seconds_left(hit.until)?;
        let mut msg = hit.message.clone();
        for r in msg.answers_mut() {
            r.set_ttl(r.ttl().min(left));
        }
        Some(msg)
    }

    /// The UDP answer to a plain query from the cache, into `out` (false: not cached): the
    /// answer the server would build from [`Forwarder::resolve`]'s message, encoded at most
    /// once per second of the entry's countdown and then copied.
    pub fn answer_cached(
        &self,
        question: &Question,
        request: &[u8],
        key: &[u8],
        out: &mut Vec<u8>,
    ) -> bool {
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let Some(hit) = cache.get_mut(key) else {
            return false;
        };
        let Some(left) = seconds_left(hit.until) else {
            return false;
        };
        if hit.wire.as_ref().map(|(at, _)| *at) != Some(left) {
            let Ok(query) = Query::from_bytes(key) else {
                return false;
            };
            let mut message = hit.message.clone();
            for r in message.answers_mut() {
                r.set_ttl(r.ttl().min(left));
            }
            match Prepared::new(&response(&message, query)) {
                Ok(p) => hit.wire = Some((left, p)),
                Err(e) => {
                    tracing::debug!(error = %e, "preparing a cached DNS answer");
                    return false;
                }
            }
        }
        hit.wire
            .as_ref()
            .is_some_and(|(_, p)| p.write(question, request, out))
    }

    fn store(&self, key: Key, answer: &Message) {
        let ttl = match answer.response_code() {
            ResponseCode::NoError if !answer.answers().is_empty() => {
                answer.answers().iter().map(|r| r.ttl()).min()
            }
            ResponseCode::NoError | ResponseCode::NXDomain => {
                answer.name_servers().iter().find_map(|r| match r.data() {
                    RData::SOA(soa) => Some(soa.minimum().min(r.ttl())),
                    _ => None,
                })
            }
            _ => None,
        };
        let Some(ttl) = ttl.map(|t| t.min(MAX_TTL)).filter(|t| *t > 0) else {
            return;
        };
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_ENTRIES {
            cache.clear();
        }
        let until = Instant::now() + Duration::from_secs(ttl.into());
        let cached = Cached {
            until,
            message: answer.clone(),
            wire: None,
        };
        cache.insert(key, cached);
    }
}

/// Whole seconds until `until`; `None` once it has passed.
fn seconds_left(until: Instant) -> Option<u32> {
    let now = Instant::now();
    (until > now).then(|| (until - now).as_secs() as u32)
}

/// The server's answer carrying an upstream's (`query` asked, any ID): its response code,
/// answers, authority and additionals but an OPT (EDNS is hop by hop); not
/// authoritative, recursion available.
pub fn response(upstream: &Message, query: Query) -> Message {
    let mut message = Message::new();
    message
        .set_message_type(MessageType::Response)
        .set_op_code(OpCode::Query)
        .set_recursion_available(true)
        .set_response_code(upstream.response_code())
        .add_query(query)
        .add_answers(upstream.answers().iter().cloned())
        .add_name_servers(upstream.name_servers().iter().cloned())
        .add_additionals(
            upstream
                .additionals()
                .iter()
                .filter(|r| r.record_type() != RecordType::OPT)
                .cloned(),
        );
    message
}

/// Hands each upstream answer to the query waiting for its ID; ends with the forwarder.
async fn receive(fw: std::sync::Weak<Forwarder>, socket: Arc<UdpSocket>) {
    let mut buf = vec![0u8; 65535];
    loop {
        let (n, from) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                tracing::warn!(error = %e, "DNS upstream socket");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Some(fw) = fw.upgrade() else { return };
        if !fw.upstreams.contains(&from) {
            continue;
        }
        let Ok(msg) = Message::from_vec(&buf[..n]) else {
            continue;
        };
        let waiter = fw
            .pending
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&msg.id());
        if let Some(tx) = waiter {
            let _ = tx.send(msg);
        }
    }
}

#[cfg(test)]
pub(super) mod tests {
    use std::net::Ipv4Addr;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, Record};

    use super::*;

    /// A resolver on loopback answering every A query with 192.0.2.1 (TTL `ttl`); counts.
    pub(in crate::dns) async fn upstream(ttl: u32) -> (SocketAddr, Arc<AtomicUsize>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = socket.local_addr().expect("addr");
        let count = Arc::new(AtomicUsize::new(0));
        let seen = count.clone();
        tokio::spawn(async move {
            let mut buf = [0u8; 4096];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                let Ok(q) = Message::from_vec(&buf[..n]) else {
                    continue;
                };
                seen.fetch_add(1, Ordering::SeqCst);
                let mut reply = Message::new();
                reply
                    .set_id(q.id())
                    .set_message_type(MessageType::Response)
                    .add_queries(q.queries().to_vec());
                if let Some(query) = q.queries().first() {
                    let a = RData::A(A(Ipv4Addr::new(192, 0, 2, 1)));
                    reply.add_answer(Record::from_rdata(query.name().clone(), ttl, a));
                }
                let _ = socket.send_to(&reply.to_vec().expect("encode"), from).await;
            }
        });
        (addr, count)
    }

    async fn forwarder(upstreams: Vec<SocketAddr>) -> Arc<Forwarder> {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        Forwarder::start(upstreams, socket)
    }

    #[tokio::test]
    async fn answers_come_from_the_upstream_then_from_the_cache() {
        let (addr, count) = upstream(60).await;
        let fw = forwarder(vec![addr]).await;
        let name = Name::from_ascii("example.org.").expect("name");
        for _ in 0..3 {
            let answer = fw
                .resolve(&name, RecordType::A, DNSClass::IN)
                .await
                .expect("answer");
            assert_eq!(
                answer.answers()[0].data(),
                &RData::A(A(Ipv4Addr::new(192, 0, 2, 1)))
            );
            // Cached for at most MAX_TTL, whatever the upstream's TTL.
            assert!(answer.answers()[0].ttl() <= MAX_TTL);
        }
        assert_eq!(count.load(Ordering::SeqCst), 1);
        let other = Name::from_ascii("example.net.").expect("name");
        fw.resolve(&other, RecordType::A, DNSClass::IN)
            .await
            .expect("answer");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_silent_upstream_is_skipped_for_the_next() {
        // Bound and never read: queries to it go unanswered.
        let silent = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
        let (addr, count) = upstream(0).await;
        let fw = forwarder(vec![silent.local_addr().expect("addr"), addr]).await;
        let name = Name::from_ascii("example.org.").expect("name");
        let answer = fw.resolve(&name, RecordType::A, DNSClass::IN).await;
        assert!(answer.is_ok(), "{answer:?}");
        // TTL 0 is never cached.
        fw.resolve(&name, RecordType::A, DNSClass::IN)
            .await
            .expect("answer");
        assert_eq!(count.load(Ordering::SeqCst), 2);
    }
}
