//! The `rivulet` command. Each subcommand lives in its own module with its own arguments and
//! one `run` function; this file only parses the command line and dispatches. Today there is
//! `serve`; client commands (produce, consume, topics) slot in beside it as new modules and
//! new [`Command`] variants.

mod serve;

use clap::{Parser, Subcommand};

/// Rivulet: an append-only, partitioned event log in one binary, spoken to over gRPC.
#[derive(Debug, Parser)]
#[command(name = "rivulet", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the server: the gRPC API on one address, data in one directory.
    Serve(serve::ServeArgs),
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => serve::run(args),
    }
}
