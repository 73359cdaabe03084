//! `cargo xtask fuzz [--secs N] [--seed S]`: runs the API body fuzzer
//! (`control/tests/fuzz_api.rs`) for N seconds instead of its fixed CI count, keeping every
//! input with a new kind of answer in `control/fuzz/corpus/` (commit the ones worth keeping).

use anyhow::Result;

use crate::util;

pub fn run(secs: u64, seed: Option<u64>) -> Result<()> {
    let mut command = util::cargo();
    command
        .current_dir(util::workspace_root())
        .args(["test", "-p", "bosun-control", "--test", "fuzz_api"])
        .args(["--", "--nocapture"])
        .env("BOSUN_FUZZ_SECS", secs.to_string());
    if let Some(seed) = seed {
        command.env("BOSUN_FUZZ_SEED", seed.to_string());
    }
    util::run(&mut command)
}
