//! The `rivulet-bench` command: parses the options, runs one benchmark, prints the report as
//! JSON and as a Markdown row on standard output (progress goes to standard error).

use std::io::Write;

use anyhow::Context;
use clap::Parser;
use rivulet_bench::{BenchOptions, Report};

fn main() -> anyhow::Result<()> {
    let options = BenchOptions::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let report = runtime.block_on(rivulet_bench::run(&options))?;

    let json = serde_json::to_string(&report).context("encoding the report")?;
    if let Some(path) = &options.json_out {
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("cannot open {}", path.display()))?;
        writeln!(file, "{json}").with_context(|| format!("cannot write {}", path.display()))?;
    }
    let pretty = serde_json::to_string_pretty(&report).context("encoding the report")?;
    println!("{pretty}");
    println!();
    println!("machine: {}", report.machine.describe());
    println!("{}", Report::MARKDOWN_HEADER);
    println!("{}", report.markdown_row());
    if report.errors > 0 {
        anyhow::bail!("{} produce or fetch errors", report.errors);
    }
    Ok(())
}
