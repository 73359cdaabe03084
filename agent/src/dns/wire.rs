//! UDP answers served from bytes prepared ahead: a response encoded once by hickory-proto
//! (the zone's answers when the zone is built, a cached upstream answer once per second of
//! its countdown) is copied out for each query with the query's own header fields and
//! question. Queries are matched by their question in wire form with the name lowercased,
//! taken from the request bytes after hickory-proto has parsed the header and question —
//! no allocation per query; an EDNS(0) query gets the same bytes and an OPT record after
//! them. Never writes DNS wire format itself: hickory-proto encodes every header, OPT record
//! and prepared response; this module only copies byte ranges it encoded or parsed.

use hickory_proto::op::{Edns, Header, Message, MessageType, OpCode, Query};
use hickory_proto::rr::{Record, RecordType};
use hickory_proto::serialize::binary::{
    BinDecodable, BinDecoder, BinEncodable, BinEncoder, EncodeMode,
};
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
    /// Encoded without compression, so the sections fit any question (a negative answer).
    any_question: bool,
}

impl Prepared {
    /// Encodes `message` (one query, names lowercase) as the UDP answer; its key is
    /// [`Prepared::key`].
    pub fn new(message: &Message) -> Result<Prepared, ProtoError> {
        Prepared::encode(message, false)
    }

    /// Encodes `message` with every name written out (no pointer into the question), so its
    /// sections answer any question: NXDOMAIN with the zone's SOA.
    pub fn for_any_question(message: &Message) -> Result<Prepared, ProtoError> {
        Prepared::encode(message, true)
    }

    fn encode(message: &Message, any_question: bool) -> Result<Prepared, ProtoError> {
        let mut bytes = Vec::with_capacity(512);
        let mut encoder = BinEncoder::new(&mut bytes);
        encoder.set_max_size(UDP_MAX);
        encoder.set_canonical_names(any_question);
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
            any_question,
        })
    }

    /// The lookup key of the answer: its question as encoded (the name lowercase).
    pub fn key(&self) -> &[u8] {
        self.body.get(..self.question_len).unwrap_or_default()
    }

    /// The answer to `question` into `out`: the request's ID, RD and CD, the request's own
    /// question bytes (its name's case), then the prepared sections — and, for an EDNS query,
    /// an OPT record as hickory-server's catalog answers one (the requester's payload size,
    /// its DO bit). False when it does not fit the requester's payload size.
    pub fn write(&self, question: &Question, request: &[u8], out: &mut Vec<u8>) -> bool {
        let mut header = self.header;
        header
            .set_id(question.header.id())
            .set_recursion_desired(question.header.recursion_desired())
            .set_checking_disabled(question.header.checking_disabled());
        if question.edns.is_some() {
            header.set_additional_count(header.additional_count().saturating_add(1));
        }
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
        if asked.len() != self.question_len && !self.any_question {
            return false;
        }
        out.extend_from_slice(asked);
        out.extend_from_slice(rest);
        let Some(asked) = question.edns else {
            return true;
        };
        let opt = response_edns(asked);
        let Ok(offset) = u32::try_from(out.len()) else {
            return false;
        };
        if opt
            .emit(&mut BinEncoder::with_offset(
                out,
                offset,
                EncodeMode::Normal,
            ))
            .is_err()
        {
            return false;
        }
        out.len() <= usize::from(asked.max_payload)
    }
}

/// What an EDNS query asked: the largest answer it takes (at least 512) and its DO bit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AskedEdns {
    pub max_payload: u16,
    pub dnssec_ok: bool,
}

impl AskedEdns {
    pub fn of(edns: &Edns) -> AskedEdns {
        AskedEdns {
            max_payload: edns.max_payload().max(512),
            dnssec_ok: edns.flags().dnssec_ok,
        }
    }
}

/// The OPT of an answer to `asked`, as hickory-server's catalog makes it: version 0, the
/// requester's payload size, the DO bit copied (RFC 3225).
pub fn response_edns(asked: AskedEdns) -> Edns {
    let mut edns = Edns::new();
    edns.set_version(0)
        .set_max_payload(asked.max_payload)
        .set_dnssec_ok(asked.dnssec_ok);
    edns
}

