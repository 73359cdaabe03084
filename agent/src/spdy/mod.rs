//! The server side of SPDY/3.1 as the Kubernetes streaming protocols use it (kubelet's
//! `port-forward`, and exec's fallback): frames (`frame.rs`), header blocks compressed with
//! zlib and SPDY/3's dictionary (`headers.rs`, `dictionary.rs`), and [`Reader`]/[`Writer`]
//! over any byte stream — the upgraded connection itself, or the bytes carried in binary
//! WebSocket messages (`SPDY/3.1+portforward.k8s.io`). Flow control is not enforced: the Go
//! client (moby/spdystream) never sends WINDOW_UPDATE, so windows are ignored both ways.

pub mod dictionary;
pub mod frame;
pub mod headers;
#[cfg(test)]
mod tests;

pub use frame::{Frame, Head};
pub use headers::{Deflater, Headers, Inflater};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    #[error("SPDY version {0} is not spoken (only 3)")]
    Version(u16),
    #[error("a {0}-byte frame is larger than allowed")]
    TooLarge(usize),
    #[error("control frame type {kind} needs {need} bytes, has {got}")]
    Short { kind: u16, need: usize, got: usize },
    #[error("header block: {0}")]
    HeaderBlock(String),
    #[error("control frame type {0} cannot be sent")]
    Unencodable(u16),
    #[error("the connection ended inside a frame")]
    Truncated,
    #[error("reading or writing the connection: {0}")]
    Io(#[from] std::io::Error),
}

/// Reads frames from one direction of a connection.
pub struct Reader<R> {
    io: R,
    inflater: Inflater,
}

impl<R: AsyncRead + Unpin> Reader<R> {
    pub fn new(io: R) -> Self {
        Reader {
            io,
            inflater: Inflater::default(),
        }
    }

    /// The next frame, `None` when the connection ends between frames.
    pub async fn next(&mut self) -> Result<Option<Frame>, SpdyError> {
        let mut head = [0u8; 8];
        let mut got = 0;
        while got < head.len() {
            let n = self.io.read(&mut head[got..]).await?;
            if n == 0 {
                return match got {
                    0 => Ok(None),
                    _ => Err(SpdyError::Truncated),
                };
            }
            got += n;
        }
        let head = Head::parse(head)?;
        let mut payload = vec![0u8; head.length];
        self.io
            .read_exact(&mut payload)
            .await
            .map_err(|e| match e.kind() {
                std::io::ErrorKind::UnexpectedEof => SpdyError::Truncated,
                _ => SpdyError::Io(e),
            })?;
        frame::parse(head, &payload, &mut self.inflater).map(Some)
    }
}

/// Writes frames to one direction of a connection (one writer per connection: header
/// compression is stateful).
pub struct Writer<W> {
    io: W,
    deflater: Deflater,
}

impl<W: AsyncWrite + Unpin> Writer<W> {
    pub fn new(io: W) -> Self {
        Writer {
            io,
            deflater: Deflater::default(),
        }
    }

    pub async fn send(&mut self, frame: &Frame) -> Result<(), SpdyError> {
        let bytes = frame::encode(frame, &mut self.deflater)?;
        self.io.write_all(&bytes).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// Ends the connection's write side.
    pub async fn shutdown(&mut self) -> Result<(), SpdyError> {
        self.io.shutdown().await.map_err(SpdyError::Io)
    }
}
