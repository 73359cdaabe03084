//! `cargo xtask test`: the one command that checks the whole workspace (README, CI).
//!
//! Steps, in order, stopping at the first failure: rustfmt check, clippy with warnings as
//! errors, the test images, then `cargo test --workspace` with `BOSUN_TEST_IMAGES` pointing
//! at them. Runs as root only, because the kernel integration tests need it. It never edits
//! sources (no `cargo fmt` without `--check`).

use std::process::Command;
use std::time::Duration;

use anyhow::{bail, Context, Result};

use crate::{images, util};

/// Environment variable through which tests find the images of `cargo xtask images`.
pub const IMAGES_ENV: &str = "BOSUN_TEST_IMAGES";

/// Runs the test verb; `cargo_test_args` are appended to `cargo test --workspace`.
pub fn run(cargo_test_args: &[String]) -> Result<()> {
    if !util::is_root() {
        bail!("cargo xtask test must run as root: the integration tests create namespaces, cgroups and BPF programs");
    }
    let root = util::workspace_root();
    let mut times = Vec::new();

    step(&mut times, "fmt", || util::run(&mut fmt_check()))?;
    step(&mut times, "clippy", || util::run(&mut clippy()))?;
    let images_dir = step(&mut times, "images", || images::run(false))?;
    step(&mut times, "test", || {
        util::run(cargo_test(cargo_test_args).env(IMAGES_ENV, &images_dir))
    })?;

    println!("\nxtask test: all steps passed in {}", root.display());
    for (name, elapsed) in &times {
        println!("  {name:<8} {:>8.1}s", elapsed.as_secs_f64());
    }
    Ok(())
}

/// Runs one named step, records its wall time, and labels its failure.
fn step<T>(
    times: &mut Vec<(&'static str, Duration)>,
    name: &'static str,
    f: impl FnOnce() -> Result<T>,
) -> Result<T> {
    println!("\n==> xtask test: {name}");
    let (result, elapsed) = util::timed(f);
    println!("<== {name}: {:.1}s", elapsed.as_secs_f64());
    times.push((name, elapsed));
    result.with_context(|| format!("xtask test: step `{name}` failed"))
}

fn workspace_cargo() -> Command {
    let mut command = util::cargo();
    command.current_dir(util::workspace_root());
    command
}

fn fmt_check() -> Command {
    let mut command = workspace_cargo();
    command.args(["fmt", "--all", "--", "--check"]);
    command
}

fn clippy() -> Command {
    let mut command = workspace_cargo();
    command.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    command
}

fn cargo_test(extra: &[String]) -> Command {
    let mut command = workspace_cargo();
    command.args(["test", "--workspace"]).args(extra);
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_run_the_documented_cargo_commands() {
        assert!(util::display(&fmt_check()).ends_with("fmt --all -- --check"));
        assert!(
            util::display(&clippy()).ends_with("clippy --workspace --all-targets -- -D warnings")
        );
        let extra = [
            "-p".to_owned(),
            "agent".to_owned(),
            "--".to_owned(),
            "--nocapture".to_owned(),
        ];
        assert!(util::display(&cargo_test(&extra))
            .ends_with("test --workspace -p agent -- --nocapture"));
    }
}
