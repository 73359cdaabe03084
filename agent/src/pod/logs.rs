//! Container logs: reads a container's stdout/stderr FIFOs and appends CRI-format lines
//! (`<RFC3339Nano> <stream> <P|F> <text>`) to its log file; optionally tees the raw bytes to
//! the agent's own stdout (`bosun-agent run`). The FIFO is opened read-write so it never reports
//! EOF while the container is between writes; the reader drains and stops when told the
//! container exited.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use tokio::net::unix::pipe;
use tokio::sync::oneshot;

/// A line longer than this is split into partial (`P`) records, as CRI does.
const MAX_LINE: usize = 16 * 1024;
/// Bytes read from a FIFO at a time.
const READ_CHUNK: usize = 64 * 1024;

/// Where a stream's bytes go besides the log file.
pub type Tee = Option<tokio::sync::mpsc::UnboundedSender<(Stream, Vec<u8>)>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    fn name(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Formats complete lines of `buf` as CRI records into `out`, leaving an unfinished tail in
/// `buf` (unless `flush`, which writes it as a final record).
pub fn cri_records(buf: &mut Vec<u8>, stream: Stream, now: &str, flush: bool, out: &mut Vec<u8>) {
    let mut start = 0;
    while let Some(pos) = buf[start..].iter().position(|b| *b == b'\n') {
        let end = start + pos;
        push_record(out, now, stream, true, &buf[start..end]);
        start = end + 1;
    }
    while buf.len() - start > MAX_LINE {
        push_record(out, now, stream, false, &buf[start..start + MAX_LINE]);
        start += MAX_LINE;
    }
    if flush && start < buf.len() {
        push_record(out, now, stream, true, &buf[start..]);
        start = buf.len();
    }
    buf.drain(..start);
}

fn push_record(out: &mut Vec<u8>, now: &str, stream: Stream, full: bool, text: &[u8]) {
    out.extend_from_slice(now.as_bytes());
    out.push(b' ');
    out.extend_from_slice(stream.name().as_bytes());
    out.extend_from_slice(if full { b" F " } else { b" P " });
    out.extend_from_slice(text);
    out.push(b'\n');
}

/// Opens the FIFO for reading (read-write, non-blocking), before the container starts.
pub fn open_fifo(path: &Path) -> std::io::Result<pipe::Receiver> {
    pipe::OpenOptions::new()
        .read_write(true)
        .open_receiver(path)
}

/// Copies one stream until `exited` fires, then drains what is left and returns.
pub async fn copy_stream(
    fifo: pipe::Receiver,
    stream: Stream,
    log_path: PathBuf,
    tee: Tee,
    exited: oneshot::Receiver<()>,
) {
    let mut file = match open_log(&log_path) {
        Ok(f) => f,
        Err(e) => {
            tracing::error!(path = %log_path.display(), error = %e, "cannot open log file");
            return;
        }
    };
    let mut pending = Vec::new();
    tokio::pin!(exited);
    let mut done = false;
    loop {
        if !done {
            tokio::select! {
                r = fifo.readable() => if r.is_err() { done = true },
                _ = &mut exited => done = true,
            }
        }
        // Read buffer allocated per wakeup, not held per container: a dense node has
        // thousands of mostly idle streams.
        let mut chunk = vec![0u8; READ_CHUNK];
        let n = match fifo.try_read(&mut chunk) {
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock && !done => continue,
            Err(_) => 0,
        };
        if n == 0 {
            write_records(&mut file, &mut pending, stream, true);
            return;
        }
        if let Some(tx) = &tee {
            let _ = tx.send((stream, chunk[..n].to_vec()));
        }
        pending.extend_from_slice(&chunk[..n]);
        write_records(&mut file, &mut pending, stream, false);
    }
}

fn write_records(file: &mut File, pending: &mut Vec<u8>, stream: Stream, flush: bool) {
    let now = humantime::format_rfc3339_nanos(SystemTime::now()).to_string();
    let mut out = Vec::new();
    cri_records(pending, stream, &now, flush, &mut out);
    if !out.is_empty() {
        if let Err(e) = file.write_all(&out) {
            tracing::warn!(error = %e, "writing container log");
        }
    }
}

fn open_log(path: &Path) -> std::io::Result<File> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    OpenOptions::new().create(true).append(true).open(path)
}

/// The text of a CRI record line (what `logs` prints), joining partial records.
pub fn record_text(line: &str) -> Option<(&str, bool)> {
    let mut parts = line.splitn(4, ' ');
    let _ts = parts.next()?;
    let _stream = parts.next()?;
    let tag = parts.next()?;
    let text = parts.next().unwrap_or("");
    Some((text, tag == "F"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn complete_lines_become_full_records_and_tails_wait() {
        let mut buf = b"one\ntwo\nthr".to_vec();
        let mut out = Vec::new();
        cri_records(&mut buf, Stream::Stdout, "T", false, &mut out);
        assert_eq!(out, b"T stdout F one\nT stdout F two\n");
        assert_eq!(buf, b"thr");
        let mut out = Vec::new();
        cri_records(&mut buf, Stream::Stderr, "T", true, &mut out);
        assert_eq!(out, b"T stderr F thr\n");
        assert!(buf.is_empty());
    }

    #[test]
    fn long_lines_are_split_into_partials() {
        let mut buf = vec![b'x'; MAX_LINE + 10];
        let mut out = Vec::new();
        cri_records(&mut buf, Stream::Stdout, "T", false, &mut out);
        let text = String::from_utf8(out).expect("utf8");
        assert!(text.starts_with("T stdout P xxx"));
        assert_eq!(buf.len(), 10);
        assert_eq!(record_text("T stdout P abc"), Some(("abc", false)));
        assert_eq!(record_text("T stdout F a b"), Some(("a b", true)));
    }
}
