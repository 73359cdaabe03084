//! `bosun-agent`: the node agent's command line. Parses flags, then hands over to the library:
//! the daemon (`--manifests DIR`), one foreground pod (`run`), image store commands, and the
//! client commands (`ps`, `logs`). The hidden `__container-init` (container intermediate) and
//! `__exec` (exec helper) must be dispatched before any thread exists.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    match std::env::args().nth(1).as_deref() {
        Some("__container-init") => bosun_agent::runtime::init::container_init_main(),
        Some("__exec") => bosun_agent::runtime::exec::exec_main(),
        Some("__spawner") => bosun_agent::runtime::exec_spawner::spawner_main(),
        Some("__pod-init") => bosun_agent::runtime::pod_init::pod_init_main(),
        _ => {}
    }
    let args = cli::Args::parse();
    cli::init_tracing(&args.log_level);
    match cli::dispatch(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}
