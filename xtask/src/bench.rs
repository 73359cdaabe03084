//! `cargo xtask bench NAME`: installs what the benchmarks need (`setup`), then runs the
//! `bosun-bench` binary, which holds every benchmark. The benchmarks are a crate of their own
//! because they link the eBPF loader, whose build needs clang (DESIGN.md §4a).

use anyhow::Result;

use crate::{setup, util};

/// Runs benchmark `name` through `cargo run -p bosun-bench`.
pub fn run(name: &str, quick: bool, services: &[u32]) -> Result<()> {
    setup::run()?;
    util::run(&mut command(name, quick, services))
}

fn command(name: &str, quick: bool, services: &[u32]) -> std::process::Command {
    let mut command = util::cargo();
    command.current_dir(util::workspace_root()).args([
        "run",
        "--quiet",
        "-p",
        "bosun-bench",
        "--",
        name,
    ]);
    if quick {
        command.arg("--quick");
    }
    if !services.is_empty() {
        let list: Vec<String> = services.iter().map(u32::to_string).collect();
        command.arg("--services").arg(list.join(","));
    }
    command
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bench_runs_the_bench_crate_with_its_options() {
        let line = util::display(&command("routing", true, &[1, 1000]));
        assert!(
            line.ends_with("run --quiet -p bosun-bench -- routing --quick --services 1,1000"),
            "{line}"
        );
        let line = util::display(&command("pods", false, &[]));
        assert!(line.ends_with("-p bosun-bench -- pods"), "{line}");
    }
}
