//! SPDY/3 header blocks (§2.6.10): `u32` pair count, then per pair a `u32`-prefixed name
//! (lower case) and value (several values NUL-separated), compressed with zlib and the SPDY
//! dictionary. Each direction of a session is one zlib stream: every block is sync-flushed,
//! so a [`Deflater`] and an [`Inflater`] live as long as the session.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dictionary::dictionary;
use super::SpdyError;

/// A decoded header block, in wire order.
pub type Headers = Vec<(String, String)>;

/// The most a header block may inflate to (kubectl's are a few dozen bytes).
pub const MAX_HEADER_BLOCK: usize = 64 * 1024;

/// The value of `name` (names are compared without case).
pub fn get<'a>(headers: &'a Headers, name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The receiving side of one direction.
pub struct Inflater(Decompress);

impl Default for Inflater {
    fn default() -> Self {
        Inflater(Decompress::new(true))
    }
}

impl Inflater {
    /// Inflates and parses one compressed block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let plain = self.inflate(block)?;
        parse(&plain)
    }

    fn inflate(&mut self, block: &[u8]) -> Result<Vec<u8>, SpdyError> {
        let bad = |why: String| SpdyError::HeaderBlock(why);
        let mut out = Vec::with_capacity(256);
        let mut consumed = 0usize;
        loop {
            if out.capacity() - out.len() < 256 {
                if out.len() >= MAX_HEADER_BLOCK {
                    return Err(bad(format!("inflates beyond {MAX_HEADER_BLOCK} bytes")));
                }
                out.reserve(out.len().max(256));
            }
            let (before_in, before_out) = (self.0.total_in(), out.len());
            let result = self
                .0
                .decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync);
            consumed += usize::try_from(self.0.total_in() - before_in).unwrap_or(usize::MAX);
            match result {
                Ok(Status::StreamEnd) => return Err(bad("the zlib stream ended".to_owned())),
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.0
                        .set_dictionary(dictionary())
                        .map_err(|e| bad(format!("setting the dictionary: {e}")))?;
                    continue;
                }
                Err(e) => return Err(bad(e.to_string())),
            }
            if consumed >= block.len() && out.len() < out.capacity() {
                return Ok(out);
            }
            if self.0.total_in() == before_in && out.len() == before_out {
                return Err(bad("the compressed block does not progress".to_owned()));
            }
        }
    }
}

/// The sending side of one direction.
pub struct Deflater(Compress);

impl Default for Deflater {
    fn default() -> Self {
        let mut c = Compress::new(Compression::default(), true);
        // Cannot fail before the first byte is compressed.
        let _ = c.set_dictionary(dictionary());
        Deflater(c)
    }
}

