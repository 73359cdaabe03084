//! The DNS server's request handler: answers names of the cluster zone from the current
//! [`Zone`] (authoritative, NXDOMAIN with the zone's SOA for unknown names) and forwards the
//! rest through the [`Forwarder`]. It serves TCP under hickory-server's `ServerFuture` and
//! every UDP query `udp.rs` cannot answer from prepared bytes ([`Handler::answer_prepared`]:
//! the zone's, the forwarder cache's). The zone is swapped whole when the Services change.

use std::sync::{Arc, RwLock};

use hickory_proto::op::{Header, MessageType, OpCode, ResponseCode};
use hickory_proto::rr::Record;
use hickory_server::authority::MessageResponseBuilder;
use hickory_server::server::{Request, RequestHandler, ResponseHandler, ResponseInfo};

use super::forward::Forwarder;
use super::records::Zone;
use super::wire::{response_edns, AskedEdns, Question};

/// The current zone, replaced whole on change.
pub type ZoneCell = Arc<RwLock<Arc<Zone>>>;

#[derive(Clone)]
pub struct Handler {
    pub zone: ZoneCell,
    pub forwarder: Arc<Forwarder>,
}

impl Handler {
    fn zone(&self) -> Arc<Zone> {
        self.zone.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// The answer to a plain UDP query (see [`Question::parse`]) into `out`, when prepared
    /// bytes hold it: the zone's answers (NXDOMAIN for names of the domain it does not
    /// hold), then the forwarder's cache for names the zone leaves to it. `key` is scratch space. False: [`RequestHandler::handle_request`]
    /// answers it.
    pub fn answer_prepared(&self, request: &[u8], key: &mut Vec<u8>, out: &mut Vec<u8>) -> bool {
        let Some(question) = Question::parse(request, key) else {
            return false;
        };
        let zone = self.zone.read().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = zone.prepared(key).or_else(|| zone.nxdomain(key)) {
            return prepared.write(&question, request, out);
        }
        zone.forwards(key) && self.forwarder.answer_cached(&question, request, key, out)
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
    let mut builder = MessageResponseBuilder::from_message_request(request);
    if let Some(asked) = request.edns() {
        builder.edns(response_edns(AskedEdns::of(asked)));
    }
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
        if let Some(local) = zone.local(zone.lookup(&name, query.query_type())) {
            header.set_authoritative(true);
            header.set_response_code(local.code);
            return send(
                request,
                response,
                header,
                local.answers,
                local.authority,
                &[],
            )
            .await;
        }
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
