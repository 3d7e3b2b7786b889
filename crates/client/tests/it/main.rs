//! End-to-end tests of the client against an in-process server on 127.0.0.1, port 0.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests panic on any unexpected failure, like the tests"
)]

mod admin;
mod bc12;
mod consumer;
mod groups;
mod harness;
mod producer;
