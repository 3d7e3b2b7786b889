//! The lines a role process (analytics, archive) prints for the orchestrator that started it:
//! `@progress N` after each batch of records handled, and `@result JSON` once at the end.
//! Every other line is for people and is shown as it comes.
//!
//! Owns the two prefixes and their parsing, nothing else; stdout is the only channel, so a
//! process killed with SIGKILL simply stops reporting.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

const PROGRESS: &str = "@progress ";
const RESULT: &str = "@result ";

/// A parsed line of a role's output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Progress(u64),
    Result(&'a str),
    Text(&'a str),
}

pub(crate) fn parse(line: &str) -> Line<'_> {
    if let Some(n) = line
        .strip_prefix(PROGRESS)
        .and_then(|n| n.trim().parse().ok())
    {
        return Line::Progress(n);
    }
    if let Some(json) = line.strip_prefix(RESULT) {
        return Line::Result(json);
    }
    Line::Text(line)
}

/// Prints a progress line: records handled so far.
pub(crate) fn progress(records: u64) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{PROGRESS}{records}");
    let _ = out.flush();
}

/// Prints the result line.
pub(crate) fn result<T: Serialize>(value: &T) -> anyhow::Result<()> {
    let json = serde_json::to_string(value)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{RESULT}{json}")?;
    out.flush()?;
    Ok(())
}

/// Decodes a result line's JSON.
pub(crate) fn decode<T: DeserializeOwned>(json: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_str(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_told_apart() {
        assert_eq!(parse("@progress 42"), Line::Progress(42));
        assert_eq!(parse("@result {\"a\":1}"), Line::Result("{\"a\":1}"));
        assert_eq!(parse("@progress x"), Line::Text("@progress x"));
        assert_eq!(parse("hello"), Line::Text("hello"));
    }
}
