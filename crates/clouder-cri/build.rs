//! Generates the CRI v1 client from cri-api's api.proto. protox parses it in Rust, so no protoc is needed.
fn main() {
    let proto = "proto/api.proto";
    println!("cargo:rerun-if-changed={proto}");
    let descriptors = protox::compile([proto], ["proto"]).expect("compile api.proto");
    tonic_prost_build::configure()
        .build_server(false)
        .compile_fds(descriptors)
        .expect("generate the CRI client");
}
