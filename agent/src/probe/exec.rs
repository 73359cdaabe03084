//! exec probes: the command runs inside the container (its namespaces, cgroup and identity),
//! forked by the exec spawner ([`super::spawner`]), which kills it at the probe's timeout.
//! Exit status 0 passes.

use std::path::PathBuf;
use std::time::Duration;

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
    let reply = super::spawner::spawner()
        .run(&t.init_exe, spec, timeout)
        .await?;
    match reply.code {
        0 => Ok(()),
        124 => Err(format!(
            "command {command:?} timed out after {}s",
            timeout.as_secs_f64()
        )),
        code => {
            let mut text = reply.output;
            text.truncate(MAX_OUTPUT);
            Err(format!(
                "command {command:?} exited with {code}: {}",
                text.trim()
            ))
        }
    }
}
