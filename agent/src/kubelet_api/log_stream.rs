//! A container's log as kubelet serves it: the CRI records of one log file (`pod/logs.rs`
//! writes them, `<ts> <stream> <P|F> <text>`) turned back into the container's text, after
//! `tailLines`, then `sinceSeconds`/`sinceTime`, optionally prefixed with their timestamps,
//! cut at `limitBytes`; with `follow`, new records are sent as they are written until the
//! container is no longer running. Never writes a log file.

use std::convert::Infallible;
use std::io::{Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use futures::channel::mpsc;
use futures::SinkExt;
use http_body_util::{combinators::BoxBody, BodyExt, StreamBody};
use hyper::body::Frame;

use super::log_options::LogOptions;

/// How often a followed log file is read again.
const FOLLOW_POLL: Duration = Duration::from_millis(200);

/// Whether the followed container still runs.
pub type StillRunning = Box<dyn Fn() -> bool + Send>;

/// The response body streaming `file` with `opts`.
pub fn body(file: PathBuf, opts: LogOptions, running: StillRunning) -> BoxBody<Bytes, Infallible> {
    let (tx, rx) = mpsc::channel::<Result<Frame<Bytes>, Infallible>>(8);
    tokio::spawn(pump(tx, file, opts, running));
    StreamBody::new(rx).boxed()
}

async fn pump(
    mut tx: mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    file: PathBuf,
    opts: LogOptions,
    running: StillRunning,
) {
    let mut text = Formatter::new(&opts);
    let (data, mut pos) = read_complete(&file, 0);
    let mut records = lines(&data);
    if let Some(n) = opts.tail_lines {
        let skip = records
            .len()
            .saturating_sub(usize::try_from(n).unwrap_or(usize::MAX));
        records.drain(..skip);
    }
    let mut out = Vec::new();
    let mut open = records.into_iter().all(|r| text.push(r, &mut out));
    if send(&mut tx, out).await.is_err() || !open || !opts.follow {
        return;
    }
    // After the container stopped, one more read picks up what its log copier drained.
    let mut last_round = false;
    while open {
        tokio::time::sleep(FOLLOW_POLL).await;
        let (data, next) = read_complete(&file, pos);
        pos = next;
        let mut out = Vec::new();
        open = lines(&data).into_iter().all(|r| text.push(r, &mut out));
        if send(&mut tx, out).await.is_err() || last_round {
            return;
        }
        last_round = !running();
    }
}

/// Sends `out`; Err once the client is gone (also when there is nothing to send, so a gone
/// client ends a quiet follow).
async fn send(
    tx: &mut mpsc::Sender<Result<Frame<Bytes>, Infallible>>,
    out: Vec<u8>,
) -> Result<(), ()> {
    if out.is_empty() {
        return match tx.is_closed() {
            true => Err(()),
            false => Ok(()),
        };
    }
    tx.send(Ok(Frame::data(Bytes::from(out))))
        .await
        .map_err(|_| ())
}

/// The complete lines of `file` from byte `pos`, and the position after them (an unfinished
/// last line is left for the next read). A file that cannot be read gives nothing.
pub(super) fn read_complete(file: &Path, pos: u64) -> (Vec<u8>, u64) {
    let mut data = Vec::new();
    let read = std::fs::File::open(file).and_then(|mut f| {
        f.seek(SeekFrom::Start(pos))?;
        f.read_to_end(&mut data)
    });
    if let Err(e) = read {
        tracing::debug!(file = %file.display(), error = %e, "reading a container log");
        return (Vec::new(), pos);
    }
    let complete = data.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    data.truncate(complete);
    (data, pos + complete as u64)
}

pub(super) fn lines(data: &[u8]) -> Vec<&[u8]> {
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect()
}

/// Turns records into text with the request's options; keeps the byte budget.
pub struct Formatter {
    since: Option<SystemTime>,
    timestamps: bool,
    remaining: Option<u64>,
}

impl Formatter {
    pub fn new(opts: &LogOptions) -> Formatter {
        Formatter {
            since: opts.since,
            timestamps: opts.timestamps,
            remaining: opts.limit_bytes,
        }
    }

    /// Appends the text of one record line to `out`; false once `limitBytes` is used up.
    pub fn push(&mut self, record: &[u8], out: &mut Vec<u8>) -> bool {
        let Some((ts, full, text)) = split_record(record) else {
            return true;
        };
        if let Some(since) = self.since {
            match humantime::parse_rfc3339(ts) {
                Ok(t) if t < since => return true,
                _ => {}
            }
        }
        let mut piece = Vec::with_capacity(text.len() + ts.len() + 2);
        if self.timestamps {
            piece.extend_from_slice(ts.as_bytes());
            piece.push(b' ');
        }
        piece.extend_from_slice(text);
        if full {
            piece.push(b'\n');
        }
        if let Some(left) = self.remaining.as_mut() {
            let take = piece
                .len()
                .min(usize::try_from(*left).unwrap_or(usize::MAX));
            out.extend_from_slice(&piece[..take]);
            *left -= take as u64;
            return *left > 0;
        }
        out.extend_from_slice(&piece);
        true
    }
}

/// (stderr, text) of a CRI record line: a full record's text ends with its newline.
pub(super) fn record_text(line: &[u8]) -> Option<(bool, Vec<u8>)> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let _ts = parts.next()?;
    let stream = parts.next()?;
    let tag = parts.next()?;
    let mut text = parts.next().unwrap_or(b"").to_vec();
    if tag == b"F" {
        text.push(b'\n');
    }
    Some((stream == b"stderr", text))
}

