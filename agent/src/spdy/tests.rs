//! Frame round trips, one per type, and malformed input.

use bytes::Bytes;

use super::frame::{self, FLAG_FIN};
use super::*;

fn headers(list: &[(&str, &str)]) -> Headers {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// Encodes then decodes through a fresh deflater/inflater pair.
fn round_trip(f: &Frame) -> Frame {
    let bytes = frame::encode(f, &mut Deflater::default()).expect("encode");
    let head: [u8; 8] = bytes[..8].try_into().expect("a head");
    let head = Head::parse(head).expect("head");
    assert_eq!(head.length, bytes.len() - 8);
    frame::parse(head, &bytes[8..], &mut Inflater::default()).expect("parse")
}

#[test]
fn every_frame_type_round_trips() {
    let frames = [
        Frame::SynStream {
            stream_id: 1,
            associated_to: 0,
            priority: 7,
            flags: FLAG_FIN,
            headers: headers(&[("streamtype", "error"), ("port", "80"), ("requestid", "0")]),
        },
        Frame::SynReply {
            stream_id: 3,
            flags: 0,
            headers: Headers::new(),
        },
        Frame::RstStream {
            stream_id: 5,
            status: frame::RST_CANCEL,
        },
        Frame::Settings {
            entries: vec![(0, 7, 65536), (1, 4, 100)],
        },
        Frame::Ping { id: 0xdead_beef },
        Frame::GoAway {
            last_good_stream_id: 9,
            status: 0,
        },
        Frame::Headers {
            stream_id: 7,
            flags: 0,
            headers: headers(&[("x", "a\0b")]),
        },
        Frame::WindowUpdate {
            stream_id: 1,
            delta: 65536,
        },
        Frame::Data {
            stream_id: 0x7fff_ffff,
            flags: FLAG_FIN,
            data: Bytes::from_static(b"GET / HTTP/1.1\r\n\r\n"),
        },
        Frame::Data {
            stream_id: 1,
            flags: 0,
            data: Bytes::new(),
        },
    ];
    for f in &frames {
        assert_eq!(&round_trip(f), f);
    }
}

#[test]
fn a_syn_stream_is_laid_out_as_the_spec_says() {
    let f = Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers: Headers::new(),
    };
    let bytes = frame::encode(&f, &mut Deflater::default()).expect("encode");
    // Control bit, version 3, type 1; flags 0; then stream id 1.
    assert_eq!(&bytes[..5], &[0x80, 0x03, 0x00, 0x01, 0x00]);
    assert_eq!(&bytes[8..12], &[0, 0, 0, 1]);
    let ping = frame::encode(&Frame::Ping { id: 2 }, &mut Deflater::default()).expect("encode");
    assert_eq!(ping, [0x80, 3, 0, 6, 0, 0, 0, 4, 0, 0, 0, 2]);
}

#[test]
fn unknown_control_types_are_kept_to_be_ignored() {
    let head = Head::parse([0x80, 3, 0, 5, 0, 0, 0, 0]).expect("head");
    let f = frame::parse(head, &[], &mut Inflater::default()).expect("parse");
    assert_eq!(f, Frame::Unknown { kind: 5 });
}

#[test]
fn malformed_frames_are_errors() {
    let mut inflater = Inflater::default();
    assert!(matches!(
        Head::parse([0x80, 2, 0, 1, 0, 0, 0, 0]),
        Err(SpdyError::Version(2))
    ));
    assert!(matches!(
        Head::parse([0, 0, 0, 1, 0, 0x10, 0, 1]),
        Err(SpdyError::TooLarge(_))
    ));
    for (kind, payload) in [
        (1u8, &[0u8, 0, 0, 1][..]),
        (2, &[0, 0][..]),
        (3, &[0, 0, 0, 1][..]),
        (4, &[0, 0, 0, 9, 0, 0, 0, 0][..]),
        (4, &[][..]),
        (6, &[0][..]),
        (7, &[][..]),
        (8, &[][..]),
        (9, &[0, 0, 0, 1][..]),
    ] {
        let head = Head::parse([0x80, 3, 0, kind, 0, 0, 0, payload.len() as u8]).expect("head");
        assert!(
            frame::parse(head, payload, &mut inflater).is_err(),
            "type {kind} with {} bytes",
            payload.len()
        );
    }
    // A SYN_STREAM whose header block is not zlib.
    let mut payload = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
    payload.extend_from_slice(b"garbage!");
    let head = Head::parse([0x80, 3, 0, 1, 0, 0, 0, payload.len() as u8]).expect("head");
    assert!(frame::parse(head, &payload, &mut Inflater::default()).is_err());
}

#[tokio::test]
async fn a_reader_reads_what_a_writer_wrote_and_reports_truncation() {
    let (a, b) = tokio::io::duplex(1 << 16);
    let mut writer = Writer::new(a);
    let mut reader = Reader::new(b);
    let syn = Frame::SynStream {
        stream_id: 1,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers: headers(&[("streamtype", "data")]),
    };
    let syn2 = Frame::SynStream {
        stream_id: 3,
        associated_to: 0,
        priority: 0,
        flags: 0,
        headers: headers(&[("streamtype", "error")]),
    };
    writer.send(&syn).await.expect("send");
    writer.send(&syn2).await.expect("send");
    writer.shutdown().await.expect("shutdown");
    drop(writer);
    assert_eq!(reader.next().await.expect("frame"), Some(syn));
    assert_eq!(reader.next().await.expect("frame"), Some(syn2));
    assert_eq!(reader.next().await.expect("end"), None);

    let (mut a, b) = tokio::io::duplex(64);
    use tokio::io::AsyncWriteExt;
    a.write_all(&[0, 0, 0, 1, 0, 0, 0, 9, 1, 2])
        .await
        .expect("write");
    drop(a);
    assert!(matches!(
        Reader::new(b).next().await,
        Err(SpdyError::Truncated)
    ));
}
