//! Compiles `proto/` with protox (pure Rust, no system `protoc`) and generates the tonic/prost code.
//! The encoded descriptor set is written to `OUT_DIR` so the server can offer reflection.

use std::{env, path::PathBuf};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let files = [
        "proto/pns/v1/common.proto",
        "proto/pns/v1/binding.proto",
        "proto/pns/v1/pool.proto",
        "proto/pns/v1/call.proto",
    ];
    let fds = protox::compile(files, ["proto"])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    std::fs::write(
        out.join("pns_descriptor.bin"),
        prost::Message::encode_to_vec(&fds),
    )?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(fds)?;
    Ok(())
}
