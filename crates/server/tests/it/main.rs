//! End-to-end tests of the gRPC server: a real tonic server on 127.0.0.1 port 0, real clients,
//! a broker in a temporary directory.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests panic on any unexpected failure, like the tests"
)]

mod bc_14;
mod data_path;
mod errors;
mod groups;
mod harness;
mod streams;
