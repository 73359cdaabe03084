//! One exec session over an upgraded connection: binary WebSocket messages whose first byte is
//! the channel (0 stdin, 1 stdout, 2 stderr, 3 the final `Status`, 4 terminal resize
//! `{"Width","Height"}`; in v5 `[255, channel]` closes a channel, e.g. stdin at EOF). The
//! command runs through the exec helper (`runtime::exec_stream`); its output is relayed until
//! EOF, then its end is sent as a v1 `Status` on channel 3 (kubelet's: Success, Failure with
//! reason `NonZeroExitCode` and an `ExitCode` cause, or an InternalError when it could not
//! start) and the WebSocket closed. A client that goes away kills the command.

use std::os::fd::OwnedFd;
use std::path::PathBuf;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use serde_json::json;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use crate::runtime::exec_stream::{self, StreamEnd, StreamFds, StreamSpec};

const STDIN: u8 = 0;
const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` closes that channel.
const CLOSE: u8 = 255;

/// What a session runs.
pub struct Session {
    pub init_exe: PathBuf,
    pub spec: StreamSpec,
    /// Whether the protocol has the close signal (v5).
    pub stream_close: bool,
}

/// Where channel 0 and 4 go.
enum Input {
    Pipe(Option<tokio::net::unix::pipe::Sender>),
    Pty {
        writer: Option<tokio::fs::File>,
        master: OwnedFd,
    },
}

impl Session {
    pub async fn run(self, upgrade: OnUpgrade) {
        let upgraded = match upgrade.await {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(error = %e, "exec upgrade");
                return;
            }
        };
        let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
        let (mut sink, mut stream) = ws.split();
        let (tx, mut rx) = mpsc::channel::<Message>(64);
        let writer = tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                if sink.send(m).await.is_err() {
                    return;
                }
            }
            // A normal closure (1000): kubectl reads a close without a code (1005) as an error.
            let normal = CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            };
            let _ = sink.send(Message::Close(Some(normal))).await;
            let _ = sink.close().await;
        });
        let command = self.spec.exec.process.argv.clone();
        let mut spec = self.spec;
        // kubectl sends its terminal's size first thing: the pty gets it before the command
        // runs (a `stty size` at once would otherwise see 0 0). What came before it is kept.
        let mut early = Vec::new();
        if spec.tty {
            let size = first_resize(&mut stream, &mut early).await;
            spec.tty_size = size.map(|s| (s.ws_row, s.ws_col));
        }
        let mut process = match exec_stream::start(&self.init_exe, spec).await {
            Ok(p) => p,
            Err(why) => {
                let _ = tx
                    .send(frame(ERROR, &status(&StreamEnd::NotStarted(why), &command)))
                    .await;
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        let fds = std::mem::replace(
            &mut process.fds,
            StreamFds::Pipes {
                stdin: None,
                stdout: None,
                stderr: None,
            },
        );
        let (input, outputs) = match wire(fds, &tx) {
            Ok(wired) => wired,
            Err(e) => {
                let end = StreamEnd::NotStarted(format!("relaying the stdio: {e}"));
                let _ = tx.send(frame(ERROR, &status(&end, &command))).await;
                drop(tx);
                let _ = writer.await;
                return;
            }
        };
        let stream_close = self.stream_close;
        let reader = async move {
            let mut input = input;
            for data in early {
                on_input(&mut input, &data, stream_close).await;
            }
            while let Some(Ok(message)) = stream.next().await {
                match message {
                    Message::Binary(data) => on_input(&mut input, &data, stream_close).await,
                    Message::Close(_) => break,
                    _ => {}
                }
            }
        };
        let finished = async {
            for o in outputs {
                let _ = o.await;
            }
            process.end().await
        };
        tokio::select! {
            end = finished => {
                let _ = tx.send(frame(ERROR, &status(&end, &command))).await;
                drop(tx);
                let _ = writer.await;
            }
            // The client went away: dropping the process kills the helper and the command.
            () = reader => {}
        }
    }
}

/// How long a TTY session waits for the client's terminal size before starting the command.
const FIRST_RESIZE_WAIT: std::time::Duration = std::time::Duration::from_secs(1);

/// Reads client messages until the first resize (at most [`FIRST_RESIZE_WAIT`]), keeping the
/// others in `early`; the size it carried.
async fn first_resize<S>(stream: &mut S, early: &mut Vec<Bytes>) -> Option<rustix::termios::Winsize>
where
    S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
{
    let deadline = tokio::time::Instant::now() + FIRST_RESIZE_WAIT;
    while let Ok(Some(Ok(message))) = tokio::time::timeout_at(deadline, stream.next()).await {
        let Message::Binary(data) = message else {
            continue;
        };
        if let Some((&RESIZE, payload)) = data.split_first() {
            if let Some(size) = resize(payload) {
                return Some(size);
            }
        }
        early.push(data);
    }
    None
}

/// Starts the output relays; returns where input goes.
fn wire(
    fds: StreamFds,
    tx: &mpsc::Sender<Message>,
) -> std::io::Result<(Input, Vec<tokio::task::JoinHandle<()>>)> {
    use tokio::net::unix::pipe;
    let mut outputs = Vec::new();
    match fds {
        StreamFds::Pipes {
            stdin,
            stdout,
            stderr,
        } => {
            for (channel, fd) in [(STDOUT, stdout), (STDERR, stderr)] {
                if let Some(fd) = fd {
                    let reader = pipe::Receiver::from_owned_fd(fd)?;
                    outputs.push(tokio::spawn(relay(reader, channel, tx.clone())));
                }
            }
            let stdin = stdin.map(pipe::Sender::from_owned_fd).transpose()?;
            Ok((Input::Pipe(stdin), outputs))
        }
        StreamFds::Pty(master) => {
            let reader = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
            let writer = tokio::fs::File::from_std(std::fs::File::from(master.try_clone()?));
            outputs.push(tokio::spawn(relay(reader, STDOUT, tx.clone())));
            Ok((
                Input::Pty {
                    writer: Some(writer),
                    master,
                },
                outputs,
            ))
        }
    }
}

/// Copies `from` to `channel` until EOF (a pty master's EIO once the command's side closed).
async fn relay(mut from: impl AsyncRead + Unpin, channel: u8, tx: mpsc::Sender<Message>) {
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if tx.send(frame(channel, &buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// One client message.
async fn on_input(input: &mut Input, data: &[u8], stream_close: bool) {
    let Some((&channel, payload)) = data.split_first() else {
        return;
    };
    match (channel, input) {
        (CLOSE, input) if stream_close && payload.first() == Some(&STDIN) => match input {
            Input::Pipe(stdin) => *stdin = None,
            Input::Pty { writer, .. } => *writer = None,
        },
        (STDIN, Input::Pipe(Some(stdin))) => {
            let _ = stdin.write_all(payload).await;
        }
        (
            STDIN,
            Input::Pty {
                writer: Some(writer),
                ..
            },
        ) => {
            let _ = writer.write_all(payload).await;
            let _ = writer.flush().await;
        }
        (RESIZE, Input::Pty { master, .. }) => {
            if let Some(size) = resize(payload) {
                if let Err(e) = rustix::termios::tcsetwinsize(&*master, size) {
                    tracing::debug!(error = %e, "exec resize");
                }
            }
        }
        _ => {}
    }
}

/// A resize message `{"Width":80,"Height":24}`.
pub fn resize(payload: &[u8]) -> Option<rustix::termios::Winsize> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "PascalCase")]
    struct Size {
        width: u16,
        height: u16,
    }
    let size: Size = serde_json::from_slice(payload).ok()?;
    Some(rustix::termios::Winsize {
        ws_row: size.height,
        ws_col: size.width,
        ws_xpixel: 0,
        ws_ypixel: 0,
    })
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

/// The `Status` kubelet writes on channel 3 when the command ends.
pub fn status(end: &StreamEnd, command: &[String]) -> Vec<u8> {
    let value = match end {
        StreamEnd::Exited(0) => json!({"metadata": {}, "status": "Success"}),
        StreamEnd::Exited(code) => json!({
            "metadata": {},
            "status": "Failure",
            "message": format!(
                "command terminated with non-zero exit code: error executing command {command:?}, exit code {code}"
            ),
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": code.to_string()}]},
        }),
        StreamEnd::NotStarted(why) => {
            let error = format!(
                "error executing command in container: failed to exec in container: unable to start container process: {why}"
            );
            json!({
                "metadata": {},
                "status": "Failure",
                "message": format!("Internal error occurred: {error}"),
                "reason": "InternalError",
                "details": {"causes": [{"message": error}]},
                "code": 500,
            })
        }
    };
    serde_json::to_vec(&value).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_code_is_a_cause() {
        let s: serde_json::Value =
            serde_json::from_slice(&status(&StreamEnd::Exited(3), &["sh".into()])).expect("json");
        assert_eq!(s["reason"], "NonZeroExitCode");
        assert_eq!(s["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(s["details"]["causes"][0]["message"], "3");
        let ok: serde_json::Value =
            serde_json::from_slice(&status(&StreamEnd::Exited(0), &[])).expect("json");
        assert_eq!(ok["status"], "Success");
        let size = resize(br#"{"Width":80,"Height":24}"#).expect("a size");
        assert_eq!((size.ws_col, size.ws_row), (80, 24));
    }
}
