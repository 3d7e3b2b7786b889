//! `rivulet-demo`: a year of New York flights through Rivulet, with every result checked.
//!
//! `run` drives the whole demo against a running server; `analytics` and `archive` are the two
//! consumer roles, separate processes so that one can be killed with SIGKILL and restarted.
//! `scripts/demo.sh` builds the binaries, starts `rivulet serve` and calls `run`; the steps
//! and checks are described in `docs/demo.md`.
//!
//! Module map:
//! - `data`: the data files, event times, the `--limit` sample, the expected totals.
//! - `event_time`: New York local time to UTC.
//! - `stats`: per-carrier and per-origin counts and delay statistics, the live table.
//! - `analytics`, `archive`: the consumer roles.
//! - `replay`: reading stored records back from an offset or a timestamp.
//! - `report_line`: what a role process prints for the orchestrator.
//! - `run`: the orchestrator, its checks and the summary.

mod analytics;
mod archive;
mod data;
mod event_time;
mod replay;
mod report_line;
mod run;
mod stats;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The real-data demo: 336,776 flights through Rivulet, every result checked.
#[derive(Debug, Parser)]
#[command(name = "rivulet-demo", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// The whole demo against a running server; exits non-zero if any check fails.
    Run(run::RunArgs),
    /// The analytics consumer: live statistics, cancelled flights routed to a topic.
    Analytics(analytics::AnalyticsArgs),
    /// The archive consumer: every flight to local files, exact across restarts.
    Archive(archive::ArchiveArgs),
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let outcome = match cli.command {
        Command::Run(args) => run::run(args).await,
        Command::Analytics(args) => analytics::run(args).await.map(|()| 0),
        Command::Archive(args) => archive::run(args).await.map(|()| 0),
    };
    match outcome {
        Ok(0) => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(err) => {
            eprintln!("rivulet-demo: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
