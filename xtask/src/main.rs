//! `cargo xtask`: every bosun build step that cargo alone cannot do.
//!
//! `up`/`down` start and remove a small cluster (bosun-control and N agents in netns) running
//! a demo Deployment behind a Service (the README's first command), `setup` installs the machine's prerequisites, `images` builds the OCI test images,
//! `test` runs the whole check (fmt, clippy, images, tests) and `bench` runs a benchmark (the
//! `bosun-bench` crate, built only after `setup`).
//! This file only parses the command line and dispatches; each verb lives in its module.
//!
//! Building xtask must never need anything `setup` installs (clang, libbpf headers, protoc):
//! it depends on no crate of ours that has such a build step. CI builds it with them hidden.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use xtask::{bench, demo, fuzz, images, setup, test, up, up_down};

#[derive(Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "bosun build, test and benchmark tasks"
)]
struct Cli {
    #[command(subcommand)]
    verb: Verb,
}

#[derive(Subcommand)]
enum Verb {
    /// Set up, build, and start a cluster: bosun-control and N agents (each node's network in
    /// netns bosun-up-<n>, on one bridge); apply a Deployment behind a Service and a client,
    /// and show how its requests spread over the pods of every node.
    Up {
        /// How many nodes.
        #[arg(long, default_value_t = up::DEFAULT_NODES)]
        nodes: u8,
    },
    /// Remove everything `up` made: processes, mounts, cgroups, netns, pinned maps, dirs.
    Down,
    /// Set up, build, and run the demo pod (examples/demo-pod.yaml) with bosun-agent.
    Demo,
    /// Install missing Debian packages and rustfmt/clippy (idempotent; needs root to install).
    Setup,
    /// Build the OCI test images under target/images/.
    Images {
        /// Rebuild even if the outputs are newer than busybox and xtask.
        #[arg(long)]
        force: bool,
    },
    /// fmt check, clippy, images, then `cargo test --workspace` (as root).
    Test {
        /// Extra arguments for `cargo test`, after `--`.
        #[arg(last = true)]
        cargo_test_args: Vec<String>,
    },
    /// Fuzz the API's body and patch paths for a while; new kinds of answers join the corpus
    /// (control/fuzz/corpus). CI runs the same fuzzer for a fixed number of requests.
    Fuzz {
        /// How long to run.
        #[arg(long, default_value_t = 300)]
        secs: u64,
        /// The random seed (default: fixed, so a run can be repeated).
        #[arg(long)]
        seed: Option<u64>,
    },
    /// Run one benchmark and write target/bench/NAME.json.
    Bench {
        /// The benchmark to run.
        name: String,
        /// Few iterations: a fast check that the benchmark works, not a measurement.
        #[arg(long)]
        quick: bool,
        /// Service counts for benchmarks that scale with them (routing), e.g. 1,1000,10000,50000.
        #[arg(long, value_delimiter = ',')]
        services: Vec<u32>,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.verb {
        Verb::Up { nodes } => up::run(nodes),
        Verb::Down => up_down::run(),
        Verb::Demo => demo::run(),
        Verb::Setup => setup::run(),
        Verb::Images { force } => images::run(force).map(drop),
        Verb::Test { cargo_test_args } => test::run(&cargo_test_args),
        Verb::Fuzz { secs, seed } => fuzz::run(secs, seed),
        Verb::Bench {
            name,
            quick,
            services,
        } => bench::run(&name, quick, &services),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            ExitCode::FAILURE
        }
    }
}
