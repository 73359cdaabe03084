//! The session against a client made of our own frame writer and reader, dialing loopback.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::HeaderMap;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::session::{self, Dial};
use super::{upgrade_kind, Upgrade};
use crate::spdy::frame::FLAG_FIN;
use crate::spdy::{Frame, Reader, Writer};

const WAIT: Duration = Duration::from_secs(10);

fn loopback_dial() -> Dial {
    Arc::new(|port: u16| {
        Box::pin(async move {
            TcpStream::connect(("127.0.0.1", port))
                .await
                .map_err(|e| format!("dial {port}: {e}"))
        })
    })
}

fn syn(stream_id: u32, kind: &str, port: u16, request: &str) -> Frame {
    Frame::SynStream {
        stream_id,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers: vec![
            ("streamtype".into(), kind.into()),
            ("port".into(), port.to_string()),
            ("requestid".into(), request.into()),
        ],
    }
}

fn data(stream_id: u32, flags: u8, bytes: &[u8]) -> Frame {
    Frame::Data {
        stream_id,
        flags,
        data: Bytes::copy_from_slice(bytes),
    }
}

/// Reads frames until `stream_id` ends (DATA with FIN); returns its bytes and the frames seen.
async fn read_stream(
    reader: &mut Reader<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    stream_id: u32,
) -> (Vec<u8>, Vec<Frame>) {
    let mut bytes = Vec::new();
    let mut seen = Vec::new();
    loop {
        let f = tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("a frame in time")
            .expect("a valid frame")
            .expect("not the end");
        if let Frame::Data {
            stream_id: id,
            flags,
            data,
        } = &f
        {
            if *id == stream_id {
                bytes.extend_from_slice(data);
                if flags & FLAG_FIN != 0 {
                    seen.push(f);
                    return (bytes, seen);
                }
            }
        }
        seen.push(f);
    }
}

#[tokio::test]
async fn a_connection_is_relayed_both_ways_and_pings_are_echoed() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = tokio::spawn(async move {
        let (mut conn, _) = listener.accept().await.expect("accept");
        let mut request = Vec::new();
        conn.read_to_end(&mut request).await.expect("read");
        let body = vec![7u8; 200_000];
        conn.write_all(&body).await.expect("write");
        request
    });
    let (client, ours) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(ours);
    tokio::spawn(session::serve(read, write, loopback_dial()));
    let (client_read, client_write) = tokio::io::split(client);
    let (mut reader, mut writer) = (Reader::new(client_read), Writer::new(client_write));
    writer
        .send(&syn(1, "error", port, "0"))
        .await
        .expect("send");
    writer.send(&data(1, FLAG_FIN, b"")).await.expect("send");
    writer.send(&syn(3, "data", port, "0")).await.expect("send");
    writer.send(&Frame::Ping { id: 5 }).await.expect("send");
    writer
        .send(&data(3, 0, b"GET / HTTP/1.0\r\n"))
        .await
        .expect("send");
    writer
        .send(&data(3, FLAG_FIN, b"\r\n"))
        .await
        .expect("send");
    let (body, seen) = read_stream(&mut reader, 3).await;
    assert_eq!(body, vec![7u8; 200_000]);
    for id in [1, 3] {
        assert!(
            seen.iter()
                .any(|f| matches!(f, Frame::SynReply { stream_id, .. } if *stream_id == id)),
            "stream {id} answered"
        );
    }
    assert!(seen.contains(&Frame::Ping { id: 5 }));
    let (error, _) = read_stream(&mut reader, 1).await;
    assert!(
        error.is_empty(),
        "no error: {}",
        String::from_utf8_lossy(&error)
    );
    assert_eq!(server.await.expect("server"), b"GET / HTTP/1.0\r\n\r\n");
}

#[tokio::test]
async fn a_refused_port_is_reported_on_the_error_stream() {
    // A port nobody listens on: bound then closed.
    let port = {
        let l = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        l.local_addr().expect("addr").port()
    };
    let (client, ours) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(ours);
    tokio::spawn(session::serve(read, write, loopback_dial()));
    let (client_read, client_write) = tokio::io::split(client);
    let (mut reader, mut writer) = (Reader::new(client_read), Writer::new(client_write));
    writer
        .send(&syn(1, "error", port, "7"))
        .await
        .expect("send");
    writer.send(&syn(3, "data", port, "7")).await.expect("send");
    let (error, _) = read_stream(&mut reader, 1).await;
    let error = String::from_utf8(error).expect("text");
    assert!(error.contains(&format!("dial {port}")), "{error}");
}

#[tokio::test]
async fn a_stream_without_its_headers_is_reset() {
    let (client, ours) = tokio::io::duplex(1 << 16);
    let (read, write) = tokio::io::split(ours);
    tokio::spawn(session::serve(read, write, loopback_dial()));
    let (client_read, client_write) = tokio::io::split(client);
    let (mut reader, mut writer) = (Reader::new(client_read), Writer::new(client_write));
    let bad = Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers: vec![("streamtype".into(), "data".into())],
    };
    writer.send(&bad).await.expect("send");
    let mut reset = false;
    for _ in 0..2 {
        let f = tokio::time::timeout(WAIT, reader.next())
            .await
            .expect("in time")
            .expect("valid")
            .expect("a frame");
        reset |= matches!(f, Frame::RstStream { stream_id: 1, .. });
    }
    assert!(reset, "the stream is reset");
    // The client going away ends the session: its side of the connection ends too.
    writer.shutdown().await.expect("shutdown");
    let end = tokio::time::timeout(WAIT, async {
        loop {
            match reader.next().await {
                Ok(Some(_)) => continue,
                other => return other,
            }
        }
    })
    .await
    .expect("the session ends in time");
    assert!(matches!(end, Ok(None)), "{end:?}");
}

#[test]
fn websocket_and_spdy_upgrades_are_recognised() {
    let mut h = HeaderMap::new();
    h.insert("connection", "Upgrade".parse().expect("value"));
    h.insert("upgrade", "websocket".parse().expect("value"));
    h.insert(
        "sec-websocket-key",
        "dGhlIHNhbXBsZSBub25jZQ==".parse().expect("value"),
    );
    h.insert(
        "sec-websocket-protocol",
        "SPDY/3.1+portforward.k8s.io".parse().expect("value"),
    );
    assert_eq!(
        upgrade_kind(&h),
        Some(Upgrade::WebSocket("s3pPLMBiTxaQ9kYGzzhZRbK+xOo=".into()))
    );
    h.insert(
        "sec-websocket-protocol",
        "v5.channel.k8s.io".parse().expect("value"),
    );
    assert_eq!(upgrade_kind(&h), None);
    let mut s = HeaderMap::new();
    s.insert("connection", "Upgrade".parse().expect("value"));
    s.insert("upgrade", "SPDY/3.1".parse().expect("value"));
    s.insert(
        "x-stream-protocol-version",
        "portforward.k8s.io".parse().expect("value"),
    );
    assert_eq!(upgrade_kind(&s), Some(Upgrade::Spdy));
}
