//! `GET|POST /attach/{ns}/{pod}/{container}?output=1&error=1&input=1&tty=1`: kubelet's attach
//! endpoint over the same WebSocket channel protocol as exec (`v5.channel.k8s.io`/`v4`).
//! What the container writes from now on — the new records of its log file — goes out on
//! channel 1 (stdout) or 2 (stderr; a terminal's output is all stdout). With `input=1`, channel
//! 0 goes to the container's stdin (a `stdin: true` container's FIFO, a `tty: true`
//! container's terminal, see `pod::container_stdin`) and channel 4 sets the terminal's size; a
//! container without stdin has its input read and dropped, as kubelet does. The end of the
//! session (the client gone, or its v5 close of stdin) closes a `stdinOnce` container's stdin.
//! When the container stops, kubelet's Success `Status` is sent on channel 3 and the WebSocket
//! closed; a client that goes away ends the session.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::WebSocketStream;

use super::container_logs::{find_container, pick, still_running};
use super::log_stream::{lines, read_complete, record_text, StillRunning};
use super::{exec, text, Body, KubeletApi};
use crate::pod::{ContainerState, ContainerStdin};
use crate::runtime::exec_stream::StreamEnd;

/// How often the log file is read for new output.
const POLL: Duration = Duration::from_millis(100);
/// How many polls in a row must find the container stopped before the session ends (a
/// status being replaced is not the container's end).
const STOPPED_POLLS: u32 = 5;

const STDOUT: u8 = 1;
const STDERR: u8 = 2;
const ERROR: u8 = 3;
const STDIN: u8 = 0;
const RESIZE: u8 = 4;
/// v5: `[CLOSE, channel]` closes that channel.
const CLOSE: u8 = 255;

/// Which streams the client wants (kubelet's `input`/`output`/`error`; with `tty` there is no
/// separate stderr).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Wanted {
    stdin: bool,
    stdout: bool,
    stderr: bool,
}

fn parse(query: &str) -> Result<Wanted, String> {
    let (mut stdin, mut stdout, mut stderr, mut tty) = (false, false, false, false);
    for (key, value) in form_urlencoded::parse(query.as_bytes()) {
        let on = value == "1";
        match key.as_ref() {
            "input" => stdin = on,
            "output" => stdout = on,
            "error" => stderr = on,
            "tty" => tty = on,
            _ => {}
        }
    }
    if !stdin && !stdout && !stderr {
        return Err("you must specify at least 1 of stdin, stdout, stderr".to_owned());
    }
    Ok(Wanted {
        stdin,
        stdout,
        stderr: stderr && !tty,
    })
}

/// Answers one attach request: an error, or 101 with the session in the background.
pub fn respond(
    api: &KubeletApi,
    mut req: Request<Incoming>,
    ns: &str,
    pod: &str,
    container: &str,
) -> Response<Body> {
    let wanted = match parse(req.uri().query().unwrap_or("")) {
        Ok(w) => w,
        Err(e) => return text(StatusCode::BAD_REQUEST, &e),
    };
    let statuses = (api.statuses)();
    let Some(status) = statuses.iter().find(|p| p.namespace == ns && p.name == pod) else {
        return text(StatusCode::NOT_FOUND, "pod does not exist");
    };
    let running = find_container(status, container)
        .filter(|c| matches!(c.state, ContainerState::Running { .. }));
    let Some(c) = running else {
        let message = format!("container not found ({container:?})");
        return text(StatusCode::INTERNAL_SERVER_ERROR, &message);
    };
    let dir = crate::pod::node::log_dir(&api.root, ns, pod, &status.uid).join(container);
    let file = match pick(&dir, c, false) {
        Ok(f) => f,
        Err(why) => return text(StatusCode::BAD_REQUEST, &why.message(container, pod)),
    };
    let Some((key, protocol)) = exec::websocket(req.headers()) else {
        let message = format!(
            "attach needs a WebSocket upgrade with one of the subprotocols {:?} (SPDY is not served)",
            exec::PROTOCOLS
        );
        return text(StatusCode::BAD_REQUEST, &message);
    };
    let alive = still_running(
        api.statuses.clone(),
        status.uid.clone(),
        container.to_owned(),
        c.restart_count,
    );
    // Output from now on: start after the last complete record already written.
    let (_, from) = read_complete(&file, 0);
    let input = Input {
        stdin: wanted
            .stdin
            .then(|| api.stdins.get(&status.uid, container))
            .flatten(),
        stream_close: protocol == exec::PROTOCOLS[0],
    };
    let upgrade = hyper::upgrade::on(&mut req);
    tokio::spawn(session(upgrade, file, from, wanted, alive, input));
    exec::switching(&key, protocol)
}