/// (timestamp, full, text) of a CRI record line.
fn split_record(line: &[u8]) -> Option<(&str, bool, &[u8])> {
    let mut parts = line.splitn(4, |b| *b == b' ');
    let ts = std::str::from_utf8(parts.next()?).ok()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    Some((ts, tag == b"F", parts.next().unwrap_or(b"")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn render(records: &[&str], opts: &LogOptions) -> String {
        let mut f = Formatter::new(opts);
        let mut out = Vec::new();
        for r in records {
            if !f.push(r.as_bytes(), &mut out) {
                break;
            }
        }
        String::from_utf8(out).expect("utf8")
    }

    const RECORDS: &[&str] = &[
        "1970-01-01T00:00:01.5Z stdout F one",
        "1970-01-01T00:00:02Z stderr P tw",
        "1970-01-01T00:00:02Z stderr F o",
        "1970-01-01T00:00:03Z stdout F three",
    ];

    #[test]
    fn records_become_text_with_partials_joined() {
        assert_eq!(render(RECORDS, &LogOptions::default()), "one\ntwo\nthree\n");
    }

    #[test]
    fn timestamps_since_and_limit_bytes_apply() {
        let opts = LogOptions {
            timestamps: true,
            since: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(3)),
            ..LogOptions::default()
        };
        assert_eq!(render(RECORDS, &opts), "1970-01-01T00:00:03Z three\n");
        let opts = LogOptions {
            limit_bytes: Some(6),
            ..LogOptions::default()
        };
        assert_eq!(render(RECORDS, &opts), "one\ntw");
    }

    #[test]
    fn records_name_their_stream() {
        assert_eq!(
            record_text(b"T stderr F oops"),
            Some((true, b"oops\n".to_vec()))
        );
        assert_eq!(
            record_text(b"T stdout P par"),
            Some((false, b"par".to_vec()))
        );
        assert_eq!(record_text(b"garbage"), None);
    }

    #[test]
    fn only_complete_lines_are_read() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("0.log");
        std::fs::write(&file, "T stdout F a\nT stdout F b\nT std").expect("write");
        let (data, pos) = read_complete(&file, 0);
        assert_eq!(lines(&data).len(), 2);
        assert_eq!(pos, 26);
        let (rest, same) = read_complete(&file, pos);
        assert!(rest.is_empty());
        assert_eq!(same, pos);
    }
}
