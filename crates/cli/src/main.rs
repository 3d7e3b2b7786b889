//! The `rivulet` command. Each subcommand lives in its own module with its own arguments and
//! one `run` function; this file only parses the command line, dispatches, and turns the
//! outcome into an exit status.
//!
//! Module map:
//! - `serve`: `rivulet serve`, the server.
//! - `topic`, `produce`, `consume`, `group`: the client commands, over `rivulet-client`.
//! - `connect`: the `--server` flag every client command shares, and the connection.
//! - `topic_config`: the per-topic settings `topic create --config key=value` accepts.
//! - `arg_values`: parsers for sizes, durations and times given on the command line.
//! - `output`: `--output` formats, aligned tables and JSON lines.
//! - `exit`: exit codes and the one-line error report.

mod arg_values;
mod connect;
mod consume;
mod exit;
mod group;
mod output;
mod produce;
mod serve;
mod stop;
mod topic;
mod topic_config;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Rivulet: an append-only, partitioned event log in one binary, spoken to over gRPC.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about)]
#[command(after_help = exit::EXIT_CODES_HELP)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the gRPC API on one address, data in one directory.
    Serve(serve::ServeArgs),
    /// Create, list, describe and delete topics.
    #[command(subcommand)]
    Topic(topic::TopicCommand),
    /// Append records to a topic from standard input or a file (lines, JSON lines or CSV).
    Produce(produce::ProduceArgs),
    /// Read records from a topic and print them.
    Consume(consume::ConsumeArgs),
    /// Inspect consumer groups and move their committed offsets.
    #[command(subcommand)]
    Group(group::GroupCommand),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) => return exit::usage(&err),
    };
    let result = match cli.command {
        Command::Serve(args) => serve::run(args),
        Command::Topic(command) => connect::run_client(|| topic::run(command)),
        Command::Produce(args) => connect::run_client(|| produce::run(args)),
        Command::Consume(args) => connect::run_client(|| consume::run(args)),
        Command::Group(command) => connect::run_client(|| group::run(command)),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => exit::report(&err),
    }
}
