//! bosun's own CNI plugin run inside the agent: the library code the `bosun-cni` executable
//! runs (`bosun_cni::run`), with the same `CNI_*` variables and the same config on stdin, on a
//! thread of its own (in the caller's network namespace, outside any async runtime) instead of
//! a process: a fork, an exec and a dynamic link per pod were a tenth of a node's CPU while a
//! thousand pods started. The executable must still be installed in a CNI bin dir (the agent
//! finds it there first), so the same conflist works for any other CNI runtime; other plugins
//! of a chain always run as processes. At most [`MAX_RUNNING`] run at once: the kernel
//! serialises their netlink work anyway, and each holds buffers the agent's allocator would
//! keep after a burst of a thousand.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::{Condvar, Mutex, PoisonError};

use serde_json::Value;

use super::exec::PluginEnv;
use super::NetworkError;

/// The plugin type the agent runs in its own process.
pub const NAME: &str = "bosun-cni";

/// How many invocations run at once; the others wait for a turn.
pub const MAX_RUNNING: usize = 4;

static RUNNING: Mutex<usize> = Mutex::new(0);
static TURN: Condvar = Condvar::new();

/// One of the [`MAX_RUNNING`] turns, given back on drop.
struct Turn;

impl Turn {
    fn take() -> Turn {
        let mut running = RUNNING.lock().unwrap_or_else(PoisonError::into_inner);
        while *running >= MAX_RUNNING {
            running = TURN.wait(running).unwrap_or_else(PoisonError::into_inner);
        }
        *running += 1;
        Turn
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        *RUNNING.lock().unwrap_or_else(PoisonError::into_inner) -= 1;
        TURN.notify_one();
    }
}

/// Runs `command` of bosun-cni as the executable would; its spec error object becomes
/// [`NetworkError::Plugin`] as a non-zero exit would.
pub fn run(
    command: &'static str,
    env: &PluginEnv<'_>,
    cni_path: &OsStr,
    stdin: &[u8],
) -> Result<Option<Value>, NetworkError> {
    let mut vars: HashMap<String, String> = HashMap::new();
    vars.insert("CNI_COMMAND".into(), command.into());
    vars.insert("CNI_PATH".into(), cni_path.to_string_lossy().into_owned());
    if !env.container_id.is_empty() {
        vars.insert("CNI_CONTAINERID".into(), env.container_id.into());
        vars.insert("CNI_IFNAME".into(), env.ifname.into());
        vars.insert("CNI_ARGS".into(), env.args.into());
    }
    if let Some(ns) = env.netns {
        vars.insert("CNI_NETNS".into(), ns.to_string_lossy().into_owned());
    }
    let _turn = Turn::take();
    let outcome = std::thread::scope(|scope| {
        scope
            .spawn(|| bosun_cni::run(&vars, stdin))
            .join()
            .unwrap_or_else(|_| Err(bosun_cni::plugin::internal_error("panic")))
    });
    outcome.map_err(|error| {
        let field = |k: &str| error[k].as_str().unwrap_or_default().to_owned();
        NetworkError::Plugin {
            plugin: NAME.into(),
            command,
            code: error["code"].as_u64().unwrap_or(0),
            msg: field("msg"),
            details: field("details"),
        }
    })
}