/// A plain query as the fast path takes it: exactly one question, and at most an EDNS(0)
/// OPT record beside it.
#[derive(Debug)]
pub struct Question {
    pub header: Header,
    /// Where the question ends in the request (it starts right after the header).
    pub end: usize,
    /// The query's EDNS, when it has an OPT record.
    pub edns: Option<AskedEdns>,
}

impl Question {
    /// Parses `request` when it is a plain query (QUERY opcode, one question, no other
    /// section but an EDNS version 0 OPT record, no trailing bytes, a name without
    /// compression) and puts its key — the question with the name lowercased — in `key`.
    /// Anything else is `None`: the general path answers it.
    pub fn parse(request: &[u8], key: &mut Vec<u8>) -> Option<Question> {
        let mut decoder = BinDecoder::new(request);
        let header = Header::read(&mut decoder).ok()?;
        let plain = header.message_type() == MessageType::Query
            && header.op_code() == OpCode::Query
            && header.query_count() == 1
            && header.answer_count() == 0
            && header.name_server_count() == 0
            && header.additional_count() <= 1;
        if !plain {
            return None;
        }
        let query = Query::read(&mut decoder).ok()?;
        let end = decoder.index();
        let edns = match header.additional_count() {
            0 => None,
            _ => {
                let record = Record::read(&mut decoder).ok()?;
                if record.record_type() != RecordType::OPT {
                    return None;
                }
                let edns = Edns::from(&record);
                if edns.version() != 0 || edns.rcode_high() != 0 {
                    return None;
                }
                Some(AskedEdns::of(&edns))
            }
        };
        let name_end = end.checked_sub(4)?;
        // Each label with its length byte, and the root's zero: the uncompressed name.
        let encoded: usize = query.name().iter().map(|l| l.len() + 1).sum::<usize>() + 1;
        if decoder.index() != request.len() || name_end.checked_sub(Header::len())? != encoded {
            return None;
        }
        key.clear();
        let name = request.get(Header::len()..name_end)?;
        key.extend(name.iter().map(u8::to_ascii_lowercase));
        key.extend_from_slice(request.get(name_end..end)?);
        Some(Question { header, end, edns })
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
    fn an_edns_query_gets_the_prepared_answer_with_an_opt_record() {
        let p = prepared();
        let mut m = Message::new();
        let mut edns = Edns::new();
        edns.set_max_payload(1232).set_dnssec_ok(true);
        m.set_id(77)
            .add_query(Query::query(
                Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
                RecordType::A,
            ))
            .set_edns(edns);
        let req = m.to_vec().unwrap();
        let mut key = Vec::new();
        let q = Question::parse(&req, &mut key).expect("an EDNS(0) query is plain");
        assert_eq!(key, p.key());
        let mut out = Vec::new();
        assert!(p.write(&q, &req, &mut out));
        let answer = Message::from_vec(&out).unwrap();
        assert_eq!(answer.id(), 77);
        assert_eq!(
            answer.answers()[0].data(),
            &RData::A(A(Ipv4Addr::new(10, 96, 0, 20)))
        );
        let opt = answer.extensions().as_ref().expect("an OPT record");
        assert_eq!(opt.max_payload(), 1232);
        assert!(opt.flags().dnssec_ok);
        // An answer larger than the requester takes goes to the general path (which truncates).
        let tiny = Question {
            edns: Some(AskedEdns {
                max_payload: 20,
                dnssec_ok: false,
            }),
            ..q
        };
        assert!(!p.write(&tiny, &req, &mut out));
    }

    #[test]
    fn only_plain_queries_take_the_fast_path() {
        let mut key = Vec::new();
        let mut edns1 = Message::new();
        let mut version1 = Edns::new();
        version1.set_version(1);
        edns1
            .add_query(Query::query(
                Name::from_ascii("web.default.svc.cluster.local.").unwrap(),
                RecordType::A,
            ))
            .set_edns(version1);
        assert!(Question::parse(&edns1.to_vec().unwrap(), &mut key).is_none());
        let mut trailing = request("web.", 1);
        trailing.push(0);
        assert!(Question::parse(&trailing, &mut key).is_none());
        assert!(Question::parse(&[0, 1, 2], &mut key).is_none());
    }
}
