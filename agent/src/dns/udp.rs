//! The server's UDP side: one loop on the listening socket that receives into a reused
//! buffer and answers plain queries the zone or the forwarder's cache hold from prepared
//! bytes in place ([`Handler::answer_prepared`], no task, no allocation); every other
//! datagram goes to the [`Handler`] in a task of its own (forwarding waits for an upstream),
//! decoded and answered as hickory-server's UDP path does: responses are dropped, a
//! malformed query gets FORMERR, answers are capped at [`UDP_MAX`] bytes with TC set.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncoder};
use hickory_proto::xfer::Protocol;
use hickory_proto::ProtoErrorKind;
use hickory_server::authority::{MessageRequest, MessageResponse};
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};
use tokio::net::UdpSocket;

use super::server::Handler;
use super::wire::UDP_MAX;

/// Serves `socket` until the runtime stops.
pub async fn serve(socket: UdpSocket, handler: Handler) {
    let socket = Arc::new(socket);
    let mut buf = vec![0u8; usize::from(UDP_MAX)];
    let (mut key, mut out) = (Vec::with_capacity(256), Vec::with_capacity(512));
    loop {
        let (n, src) = match socket.recv_from(&mut buf).await {
            Ok(r) => r,
            Err(e) => {
                // Nothing a client sends makes recv fail for long; do not spin if it does.
                tracing::warn!(error = %e, "receiving on the DNS socket");
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        // hickory-server's rule: never answer port 0 or an unspecified address.
        if src.port() == 0 || src.ip().is_unspecified() {
            continue;
        }
        let request = buf.get(..n).unwrap_or_default();
        if handler.answer_prepared(request, &mut key, &mut out) {
            if let Err(e) = socket.send_to(&out, src).await {
                tracing::debug!(error = %e, client = %src, "sending a DNS response");
            }
            continue;
        }
        let reply = Reply {
            socket: socket.clone(),
            dst: src,
        };
        tokio::spawn(general(handler.clone(), request.to_vec(), reply));
    }
}

/// Decodes and answers one datagram through the handler.
async fn general(handler: Handler, bytes: Vec<u8>, reply: Reply) {
    match MessageRequest::read(&mut BinDecoder::new(&bytes)) {
        Ok(message) if message.message_type() == MessageType::Response => {}
        Ok(message) => {
            let request = Request::new(message, reply.dst, Protocol::Udp);
            handler.handle_request(&request, reply).await;
        }
        Err(e) => {
            let ProtoErrorKind::FormError { header, .. } = *e.kind else {
                tracing::debug!(error = %e, client = %reply.dst, "undecodable DNS datagram");
                return;
            };
            if header.message_type() == MessageType::Response {
                return;
            }
            let mut answer =
                Message::error_msg(header.id(), header.op_code(), ResponseCode::FormErr);
            answer.set_recursion_desired(header.recursion_desired());
            match answer.to_vec() {
                Ok(bytes) => reply.send(&bytes).await,
                Err(e) => tracing::debug!(error = %e, "encoding FORMERR"),
            }
        }
    }
}

/// Where a general answer goes: the client, through the listening socket.
#[derive(Clone)]
struct Reply {
    socket: Arc<UdpSocket>,
    dst: SocketAddr,
}

impl Reply {
    async fn send(&self, bytes: &[u8]) {
        if let Err(e) = self.socket.send_to(bytes, self.dst).await {
            tracing::debug!(error = %e, client = %self.dst, "sending a DNS response");
        }
    }
}

#[async_trait::async_trait]
impl ResponseHandler for Reply {
    async fn send_response<'a>(
        &mut self,
        response: MessageResponse<
            '_,
            'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
            impl Iterator<Item = &'a hickory_proto::rr::Record> + Send + 'a,
        >,
    ) -> io::Result<ResponseInfo> {
        let id = response.header().id();
        let max = response
            .get_edns()
            .as_ref()
            .map_or(UDP_MAX, |edns| edns.max_payload());
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(max);
        let info = match response.destructive_emit(&mut encoder) {
            Ok(info) => info,
            Err(e) => {
                tracing::warn!(error = %e, "encoding a DNS response");
                let fail = Message::error_msg(id, OpCode::Query, ResponseCode::ServFail);
                bytes = fail.to_vec().map_err(io::Error::other)?;
                (*fail.header()).into()
            }
        };
        self.send(&bytes).await;
        Ok(info)
    }
}

#[cfg(test)]
#[path = "udp_tests.rs"]
mod tests;
