//! Tests of the real `rivulet` binary, run as a child process on 127.0.0.1 port 0.

#![expect(
    clippy::unwrap_used,
    reason = "helpers shared by the tests panic on any unexpected failure, like the tests"
)]

mod bad_input;
mod cli_command;
mod cli_errors;
mod cli_produce_consume;
mod cli_topic;
mod crash_loop;
mod file_damage;
mod group_members;
mod harness;
mod many_clients;
mod python_client;
mod restart;
mod scenarios;
