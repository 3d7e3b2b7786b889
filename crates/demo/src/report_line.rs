//! The lines a role process (analytics, archive) prints for the orchestrator that started it:
//! `@progress N [U]` after each batch of records handled (`U`, when given, is how many of them
//! the group's committed offsets do not cover yet), `@member JSON` when the process receives
//! its partitions as a group member, and `@result JSON` once at the end. Every other line is
//! for people and is shown as it comes.
//!
//! Owns the prefixes and their parsing, nothing else; stdout is the only channel, so a process
//! killed with SIGKILL simply stops reporting.

use std::io::Write;

use serde::Serialize;
use serde::de::DeserializeOwned;

const PROGRESS: &str = "@progress ";
const MEMBER: &str = "@member ";
const RESULT: &str = "@result ";

/// A parsed line of a role's output.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Line<'a> {
    Progress {
        records: u64,
        uncommitted: Option<u64>,
    },
    Member(&'a str),
    Result(&'a str),
    Text(&'a str),
}

pub(crate) fn parse(line: &str) -> Line<'_> {
    if let Some(progress) = line.strip_prefix(PROGRESS).and_then(parse_progress) {
        return progress;
    }
    if let Some(json) = line.strip_prefix(MEMBER) {
        return Line::Member(json);
    }
    if let Some(json) = line.strip_prefix(RESULT) {
        return Line::Result(json);
    }
    Line::Text(line)
}

fn parse_progress(rest: &str) -> Option<Line<'static>> {
    let mut fields = rest.split_whitespace();
    let records = fields.next()?.parse().ok()?;
    let uncommitted = match fields.next() {
        Some(n) => Some(n.parse().ok()?),
        None => None,
    };
    if fields.next().is_some() {
        return None;
    }
    Some(Line::Progress {
        records,
        uncommitted,
    })
}

/// Prints a progress line: records handled so far and, for a consumer that commits by itself,
/// how many of them are past the committed offsets.
pub(crate) fn progress(records: u64, uncommitted: Option<u64>) {
    let mut out = std::io::stdout().lock();
    let _ = match uncommitted {
        Some(n) => writeln!(out, "{PROGRESS}{records} {n}"),
        None => writeln!(out, "{PROGRESS}{records}"),
    };
    let _ = out.flush();
}

/// Prints a membership line.
pub(crate) fn member<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print_json(MEMBER, value)
}

/// Prints the result line.
pub(crate) fn result<T: Serialize>(value: &T) -> anyhow::Result<()> {
    print_json(RESULT, value)
}

fn print_json<T: Serialize>(prefix: &str, value: &T) -> anyhow::Result<()> {
    let json = serde_json::to_string(value)?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{prefix}{json}")?;
    out.flush()?;
    Ok(())
}

/// Decodes a member or result line's JSON.
pub(crate) fn decode<T: DeserializeOwned>(json: &str) -> anyhow::Result<T> {
    Ok(serde_json::from_str(json)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_told_apart() {
        assert_eq!(
            parse("@progress 42"),
            Line::Progress {
                records: 42,
                uncommitted: None
            }
        );
        assert_eq!(
            parse("@progress 42 7"),
            Line::Progress {
                records: 42,
                uncommitted: Some(7)
            }
        );
        assert_eq!(parse("@member {\"a\":1}"), Line::Member("{\"a\":1}"));
        assert_eq!(parse("@result {\"a\":1}"), Line::Result("{\"a\":1}"));
        assert_eq!(parse("@progress x"), Line::Text("@progress x"));
        assert_eq!(parse("@progress 1 x"), Line::Text("@progress 1 x"));
        assert_eq!(parse("@progress 1 2 3"), Line::Text("@progress 1 2 3"));
        assert_eq!(parse("hello"), Line::Text("hello"));
    }
}
