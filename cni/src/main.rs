//! The `bosun-cni` executable: environment and stdin in, a result or a CNI error object on
//! stdout, exit status 0 or 1. All logic lives in the library; a panic is still reported as a
//! spec error rather than a crash.

#![forbid(unsafe_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::process::ExitCode;

/// Configs larger than this are refused (a CNI config is a few KiB).
const MAX_STDIN: u64 = 16 << 20;

fn main() -> ExitCode {
    let vars: HashMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    let mut stdin = Vec::new();
    let read = std::io::stdin().take(MAX_STDIN).read_to_end(&mut stdin);
    let outcome = match read {
        Err(e) => Err(bosun_cni::CniError::new(
            bosun_cni::spec::code::IO_FAILURE,
            "reading stdin",
            e.to_string(),
        )
        .to_json(bosun_cni::spec::LATEST_VERSION)),
        Ok(_) => std::panic::catch_unwind(|| bosun_cni::run(&vars, &stdin))
            .unwrap_or_else(|_| Err(bosun_cni::plugin::internal_error("panic"))),
    };
    let (out, status) = match outcome {
        Ok(Some(v)) => (Some(v), ExitCode::SUCCESS),
        Ok(None) => (None, ExitCode::SUCCESS),
        Err(v) => (Some(v), ExitCode::FAILURE),
    };
    if let Some(v) = out {
        let mut stdout = std::io::stdout().lock();
        let _ = writeln!(stdout, "{v}");
    }
    status
}
