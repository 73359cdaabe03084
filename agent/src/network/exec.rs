//! Executing one CNI plugin per the spec: `CNI_*` environment, config on stdin, result or
//! error object on stdout, bounded by a timeout (the plugin is killed when it expires).
//! Knows nothing of conflists or caches; never interprets a result beyond parsing it.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::Value;

use super::NetworkError;

/// The per-invocation environment (attachment fields empty for GC/STATUS).
#[derive(Debug, Clone, Default)]
pub struct PluginEnv<'a> {
    pub container_id: &'a str,
    pub netns: Option<&'a Path>,
    pub ifname: &'a str,
    pub args: &'a str,
}

/// Where plugin `name` lives: the first of `dirs` holding an executable by that name.
pub fn find_plugin(name: &str, dirs: &[PathBuf]) -> Result<PathBuf, NetworkError> {
    if name.is_empty() || name.contains('/') || name.starts_with('.') {
        return Err(NetworkError::Field {
            field: "plugins[].type",
            message: format!("{name:?} is not a plugin name"),
        });
    }
    dirs.iter()
        .map(|d| d.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| NetworkError::PluginNotFound {
            plugin: name.to_owned(),
            dirs: dirs.to_vec(),
        })
}

/// Runs plugin `path` with `command` (ADD, DEL, ...) and `stdin`; returns its parsed stdout
/// (`None` when empty). A non-zero exit becomes [`NetworkError::Plugin`] with the spec error.
pub fn exec_plugin(
    path: &Path,
    command: &'static str,
    env: &PluginEnv<'_>,
    bin_dirs: &[PathBuf],
    stdin: Vec<u8>,
    timeout: Duration,
) -> Result<Option<Value>, NetworkError> {
    let plugin = path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    );
    let cni_path = std::env::join_paths(bin_dirs).unwrap_or_default();
    let mut cmd = Command::new(path);
    cmd.env_clear()
        .env(
            "PATH",
            std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()),
        )
        .env("CNI_COMMAND", command)
        .env("CNI_PATH", cni_path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if !env.container_id.is_empty() {
        cmd.env("CNI_CONTAINERID", env.container_id)
            .env("CNI_IFNAME", env.ifname)
            .env("CNI_ARGS", env.args);
    }
    if let Some(ns) = env.netns {
        cmd.env("CNI_NETNS", ns);
    }
    let exec_err = |source| NetworkError::Exec {
        plugin: plugin.clone(),
        command,
        source,
    };
    let mut child = cmd.spawn().map_err(exec_err)?;
    let (Some(mut child_in), Some(mut child_out), Some(child_err)) =
        (child.stdin.take(), child.stdout.take(), child.stderr.take())
    else {
        let _ = child.kill();
        let _ = child.wait();
        return Err(exec_err(std::io::Error::other("stdio pipes missing")));
    };
    let writer = std::thread::spawn(move || {
        let _ = child_in.write_all(&stdin);
    });
    let err_reader = std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = child_err.take(64 << 10).read_to_end(&mut buf);
        buf
    });
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let r = child_out.read_to_end(&mut buf).map(|_| buf);
        let _ = tx.send(r);
    });
    let stdout = match rx.recv_timeout(timeout) {
        Ok(r) => r.map_err(exec_err)?,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            return Err(NetworkError::Timeout {
                plugin,
                command,
                after: timeout,
            });
        }
    };
    let status = child.wait().map_err(exec_err)?;
    let _ = writer.join();
    let stderr = err_reader.join().unwrap_or_default();
    let parsed: Option<Value> = if stdout.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        Some(
            serde_json::from_slice(&stdout).map_err(|e| NetworkError::Output {
                plugin: plugin.clone(),
                command,
                message: format!("{e}: {}", String::from_utf8_lossy(&stdout)),
            })?,
        )
    };
    if status.success() {
        return Ok(parsed);
    }
    let field = |k: &str| {
        parsed
            .as_ref()
            .and_then(|v| v.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let mut details = field("details");
    if parsed.is_none() {
        details = String::from_utf8_lossy(&stderr).trim().to_owned();
    }
    Err(NetworkError::Plugin {
        code: parsed
            .as_ref()
            .and_then(|v| v.get("code"))
            .and_then(Value::as_u64)
            .unwrap_or(0),
        msg: if parsed.is_some() {
            field("msg")
        } else {
            status.to_string()
        },
        details,
        plugin,
        command,
    })
}