/// Where the client's channel 0 and 4 go.
struct Input {
    stdin: Option<Arc<ContainerStdin>>,
    /// Whether the protocol has the close signal (v5).
    stream_close: bool,
}

impl Input {
    /// Reads the client until it goes; its input goes to the container's stdin while that
    /// is open, and a `stdinOnce` stdin is closed at the end.
    async fn relay<S>(self, mut stream: S)
    where
        S: futures::Stream<Item = Result<Message, tokio_tungstenite::tungstenite::Error>> + Unpin,
    {
        let mut open = self.stdin.is_some();
        while let Some(message) = stream.next().await {
            let data = match message {
                Ok(Message::Binary(data)) => data,
                Ok(Message::Close(_)) => break,
                Ok(_) => continue,
                Err(e) => {
                    tracing::debug!(error = %e, "attach: reading the client");
                    break;
                }
            };
            let (Some(stdin), Some((&channel, payload))) = (&self.stdin, data.split_first()) else {
                continue;
            };
            match channel {
                STDIN if open => open = stdin.write(payload).await,
                RESIZE => {
                    if let Some(size) = exec::session::resize(payload) {
                        stdin.resize(size);
                    }
                }
                CLOSE if self.stream_close && payload.first() == Some(&STDIN) => {
                    open = false;
                    if stdin.once() {
                        stdin.close().await;
                    }
                }
                _ => {}
            }
        }
        if let Some(stdin) = self.stdin.filter(|s| s.once()) {
            stdin.close().await;
        }
    }
}

async fn session(
    upgrade: OnUpgrade,
    file: PathBuf,
    mut pos: u64,
    wanted: Wanted,
    alive: StillRunning,
    input: Input,
) {
    let upgraded = match upgrade.await {
        Ok(u) => u,
        Err(e) => {
            tracing::debug!(error = %e, "attach upgrade");
            return;
        }
    };
    let ws = WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, None).await;
    let (mut sink, stream) = ws.split();
    let client_gone = input.relay(stream);
    let relay = async move {
        // After the container stopped, one more read picks up what its log copier drained.
        let mut last_round = false;
        let mut stopped = 0;
        loop {
            let (data, next) = read_complete(&file, pos);
            pos = next;
            for line in lines(&data) {
                let Some((stderr, text)) = record_text(line) else {
                    continue;
                };
                let channel = match stderr {
                    true if wanted.stderr => STDERR,
                    false if wanted.stdout => STDOUT,
                    _ => continue,
                };
                if sink.send(frame(channel, &text)).await.is_err() {
                    return;
                }
            }
            if last_round {
                break;
            }
            stopped = match alive() {
                true => 0,
                false => stopped + 1,
            };
            last_round = stopped >= STOPPED_POLLS;
            if !last_round {
                tokio::time::sleep(POLL).await;
            }
        }
        let status = exec::session::status(&StreamEnd::Exited(0), &[]);
        let _ = sink.send(frame(ERROR, &status)).await;
        let normal = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = sink.send(Message::Close(Some(normal))).await;
        let _ = sink.close().await;
    };
    tokio::select! {
        () = client_gone => tracing::debug!("attach: the client is gone"),
        () = relay => tracing::debug!("attach: the container stopped"),
    }
}

fn frame(channel: u8, data: &[u8]) -> Message {
    let mut bytes = Vec::with_capacity(data.len() + 1);
    bytes.push(channel);
    bytes.extend_from_slice(data);
    Message::Binary(Bytes::from(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kubelets_stream_options() {
        assert_eq!(
            parse("output=1&error=1"),
            Ok(Wanted {
                stdin: false,
                stdout: true,
                stderr: true
            })
        );
        assert_eq!(
            parse("input=1&output=1&error=1&tty=1"),
            Ok(Wanted {
                stdin: true,
                stdout: true,
                stderr: false
            })
        );
        assert!(parse("").is_err());
    }
}
