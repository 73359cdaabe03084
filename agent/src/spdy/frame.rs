//! SPDY/3 frames (§2.2–2.6): an 8-byte head — a control frame's `1|version:15|type:16`, a data
//! frame's `0|stream-id:31`, then `flags:8|length:24` — and the payload. Control frames of
//! other versions are a protocol error; unknown control types are kept as [`Frame::Unknown`]
//! for the session to ignore, as the spec asks. Header blocks go through the session's
//! [`Inflater`]/[`Deflater`] in frame order.

use bytes::Bytes;

use super::headers::{Deflater, Headers, Inflater};
use super::SpdyError;

pub const VERSION: u16 = 3;
pub const FLAG_FIN: u8 = 0x01;
pub const FLAG_UNIDIRECTIONAL: u8 = 0x02;

const SYN_STREAM: u16 = 1;
const SYN_REPLY: u16 = 2;
const RST_STREAM: u16 = 3;
const SETTINGS: u16 = 4;
const PING: u16 = 6;
const GOAWAY: u16 = 7;
const HEADERS: u16 = 8;
const WINDOW_UPDATE: u16 = 9;

/// RST_STREAM status codes used here.
pub const RST_PROTOCOL_ERROR: u32 = 1;
pub const RST_INVALID_STREAM: u32 = 2;
pub const RST_REFUSED_STREAM: u32 = 3;
pub const RST_CANCEL: u32 = 5;

/// The largest payload accepted (kubectl writes at most 32 KiB at a time).
pub const MAX_PAYLOAD: usize = 1 << 20;

/// The 31 bits of a stream id.
const STREAM_MASK: u32 = 0x7fff_ffff;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    SynStream {
        stream_id: u32,
        associated_to: u32,
        priority: u8,
        flags: u8,
        headers: Headers,
    },
    SynReply {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    RstStream {
        stream_id: u32,
        status: u32,
    },
    /// The (flags, id, value) entries.
    Settings {
        entries: Vec<(u8, u32, u32)>,
    },
    Ping {
        id: u32,
    },
    GoAway {
        last_good_stream_id: u32,
        status: u32,
    },
    Headers {
        stream_id: u32,
        flags: u8,
        headers: Headers,
    },
    WindowUpdate {
        stream_id: u32,
        delta: u32,
    },
    Data {
        stream_id: u32,
        flags: u8,
        data: Bytes,
    },
    /// A control frame type this implementation does not know (ignored).
    Unknown {
        kind: u16,
    },
}

/// A frame's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Head {
    /// `Some(type)` for a control frame, `None` for data.
    pub control: Option<u16>,
    /// The data frame's stream id (0 for control frames).
    pub stream_id: u32,
    pub flags: u8,
    pub length: usize,
}

impl Head {
    /// Parses the 8 head bytes.
    pub fn parse(head: [u8; 8]) -> Result<Head, SpdyError> {
        let first = u32::from_be_bytes([head[0], head[1], head[2], head[3]]);
        let flags = head[4];
        let length = u32::from_be_bytes([0, head[5], head[6], head[7]]) as usize;
        if length > MAX_PAYLOAD {
            return Err(SpdyError::TooLarge(length));
        }
        if first & 0x8000_0000 == 0 {
            return Ok(Head {
                control: None,
                stream_id: first & STREAM_MASK,
                flags,
                length,
            });
        }
        let version = ((first >> 16) & 0x7fff) as u16;
        if version != VERSION {
            return Err(SpdyError::Version(version));
        }
        Ok(Head {
            control: Some((first & 0xffff) as u16),
            stream_id: 0,
            flags,
            length,
        })
    }
}

