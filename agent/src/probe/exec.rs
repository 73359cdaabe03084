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

/// Why a command run in a container did not pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecFailure {
    /// It could not be run.
    Spawn(String),
    /// It was killed at the timeout.
    TimedOut,
    /// It exited with a non-zero code, having printed `output` (at most [`MAX_OUTPUT`]).
    Exited { code: i32, output: String },
}

impl ExecFailure {
    /// The failure as kubelet's exec prober tells it: the command's output (`cat: can't open
    /// '/tmp/healthy': No such file or directory`), or `command "sleep 300" timed out`.
    pub fn probe_text(&self, command: &[String]) -> String {
        match self {
            Self::Spawn(why) => why.clone(),
            Self::TimedOut => format!("command {:?} timed out", command.join(" ")),
            Self::Exited { output, .. } => output.trim_end().to_owned(),
        }
    }

    /// The failure with its exit code and output, as a lifecycle hook's message says it.
    pub fn hook_text(&self, command: &[String], timeout: Duration) -> String {
        match self {
            Self::Spawn(why) => why.clone(),
            Self::TimedOut => format!(
                "command {command:?} timed out after {}s",
                timeout.as_secs_f64()
            ),
            Self::Exited { code, output } => {
                format!("command {command:?} exited with {code}: {}", output.trim())
            }
        }
    }
}

/// An exec probe: the command's verdict, a failure in kubelet's words.
pub async fn exec_probe(
    t: &ExecTarget,
    command: &[String],
    timeout: Duration,
) -> Result<(), String> {
    exec_command(t, command, timeout)
        .await
        .map_err(|failure| failure.probe_text(command))
}

/// Runs `command` in the container, killed at `timeout`: whether it exited 0.
pub async fn exec_command(
    t: &ExecTarget,
    command: &[String],
    timeout: Duration,
) -> Result<(), ExecFailure> {
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
        .await
        .map_err(ExecFailure::Spawn)?;
    match reply.code {
        0 => Ok(()),
        124 => Err(ExecFailure::TimedOut),
        code => {
            let mut output = reply.output;
            // At a character's start: `String::truncate` panics inside one.
            let cut = (0..=MAX_OUTPUT.min(output.len()))
                .rev()
                .find(|i| output.is_char_boundary(*i))
                .unwrap_or(0);
            output.truncate(cut);
            Err(ExecFailure::Exited { code, output })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_failures_read_as_kubelets_and_hook_failures_keep_the_code() {
        let command: Vec<String> = ["cat", "/tmp/healthy"].map(String::from).to_vec();
        let exited = ExecFailure::Exited {
            code: 1,
            output: "cat: can't open '/tmp/healthy': No such file or directory\n".into(),
        };
        assert_eq!(
            exited.probe_text(&command),
            "cat: can't open '/tmp/healthy': No such file or directory"
        );
        assert_eq!(
            ExecFailure::TimedOut.probe_text(&command),
            "command \"cat /tmp/healthy\" timed out"
        );
        assert_eq!(
            exited.hook_text(&command, Duration::from_secs(30)),
            "command [\"cat\", \"/tmp/healthy\"] exited with 1: cat: can't open '/tmp/healthy': No such file or directory"
        );
    }
}
