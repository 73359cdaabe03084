//! `bosun-test-client [--cgroup DIR] [--netns FILE] MODE TARGET COUNT BIND_BASE PAUSE_MS`:
//! the load-balancing tests' client process (see `bosun_test_support::client`). It joins the
//! cgroup first, then the netns, then runs the plan and prints one `CLIENT …` line per attempt.

use std::process::ExitCode;

use bosun_test_support::client::{run_plan, Plan};
use nix::sched::{setns, CloneFlags};

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bosun-test-client: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(mut args: Vec<String>) -> Result<(), String> {
    let cgroup = take_flag(&mut args, "--cgroup")?;
    let netns = take_flag(&mut args, "--netns")?;
    let plan = Plan::parse(&args)?;
    if let Some(dir) = cgroup {
        let procs = std::path::Path::new(&dir).join("cgroup.procs");
        std::fs::write(&procs, "0").map_err(|e| format!("joining {}: {e}", procs.display()))?;
    }
    if let Some(path) = netns {
        let file = std::fs::File::open(&path).map_err(|e| format!("opening {path}: {e}"))?;
        // Single-threaded here, so entering the netns moves the whole process.
        setns(&file, CloneFlags::CLONE_NEWNET).map_err(|e| format!("entering {path}: {e}"))?;
    }
    run_plan(&plan);
    Ok(())
}

/// Removes `flag VALUE` from `args` and returns the value.
fn take_flag(args: &mut Vec<String>, flag: &str) -> Result<Option<String>, String> {
    let Some(at) = args.iter().position(|a| a == flag) else {
        return Ok(None);
    };
    if at + 1 >= args.len() {
        return Err(format!("{flag} needs a value"));
    }
    let value = args.remove(at + 1);
    args.remove(at);
    Ok(Some(value))
}
