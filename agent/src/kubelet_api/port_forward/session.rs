//! One port-forward session over SPDY/3.1 (kubelet's `portforward.k8s.io` protocol): the
//! client opens, per forwarded connection, an `error` stream and a `data` stream carrying the
//! headers `streamType`, `port` and `requestID`; each stream is answered with a SYN_REPLY.
//! Once both streams of a request are open the pod's port is dialed: a failure is written on
//! the error stream (which kubectl prints as "an error occurred forwarding …"), else bytes are
//! relayed both ways — a FIN from the client half-closes the pod connection, the pod's EOF is
//! a FIN on the data stream followed by the end of the error stream. RST_STREAM, GOAWAY or
//! the end of the connection drop the pod connections. PINGs are echoed.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use futures::future::BoxFuture;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

use crate::spdy::frame::{FLAG_FIN, RST_PROTOCOL_ERROR, RST_REFUSED_STREAM};
use crate::spdy::{headers, Frame, Reader, Writer};

/// Connects to a port of the pod; the error text is what the error stream says.
pub type Dial = Arc<dyn Fn(u16) -> BoxFuture<'static, Result<TcpStream, String>> + Send + Sync>;

/// The most bytes relayed in one DATA frame.
const CHUNK: usize = 32 * 1024;

/// What the session tells a forwarding task about its data stream.
enum Inbound {
    Data(Bytes),
    Fin,
}

/// The streams of one `requestID` seen so far.
#[derive(Default)]
struct Pair {
    port: u16,
    error: Option<u32>,
    data: Option<u32>,
}

/// Serves the session until the client is gone.
pub async fn serve<R, W>(read: R, write: W, dial: Dial)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (out, mut rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut writer = Writer::new(write);
        while let Some(frame) = rx.recv().await {
            if let Err(e) = writer.send(&frame).await {
                tracing::debug!(error = %e, "port-forward write");
                return;
            }
        }
        let _ = writer.shutdown().await;
    });
    let mut reader = Reader::new(read);
    let mut pairs: HashMap<String, Pair> = HashMap::new();
    let mut inbound: HashMap<u32, mpsc::Sender<Inbound>> = HashMap::new();
    loop {
        let frame = match reader.next().await {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::debug!(error = %e, "port-forward read");
                break;
            }
        };
        match frame {
            Frame::SynStream {
                stream_id, headers, ..
            } => {
                let reply = Frame::SynReply {
                    stream_id,
                    flags: 0,
                    headers: Vec::new(),
                };
                if out.send(reply).await.is_err() {
                    break;
                }
                match open(&mut pairs, stream_id, &headers) {
                    Ok(Some((port, error, data))) => {
                        let (tx, rx) = mpsc::channel(16);
                        inbound.insert(data, tx);
                        tokio::spawn(forward(port, error, data, rx, out.clone(), dial.clone()));
                    }
                    Ok(None) => {}
                    Err(why) => {
                        tracing::debug!(stream_id, why, "port-forward stream refused");
                        let status = RST_PROTOCOL_ERROR;
                        let _ = out.send(Frame::RstStream { stream_id, status }).await;
                    }
                }
            }
            Frame::Data {
                stream_id,
                flags,
                data,
            } => {
                let Some(tx) = inbound.get(&stream_id) else {
                    continue;
                };
                if !data.is_empty() && tx.send(Inbound::Data(data)).await.is_err() {
                    inbound.remove(&stream_id);
                    continue;
                }
                if flags & FLAG_FIN != 0 {
                    let _ = tx.send(Inbound::Fin).await;
                }
            }
            // Dropping the sender ends the forwarding (the pod connection is closed).
            Frame::RstStream { stream_id, .. } => {
                inbound.remove(&stream_id);
            }
            Frame::Ping { id } => {
                if out.send(Frame::Ping { id }).await.is_err() {
                    break;
                }
            }
            Frame::GoAway { .. } => break,
            Frame::SynReply { .. }
            | Frame::Headers { .. }
            | Frame::Settings { .. }
            | Frame::WindowUpdate { .. }
            | Frame::Unknown { .. } => {}
        }
    }
    drop(inbound);
    drop(out);
    let _ = writer.await;
}

