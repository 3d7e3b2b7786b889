//! Compiles `proto/rivulet/v1/*.proto` with protox (a protobuf compiler written in Rust, so no
//! system `protoc` is needed), writes the encoded descriptor set for server reflection, and
//! generates prost messages and tonic stubs from it.

use std::path::PathBuf;

const PROTO_ROOT: &str = "../../proto";
const FILES: &[&str] = &[
    "rivulet/v1/records.proto",
    "rivulet/v1/log.proto",
    "rivulet/v1/admin.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    for file in FILES {
        println!("cargo:rerun-if-changed={PROTO_ROOT}/{file}");
    }

    let mut compiler = protox::Compiler::new([PROTO_ROOT])?;
    compiler.include_source_info(true).include_imports(true);
    compiler.open_files(FILES)?;
    std::fs::write(
        out_dir.join("rivulet_descriptor.bin"),
        compiler.encode_file_descriptor_set(),
    )?;

    tonic_prost_build::configure()
        .bytes(".")
        .build_client(true)
        .build_server(true)
        .emit_rerun_if_changed(false)
        .compile_fds(compiler.file_descriptor_set())?;
    Ok(())
}