impl Deflater {
    /// One compressed, sync-flushed block of `headers`.
    pub fn encode(&mut self, headers: &Headers) -> Result<Vec<u8>, SpdyError> {
        let plain = serialize(headers);
        let mut out = Vec::with_capacity(plain.len() + 64);
        let mut consumed = 0usize;
        loop {
            if out.len() == out.capacity() {
                out.reserve(256);
            }
            let before = self.0.total_in();
            self.0
                .compress_vec(&plain[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::HeaderBlock(format!("compressing: {e}")))?;
            consumed += usize::try_from(self.0.total_in() - before).unwrap_or(usize::MAX);
            // Done when all input is in and the flush left room (nothing pending).
            if consumed >= plain.len() && out.len() < out.capacity() {
                return Ok(out);
            }
        }
    }
}

/// The uncompressed block.
pub fn serialize(headers: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    for (name, value) in headers {
        for s in [name.to_ascii_lowercase().as_str(), value.as_str()] {
            out.extend_from_slice(&(s.len() as u32).to_be_bytes());
            out.extend_from_slice(s.as_bytes());
        }
    }
    out
}

/// Parses an uncompressed block.
pub fn parse(mut plain: &[u8]) -> Result<Headers, SpdyError> {
    let count = take_u32(&mut plain)?;
    // Each pair takes at least 8 bytes: a count beyond that is a lie, not an allocation.
    if count as usize > plain.len() / 8 {
        return Err(SpdyError::HeaderBlock(format!(
            "{count} pairs in {} bytes",
            plain.len()
        )));
    }
    let mut headers = Headers::with_capacity(count as usize);
    for _ in 0..count {
        let name = take_string(&mut plain)?;
        let value = take_string(&mut plain)?;
        if name.is_empty() {
            return Err(SpdyError::HeaderBlock("an empty header name".to_owned()));
        }
        headers.push((name.to_ascii_lowercase(), value));
    }
    Ok(headers)
}

fn take_u32(plain: &mut &[u8]) -> Result<u32, SpdyError> {
    let Some((head, rest)) = plain.split_first_chunk::<4>() else {
        return Err(SpdyError::HeaderBlock("a truncated length".to_owned()));
    };
    *plain = rest;
    Ok(u32::from_be_bytes(*head))
}

fn take_string(plain: &mut &[u8]) -> Result<String, SpdyError> {
    let len = take_u32(plain)? as usize;
    if len > plain.len() {
        return Err(SpdyError::HeaderBlock(format!(
            "a {len}-byte string in {} bytes",
            plain.len()
        )));
    }
    let (s, rest) = plain.split_at(len);
    *plain = rest;
    String::from_utf8(s.to_vec())
        .map_err(|_| SpdyError::HeaderBlock("a header that is not UTF-8".to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(list: &[(&str, &str)]) -> Headers {
        list.iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn blocks_round_trip_through_one_zlib_stream() {
        let (mut deflate, mut inflate) = (Deflater::default(), Inflater::default());
        let first = pairs(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]);
        let second = pairs(&[("streamtype", "data"), ("port", "80"), ("requestid", "0")]);
        let a = deflate.encode(&first).expect("compress");
        let b = deflate.encode(&second).expect("compress");
        // The first block announces the dictionary (FDICT in zlib's header).
        assert_eq!(a[0], 0x78);
        assert_ne!(a[1] & 0x20, 0, "FDICT set");
        assert_eq!(inflate.decode(&a).expect("inflate"), first);
        assert_eq!(inflate.decode(&b).expect("inflate"), second);
        assert_eq!(get(&second, "StreamType"), Some("data"));
    }

    #[test]
    fn an_empty_block_round_trips() {
        let (mut deflate, mut inflate) = (Deflater::default(), Inflater::default());
        let block = deflate.encode(&Headers::new()).expect("compress");
        assert_eq!(inflate.decode(&block).expect("inflate"), Headers::new());
    }

    #[test]
    fn large_values_round_trip() {
        let (mut deflate, mut inflate) = (Deflater::default(), Inflater::default());
        let big: String = (0..20_000)
            .map(|i| char::from(b'a' + (i % 26) as u8))
            .collect();
        let h = pairs(&[("x", &big)]);
        let block = deflate.encode(&h).expect("compress");
        assert_eq!(inflate.decode(&block).expect("inflate"), h);
    }

    #[test]
    fn malformed_blocks_are_errors() {
        let mut inflate = Inflater::default();
        assert!(inflate.decode(b"not zlib at all").is_err());
        assert!(parse(&[0, 0, 0, 1]).is_err(), "a pair missing");
        assert!(parse(&[0, 0, 0]).is_err(), "a short count");
        assert!(parse(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]).is_err());
        let mut long = vec![0, 0, 0, 1, 0, 0, 0, 200];
        long.extend_from_slice(b"abc");
        assert!(parse(&long).is_err(), "a string longer than the block");
        assert!(
            parse(&[0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0]).is_err(),
            "empty name"
        );
    }

    #[test]
    fn a_block_that_inflates_too_far_is_refused() {
        let mut deflate = Deflater::default();
        let huge = "z".repeat(MAX_HEADER_BLOCK * 2);
        let block = deflate.encode(&pairs(&[("x", &huge)])).expect("compress");
        assert!(Inflater::default().decode(&block).is_err());
    }
}