/// Records a new stream; the (port, error stream, data stream) once its pair is complete.
fn open(
    pairs: &mut HashMap<String, Pair>,
    stream_id: u32,
    h: &headers::Headers,
) -> Result<Option<(u16, u32, u32)>, String> {
    let kind = headers::get(h, "streamtype").ok_or("streamType header missing")?;
    let port = headers::get(h, "port").ok_or("port header missing")?;
    let port = match port.parse::<u16>() {
        Ok(p) if p > 0 => p,
        _ => return Err(format!("invalid port {port:?}")),
    };
    let request = headers::get(h, "requestid").ok_or("requestID header missing")?;
    let pair = pairs.entry(request.to_owned()).or_default();
    if pair.port != 0 && pair.port != port {
        return Err(format!(
            "request {request} names ports {} and {port}",
            pair.port
        ));
    }
    pair.port = port;
    let slot = match kind {
        "error" => &mut pair.error,
        "data" => &mut pair.data,
        other => return Err(format!("invalid stream type {other:?}")),
    };
    if slot.replace(stream_id).is_some() {
        return Err(format!("request {request} has two {kind} streams"));
    }
    match (pair.error, pair.data) {
        (Some(error), Some(data)) => {
            pairs.remove(request);
            Ok(Some((port, error, data)))
        }
        _ => Ok(None),
    }
}

/// Dials the pod's port and relays until either side is done.
async fn forward(
    port: u16,
    error: u32,
    data: u32,
    mut inbound: mpsc::Receiver<Inbound>,
    out: mpsc::Sender<Frame>,
    dial: Dial,
) {
    let fin = |stream_id| Frame::Data {
        stream_id,
        flags: FLAG_FIN,
        data: Bytes::new(),
    };
    let conn = match dial(port).await {
        Ok(c) => c,
        Err(why) => {
            let message = Frame::Data {
                stream_id: error,
                flags: 0,
                data: Bytes::from(why),
            };
            for f in [message, fin(error), fin(data)] {
                let _ = out.send(f).await;
            }
            return;
        }
    };
    let (mut from_pod, mut to_pod) = conn.into_split();
    // Pod to client; false when the data stream was reset.
    let down = {
        let out = out.clone();
        async move {
            let mut buf = vec![0u8; CHUNK];
            loop {
                match from_pod.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => {
                        let f = Frame::Data {
                            stream_id: data,
                            flags: 0,
                            data: Bytes::copy_from_slice(&buf[..n]),
                        };
                        if out.send(f).await.is_err() {
                            return false;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, port, "port-forward read from the pod");
                        let status = RST_REFUSED_STREAM;
                        let _ = out
                            .send(Frame::RstStream {
                                stream_id: data,
                                status,
                            })
                            .await;
                        return false;
                    }
                }
            }
            let _ = out.send(fin(data)).await;
            let _ = out.send(fin(error)).await;
            true
        }
    };
    tokio::pin!(down);
    let (mut down_done, mut up_done) = (false, false);
    // Client to pod, until both directions are done, or the client resets the data stream
    // (its sender dropped) or the session ends.
    while !(down_done && up_done) {
        tokio::select! {
            ok = &mut down, if !down_done => match ok {
                true => down_done = true,
                false => return,
            },
            message = inbound.recv() => match message {
                Some(Inbound::Data(_)) if up_done => {}
                Some(Inbound::Data(bytes)) => {
                    if let Err(e) = to_pod.write_all(&bytes).await {
                        tracing::debug!(error = %e, port, "port-forward write to the pod");
                        return;
                    }
                }
                Some(Inbound::Fin) => {
                    let _ = to_pod.shutdown().await;
                    up_done = true;
                }
                None => return,
            },
        }
    }
}
