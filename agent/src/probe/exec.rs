//! exec probes: the command runs inside the container (its namespaces, cgroup and identity)
//! through the `__exec` helper; the timeout is enforced by killing the helper, which takes the
//! command with it. Exit status 0 passes.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;

use crate::runtime::exec::ExecSpec;
use crate::runtime::ProcessSpec;

/// What an exec probe needs to enter a container.
#[derive(Debug, Clone)]
pub struct ExecTarget {
    pub init_exe: PathBuf,
    pub pid: i32,
    /// cgroup v1 `tasks` files to join and the v2 directory to fork into.
    pub cgroup_tasks: Vec<PathBuf>,
    pub cgroup_v2_dir: Option<PathBuf>,
    /// The container's process identity (env, cwd, uid, capabilities); argv is replaced.
    pub process: ProcessSpec,
}

/// Most output kept in a failure message.
const MAX_OUTPUT: usize = 1024;

pub async fn exec_probe(
    t: &ExecTarget,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    let spec = ExecSpec {
        pid: t.pid,
        cgroup_tasks: t.cgroup_tasks.clone(),
        cgroup_v2_dir: t.cgroup_v2_dir.clone(),
        process: ProcessSpec {
            argv: command.to_vec(),
            ..t.process.clone()
        },
    };
    let payload = serde_json::to_vec(&spec).map_err(|e| format!("encoding exec spec: {e}"))?;
    let mut child = tokio::process::Command::new(&t.init_exe)
        .arg("__exec")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env_clear()
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("starting exec helper: {e}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(&payload)
            .await
            .map_err(|e| format!("sending exec spec: {e}"))?;
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!(
            "command {command:?} timed out after {}s",
            timeout.as_secs_f64()
        )),
        Ok(Err(e)) => Err(format!("waiting for exec helper: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
            text.push_str(&String::from_utf8_lossy(&out.stderr));
            text.truncate(MAX_OUTPUT);
            let code = out.status.code().unwrap_or(-1);
            Err(format!(
                "command {command:?} exited with {code}: {}",
                text.trim()
            ))
        }
    }
}
