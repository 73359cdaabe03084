//! The agent's side of the exec spawner (see [`crate::runtime::exec_spawner`]): started on
//! first use, restarted if it dies, one JSON line per exec out and one per result back, matched
//! by id. Many execs may be in flight at once.

use std::collections::HashMap;
use std::path::Path;
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin};
use tokio::sync::oneshot;

use crate::runtime::exec::ExecSpec;
use crate::runtime::exec_spawner::{SpawnReply, SpawnRequest};

type Pending = Arc<Mutex<HashMap<u64, oneshot::Sender<SpawnReply>>>>;

struct Conn {
    stdin: ChildStdin,
    child: Child,
}

/// A handle on the spawner process.
pub struct ExecSpawner {
    conn: tokio::sync::Mutex<Option<Conn>>,
    pending: Pending,
    next: AtomicU64,
}

/// The agent's spawner.
pub fn spawner() -> &'static ExecSpawner {
    static S: OnceLock<ExecSpawner> = OnceLock::new();
    S.get_or_init(|| ExecSpawner {
        conn: tokio::sync::Mutex::new(None),
        pending: Arc::new(Mutex::new(HashMap::new())),
        next: AtomicU64::new(1),
    })
}

impl ExecSpawner {
    /// Runs `spec` in its container; the spawner kills it at `timeout` (reply code 124).
    pub async fn run(
        &self,
        init_exe: &Path,
        spec: ExecSpec,
        timeout: Duration,
    ) -> Result<SpawnReply, String> {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(id, tx);
        let req = SpawnRequest {
            id,
            timeout_ms: timeout.as_millis() as u64,
            spec,
        };
        let mut line =
            serde_json::to_vec(&req).map_err(|e| format!("encoding exec request: {e}"))?;
        line.push(b'\n');
        {
            let mut conn = self.conn.lock().await;
            let alive = conn
                .as_mut()
                .is_some_and(|c| matches!(c.child.try_wait(), Ok(None)));
            if !alive {
                *conn = Some(self.start(init_exe)?);
            }
            let sent = match conn.as_mut() {
                Some(c) => c.stdin.write_all(&line).await,
                None => Err(std::io::Error::other("no spawner")),
            };
            if let Err(e) = sent {
                *conn = None;
                self.lock_pending().remove(&id);
                return Err(format!("exec spawner: {e}"));
            }
        }
        match tokio::time::timeout(timeout + Duration::from_secs(5), rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err("exec spawner exited".into()),
            Err(_) => {
                self.lock_pending().remove(&id);
                Err("exec spawner did not answer".into())
            }
        }
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, oneshot::Sender<SpawnReply>>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn start(&self, init_exe: &Path) -> Result<Conn, String> {
        let mut child = tokio::process::Command::new(init_exe)
            .arg("__spawner")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .env_clear()
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("starting the exec spawner: {e}"))?;
        let stdin = child.stdin.take().ok_or("exec spawner has no stdin")?;
        let stdout = child.stdout.take().ok_or("exec spawner has no stdout")?;
        let pending = self.pending.clone();
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Ok(reply) = serde_json::from_str::<SpawnReply>(&line) else {
                    continue;
                };
                let waiter = pending
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&reply.id);
                if let Some(tx) = waiter {
                    let _ = tx.send(reply);
                }
            }
            // The spawner is gone: fail whatever was waiting on it.
            pending.lock().unwrap_or_else(|p| p.into_inner()).clear();
        });
        tracing::debug!("exec spawner started");
        Ok(Conn { stdin, child })
    }
}
