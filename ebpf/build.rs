//! Builds the eBPF objects with clang (DESIGN.md §4a) so `cargo build` can never forget them,
//! and runs the layout probe whose output `src/layout.rs` checks the Rust mirrors against.

use std::{
    env,
    path::{Path, PathBuf},
    process::Command,
};

fn clang() -> String {
    env::var("BOSUN_CLANG").unwrap_or_else(|_| "clang".to_string())
}

fn run(cmd: &mut Command, what: &str) {
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("{what}: cannot run {cmd:?}: {e} (install clang: `cargo xtask setup`)")
    });
    assert!(status.success(), "{what}: {cmd:?} failed with {status}");
}

fn main() {
    let manifest = PathBuf::from(env::var("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let out = PathBuf::from(env::var("OUT_DIR").expect("OUT_DIR"));
    let include = manifest.join("include");
    let bpf_src = manifest.join("src/bpf");
    for watched in ["include", "src/bpf", "layout", "build.rs"] {
        println!(
            "cargo:rerun-if-changed={}",
            manifest.join(watched).display()
        );
    }
    println!("cargo:rerun-if-env-changed=BOSUN_CLANG");

    compile_bpf(
        &bpf_src.join("sock_lb.c"),
        &include,
        &bpf_src,
        &out.join("sock_lb.o"),
    );
    probe_layout(&manifest.join("layout/layout_probe.c"), &include, &out);
}

fn compile_bpf(source: &Path, include: &Path, lib: &Path, object: &Path) {
    run(
        Command::new(clang())
            .args(["-g", "-O2", "-target", "bpf", "-Wall", "-Werror"])
            .arg("-I")
            .arg(include)
            .arg("-I")
            .arg(lib)
            .arg("-I/usr/include/x86_64-linux-gnu")
            .arg("-c")
            .arg(source)
            .arg("-o")
            .arg(object),
        "compile eBPF",
    );
}

fn probe_layout(source: &Path, include: &Path, out: &Path) {
    let probe = out.join("layout_probe");
    run(
        Command::new(clang())
            .args(["-O0", "-Wall", "-Werror"])
            .arg("-I")
            .arg(include)
            .arg(source)
            .arg("-o")
            .arg(&probe),
        "compile layout probe",
    );
    let output = Command::new(&probe)
        .output()
        .unwrap_or_else(|e| panic!("run layout probe {}: {e}", probe.display()));
    assert!(
        output.status.success(),
        "layout probe failed: {:?}",
        output.status
    );
    std::fs::write(out.join("layout.txt"), &output.stdout)
        .unwrap_or_else(|e| panic!("write layout.txt: {e}"));
}
