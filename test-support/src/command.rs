//! Running the external commands tests need (`ip`, `nft`, `sysctl`): a fallible runner for
//! benchmarks and a panicking one for tests, both naming the command line and its stderr.

use std::process::{Command, Output, Stdio};

/// A command that could not start or exited non-zero.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    #[error("starting `{line}`: {source}")]
    Start {
        line: String,
        source: std::io::Error,
    },
    #[error("`{line}` failed ({status}): {stderr}")]
    Failed {
        line: String,
        status: std::process::ExitStatus,
        stderr: String,
    },
}

/// Runs `command` quietly (stdin closed) and returns its output if it exits zero.
pub fn try_run(command: &mut Command) -> Result<Output, CommandError> {
    let line = display(command);
    let out = command
        .stdin(Stdio::null())
        .output()
        .map_err(|source| CommandError::Start {
            line: line.clone(),
            source,
        })?;
    if !out.status.success() {
        return Err(CommandError::Failed {
            line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out)
}

/// Runs `program args…`; panics with the command line and its stderr when it fails.
pub fn run(program: &str, args: &[&str]) -> Output {
    try_run(Command::new(program).args(args)).unwrap_or_else(|e| panic!("{e}"))
}

fn display(command: &Command) -> String {
    let mut line = command.get_program().to_string_lossy().into_owned();
    for arg in command.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_name_the_command_and_its_stderr() {
        let err = try_run(Command::new("sh").args(["-c", "echo oops >&2; exit 3"]))
            .expect_err("exit 3 is a failure");
        let text = err.to_string();
        assert!(
            text.contains("`sh -c echo oops >&2; exit 3` failed"),
            "{text}"
        );
        assert!(text.contains("oops"), "{text}");
        let err = try_run(&mut Command::new("/nonexistent/program")).expect_err("cannot start");
        assert!(err
            .to_string()
            .starts_with("starting `/nonexistent/program`"));
    }

    #[test]
    fn success_returns_stdout() {
        assert_eq!(run("echo", &["hi"]).stdout, b"hi\n");
    }
}
