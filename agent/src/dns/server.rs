//! The DNS server: hickory-server's `ServerFuture` on the node's UDP and TCP sockets, with a
//! request handler that answers names of the cluster zone from the current [`Zone`]
//! (authoritative, NXDOMAIN with the zone's SOA for unknown names) and forwards the rest
//! through the [`Forwarder`]. The zone is swapped whole when the Services change.

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use super::forward::Forwarder;
use super::records::{Answer, Zone};

/// The current zone, replaced whole on change.
pub type ZoneCell = Arc<RwLock<Arc<Zone>>>;

pub struct Handler {
    pub zone: ZoneCell,
    pub forwarder: Arc<Forwarder>,
}

impl Handler {
    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

async fn send<R: ResponseHandler>(
    request: &Request,
    mut response: R,
    header: Header,
    answers: &[Record],
    authority: &[Record],
    additionals: &[Record],
) -> ResponseInfo {
    let builder = MessageResponseBuilder::from_message_request(request);
    let message = builder.build(
        header,
        answers.iter(),
        authority.iter(),
        std::iter::empty(),
        additionals.iter(),
    );
    match response.send_response(message).await {
        Ok(info) => info,
        Err(e) => {
            tracing::debug!(error = %e, client = %request.src(), "sending a DNS response");
            let mut h = header;
            h.set_response_code(ResponseCode::ServFail);
            h.into()
        }
    }
}

#[async_trait::async_trait]
impl RequestHandler for Handler {
    async fn handle_request<R: ResponseHandler>(
        &self,
        request: &Request,
        response: R,
    ) -> ResponseInfo {
        let mut header = Header::response_from_request(request.header());
        header.set_recursion_available(true);
        if request.message_type() != MessageType::Query || request.op_code() != OpCode::Query {
            header.set_response_code(ResponseCode::NotImp);
            return send(request, response, header, &[], &[], &[]).await;
        }
        let Some(query) = request.queries().first() else {
            header.set_response_code(ResponseCode::FormErr);
            return send(request, response, header, &[], &[], &[]).await;
        };
        let name = query.name().to_string();
        let zone = self.zone();
        match zone.lookup(&name, query.query_type()) {
            Answer::Records(records) => {
                header.set_authoritative(true);
                send(request, response, header, records, &[], &[]).await
            }
            Answer::NoData => {
                header.set_authoritative(true);
                let soa = std::slice::from_ref(zone.soa());
                send(request, response, header, &[], soa, &[]).await
            }
            Answer::NxDomain => {
                header.set_authoritative(true);
                header.set_response_code(ResponseCode::NXDomain);
                let soa = std::slice::from_ref(zone.soa());
                send(request, response, header, &[], soa, &[]).await
            }
            Answer::Outside => {
                let original = query.original();
                let resolved = self
                    .forwarder
                    .resolve(
                        original.name(),
                        original.query_type(),
                        original.query_class(),
                    )
                    .await;
                match resolved {
                    Ok(upstream) => {
                        header.set_response_code(upstream.response_code());
                        let additionals: Vec<Record> = upstream
                            .additionals()
                            .iter()
                            .filter(|r| r.record_type() != hickory_proto::rr::RecordType::OPT)
                            .cloned()
                            .collect();
                        send(
                            request,
                            response,
                            header,
                            upstream.answers(),
                            upstream.name_servers(),
                            &additionals,
                        )
                        .await
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, %name, "forwarding");
                        header.set_response_code(ResponseCode::ServFail);
                        send(request, response, header, &[], &[], &[]).await
                    }
                }
            }
        }
    }
}
