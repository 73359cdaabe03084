//! The agent's local API on `<run-dir>/agent.sock`: one JSON request line, one JSON response
//! line. Serves `ps` (pod statuses). Clients are the `bosun-agent` subcommands on this node.

use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixListener;

use super::PodTable;
use crate::accept::AcceptBackoff;
use crate::pod::PodStatus;

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "cmd", rename_all = "lowercase")]
pub enum Request {
    Ps,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Response {
    Pods(Vec<PodStatus>),
    Error(String),
}

pub const SOCKET: &str = "agent.sock";

/// Serves requests until the process ends; accept errors (EMFILE) back off instead of spinning.
pub async fn serve(listener: UnixListener, pods: Arc<Mutex<PodTable>>) {
    let mut backoff = AcceptBackoff::new("api");
    loop {
        let (stream, _) = backoff.accept(|| listener.accept()).await;
        let pods = pods.clone();
        tokio::spawn(async move {
            let (read, mut write) = stream.into_split();
            let mut line = String::new();
            let mut reader = BufReader::new(read);
            if reader.read_line(&mut line).await.is_err() {
                return;
            }
            let resp = match serde_json::from_str::<Request>(&line) {
                Ok(Request::Ps) => {
                    let table = pods.lock().unwrap_or_else(|p| p.into_inner());
                    Response::Pods(table.statuses())
                }
                Err(e) => Response::Error(format!("bad request: {e}")),
            };
            if let Ok(mut out) = serde_json::to_vec(&resp) {
                out.push(b'\n');
                let _ = write.write_all(&out).await;
            }
        });
    }
}

/// Sends one request to the agent whose run dir is `run_dir` (blocking client).
pub fn call(run_dir: &Path, req: &Request) -> std::io::Result<Response> {
    use std::io::{BufRead, Write};
    let path = run_dir.join(SOCKET);
    let mut s = std::os::unix::net::UnixStream::connect(&path).map_err(|e| {
        std::io::Error::new(
            e.kind(),
            format!(
                "connecting to the agent at {}: {e} (is `bosun-agent --manifests DIR` running?)",
                path.display()
            ),
        )
    })?;
    let mut line = serde_json::to_vec(req).map_err(std::io::Error::other)?;
    line.push(b'\n');
    s.write_all(&line)?;
    let mut resp = String::new();
    std::io::BufReader::new(s).read_line(&mut resp)?;
    serde_json::from_str(&resp).map_err(std::io::Error::other)
}