/// Parses a frame from its head and payload; header blocks are inflated with `inflater`.
pub fn parse(head: Head, payload: &[u8], inflater: &mut Inflater) -> Result<Frame, SpdyError> {
    let Some(kind) = head.control else {
        return Ok(Frame::Data {
            stream_id: head.stream_id,
            flags: head.flags,
            data: Bytes::copy_from_slice(payload),
        });
    };
    let short = |need: usize| SpdyError::Short {
        kind,
        need,
        got: payload.len(),
    };
    let word = |at: usize| -> Result<u32, SpdyError> {
        payload
            .get(at..at + 4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
            .ok_or_else(|| short(at + 4))
    };
    Ok(match kind {
        SYN_STREAM => {
            if payload.len() < 10 {
                return Err(short(10));
            }
            Frame::SynStream {
                stream_id: word(0)? & STREAM_MASK,
                associated_to: word(4)? & STREAM_MASK,
                priority: payload[8] >> 5,
                flags: head.flags,
                headers: inflater.decode(&payload[10..])?,
            }
        }
        SYN_REPLY => Frame::SynReply {
            stream_id: word(0)? & STREAM_MASK,
            flags: head.flags,
            headers: inflater.decode(payload.get(4..).ok_or_else(|| short(4))?)?,
        },
        HEADERS => Frame::Headers {
            stream_id: word(0)? & STREAM_MASK,
            flags: head.flags,
            headers: inflater.decode(payload.get(4..).ok_or_else(|| short(4))?)?,
        },
        RST_STREAM => Frame::RstStream {
            stream_id: word(0)? & STREAM_MASK,
            status: word(4)?,
        },
        SETTINGS => {
            let count = word(0)? as usize;
            if count > (payload.len() - 4) / 8 {
                return Err(short(4 + count.saturating_mul(8)));
            }
            let entries = (0..count)
                .map(|i| {
                    let at = 4 + i * 8;
                    let id = word(at)?;
                    Ok(((id >> 24) as u8, id & 0x00ff_ffff, word(at + 4)?))
                })
                .collect::<Result<_, SpdyError>>()?;
            Frame::Settings { entries }
        }
        PING => Frame::Ping { id: word(0)? },
        GOAWAY => Frame::GoAway {
            last_good_stream_id: word(0)? & STREAM_MASK,
            status: word(4)?,
        },
        WINDOW_UPDATE => Frame::WindowUpdate {
            stream_id: word(0)? & STREAM_MASK,
            delta: word(4)? & STREAM_MASK,
        },
        other => Frame::Unknown { kind: other },
    })
}

/// The wire bytes of `frame`; header blocks are compressed with `deflater`.
pub fn encode(frame: &Frame, deflater: &mut Deflater) -> Result<Vec<u8>, SpdyError> {
    let control = |kind: u16, flags: u8, payload: Vec<u8>| -> Result<Vec<u8>, SpdyError> {
        if payload.len() > MAX_PAYLOAD {
            return Err(SpdyError::TooLarge(payload.len()));
        }
        let mut out = Vec::with_capacity(8 + payload.len());
        out.extend_from_slice(
            &(0x8000_0000 | u32::from(VERSION) << 16 | u32::from(kind)).to_be_bytes(),
        );
        out.extend_from_slice(&(u32::from(flags) << 24 | payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        Ok(out)
    };
    let words = |list: &[u32]| {
        list.iter()
            .flat_map(|w| w.to_be_bytes())
            .collect::<Vec<u8>>()
    };
    match frame {
        Frame::SynStream {
            stream_id,
            associated_to,
            priority,
            flags,
            headers,
        } => {
            let mut p = words(&[stream_id & STREAM_MASK, associated_to & STREAM_MASK]);
            p.extend_from_slice(&[(priority & 0x7) << 5, 0]);
            p.extend_from_slice(&deflater.encode(headers)?);
            control(SYN_STREAM, *flags, p)
        }
        Frame::SynReply {
            stream_id,
            flags,
            headers,
        } => {
            let mut p = words(&[stream_id & STREAM_MASK]);
            p.extend_from_slice(&deflater.encode(headers)?);
            control(SYN_REPLY, *flags, p)
        }
        Frame::Headers {
            stream_id,
            flags,
            headers,
        } => {
            let mut p = words(&[stream_id & STREAM_MASK]);
            p.extend_from_slice(&deflater.encode(headers)?);
            control(HEADERS, *flags, p)
        }
        Frame::RstStream { stream_id, status } => {
            control(RST_STREAM, 0, words(&[stream_id & STREAM_MASK, *status]))
        }
        Frame::Settings { entries } => {
            let mut p = words(&[entries.len() as u32]);
            for (flags, id, value) in entries {
                p.extend(words(&[
                    u32::from(*flags) << 24 | (id & 0x00ff_ffff),
                    *value,
                ]));
            }
            control(SETTINGS, 0, p)
        }
        Frame::Ping { id } => control(PING, 0, words(&[*id])),
        Frame::GoAway {
            last_good_stream_id,
            status,
        } => control(
            GOAWAY,
            0,
            words(&[last_good_stream_id & STREAM_MASK, *status]),
        ),
        Frame::WindowUpdate { stream_id, delta } => control(
            WINDOW_UPDATE,
            0,
            words(&[stream_id & STREAM_MASK, delta & STREAM_MASK]),
        ),
        Frame::Data {
            stream_id,
            flags,
            data,
        } => {
            if data.len() > MAX_PAYLOAD {
                return Err(SpdyError::TooLarge(data.len()));
            }
            let mut out = Vec::with_capacity(8 + data.len());
            out.extend_from_slice(&(stream_id & STREAM_MASK).to_be_bytes());
            out.extend_from_slice(&(u32::from(*flags) << 24 | data.len() as u32).to_be_bytes());
            out.extend_from_slice(data);
            Ok(out)
        }
        Frame::Unknown { kind } => Err(SpdyError::Unencodable(*kind)),
    }
}
