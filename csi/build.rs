//! Generates the CSI messages, clients and servers from `proto/csi.proto` (needs protoc, which
//! `cargo xtask setup` installs from Debian's protobuf-compiler).

fn main() -> std::io::Result<()> {
    println!("cargo:rerun-if-changed=proto/csi.proto");
    tonic_prost_build::configure()
        .generate_default_stubs(true)
        .compile_protos(&["proto/csi.proto"], &["proto"])
}
