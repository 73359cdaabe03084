//! UDP answers served from bytes prepared ahead: a response encoded once by hickory-proto
//! (the zone's answers when the zone is built, a cached upstream answer once per second of
//! its countdown) is copied out for each query with the query's own header fields and
//! question. Queries are matched by their question in wire form with the name lowercased,
//! taken from the request bytes after hickory-proto has parsed the header and question —
//! no allocation per query. Never writes DNS wire format itself: hickory-proto encodes every
//! header and prepared response; this module only copies byte ranges it encoded or parsed.

use hickory_proto::op::{Header, Message, MessageType, OpCode, Query};
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, BinEncodable, BinEncoder};
use hickory_proto::ProtoError;

/// Largest UDP answer (hickory's `MAX_RECEIVE_BUFFER_SIZE`, what the server has always
/// sent): larger ones are truncated with TC set, as hickory-server's UDP path does.
pub const UDP_MAX: u16 = hickory_proto::udp::MAX_RECEIVE_BUFFER_SIZE as u16;

/// One response, encoded with a lowercase question and ID 0.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The encoded header (counts, flags, response code).
    header: Header,
    /// Everything after the header, from the question on.
    body: Box<[u8]>,
    /// Bytes of the question at the start of `body`.
    question_len: usize,
}

impl Prepared {
    /// Encodes `message` (one query, names lowercase) as the UDP answer; its key is
    /// [`Prepared::key`].
    pub fn new(message: &Message) -> Result<Prepared, ProtoError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(UDP_MAX);
        message.emit(&mut encoder)?;
        let header = Header::read(&mut BinDecoder::new(&bytes))?;
        let question_len = match message.queries() {
            [q] => q.to_bytes()?.len(),
            _ => return Err(ProtoError::from("a prepared answer has exactly one query")),
        };
        let body = bytes.get(Header::len()..).unwrap_or_default().into();
        Ok(Prepared {
            header,
            body,
            question_len,
        })
    }

    /// The lookup key of the answer: its question as encoded (the name lowercase).
    pub fn key(&self) -> &[u8] {
        self.body.get(..self.question_len).unwrap_or_default()
    }

    /// The answer to `question` into `out`: the request's ID, RD and CD, the request's own
    /// question bytes (its name's case), then the prepared sections.
    pub fn write(&self, question: &Question, request: &[u8], out: &mut Vec<u8>) -> bool {
        let mut header = self.header;
        header
            .set_id(question.header.id())
            .set_recursion_desired(question.header.recursion_desired())
            .set_checking_disabled(question.header.checking_disabled());
        out.clear();
        if header.emit(&mut BinEncoder::new(out)).is_err() {
            return false;
        }
        let (Some(asked), Some(rest)) = (
            request.get(Header::len()..question.end),
            self.body.get(self.question_len..),
        ) else {
            return false;
        };
        if asked.len() != self.question_len {
            return false;
        }
        out.extend_from_slice(asked);
        out.extend_from_slice(rest);
        true
    }
}

/// A plain query as the fast path takes it: exactly one question and nothing else.
#[derive(Debug)]
pub struct Question {
    pub header: Header,
    /// Where the question ends in the request (it starts right after the header).
    pub end: usize,
}

impl Question {
    /// Parses `request` when it is a plain query (QUERY opcode, one question, no other
    /// section, no trailing bytes, a name without compression) and puts its key — the
    /// question with the name lowercased — in `key`. Anything else is `None`: the general
    /// path answers it.
    pub fn parse(request: &[u8], key: &mut Vec<u8>) -> Option<Question> {
        let mut decoder = BinDecoder::new(request);
        let header = Header::read(&mut decoder).ok()?;
        let plain = header.message_type() == MessageType::Query
            && header.op_code() == OpCode::Query
            && header.query_count() == 1
            && header.answer_count() == 0
            && header.name_server_count() == 0
            && header.additional_count() == 0;
        if !plain {
            return None;
        }
        let query = Query::read(&mut decoder).ok()?;
        let end = decoder.index();
        let name_end = end.checked_sub(4)?;
        // Each label with its length byte, and the root's zero: the uncompressed name.
        let encoded: usize = query.name().iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if end != request.len() || name_end.checked_sub(Header::len())? != encoded {
            return None;
        }
        key.clear();
        let name = request.get(Header::len()..name_end)?;
        key.extend(name.iter().map(u8::to_ascii_lowercase));
        key.extend_from_slice(request.get(name_end..end)?);
        Some(Question { header, end })
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use hickory_proto::op::ResponseCode;
    use hickory_proto::rr::rdata::A;
    use hickory_proto::rr::{Name, RData, Record, RecordType};

    use super::*;

    fn request(name: &str, id: u16) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id)
            .set_recursion_desired(true)
            .add_query(Query::query(Name::from_ascii(name).unwrap(), RecordType::A));
        m.to_vec().unwrap()
    }

    fn prepared() -> Prepared {
        let name = Name::from_ascii("web.default.svc.cluster.local.").unwrap();
        let mut m = Message::new();
        m.set_message_type(MessageType::Response)
            .set_authoritative(true)
            .set_recursion_available(true)
            .add_query(Query::query(name.clone(), RecordType::A))
            .add_answer(Record::from_rdata(
                name,
                5,
                RData::A(A(Ipv4Addr::new(10, 96, 0, 20))),
            ));
        Prepared::new(&m).unwrap()
    }

    #[test]
    fn a_query_in_any_case_gets_the_prepared_answer_with_its_id_and_question() {
        let p = prepared();
        let req = request("Web.DEFAULT.svc.cluster.local.", 4242);
        let mut key = Vec::new();
        let q = Question::parse(&req, &mut key).expect("plain query");
        assert_eq!(key, p.key());
        let mut out = Vec::new();
        assert!(p.write(&q, &req, &mut out));
        let answer = Message::from_vec(&out).unwrap();
        assert_eq!(answer.id(), 4242);
        assert!(answer.recursion_desired() && answer.authoritative());
        assert_eq!(answer.response_code(), ResponseCode::NoError);
        assert_eq!(
            answer.queries()[0].name().to_ascii(),
            "Web.DEFAULT.svc.cluster.local."
        );
        assert_eq!(
            answer.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(10, 96, 0, 20)))
        );
    }

    #[test]
    fn only_plain_queries_take_the_fast_path() {
        let mut key = Vec::new();
        let mut with_edns = Message::new();
        with_edns
            .add_query(Query::query(
                Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
                RecordType::A,
            ))
            .set_edns(hickory_proto::op::Edns::new());
        assert!(Question::parse(&with_edns.to_vec().unwrap(), &mut key).is_none());
        let mut trailing = request("web.", 1);
        trailing.push(0);
        assert!(Question::parse(&trailing, &mut key).is_none());
        assert!(Question::parse(&[0, 1, 2], &mut key).is_none());
    }
}
