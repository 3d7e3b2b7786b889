//! How client commands print: `--output table` (aligned columns for people) or `--output json`
//! (one JSON document, or JSON lines for streams, for scripts), and writing to standard output
//! so that a closed pipe (`rivulet topic list | head -1`) ends the command quietly.

use std::io::Write;

use clap::ValueEnum;
use serde_json::Value;

/// The `--output` of listings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub(crate) enum OutputFormat {
    /// Aligned columns.
    #[default]
    Table,
    /// JSON, for scripts.
    Json,
}

/// A table of text cells printed with aligned columns. Columns whose cells are all numbers
/// are right-aligned.
#[derive(Debug)]
pub(crate) struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(header: Vec<&'static str>) -> Self {
        Table {
            header,
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    /// The table as text, one line per row, columns separated by two spaces, no trailing
    /// blanks.
    pub(crate) fn render(&self) -> String {
        let columns = self.header.len();
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        let mut numeric = vec![true; columns];
        for row in &self.rows {
            for (i, cell) in row.iter().enumerate().take(columns) {
                widths[i] = widths[i].max(cell.chars().count());
                numeric[i] &= cell.parse::<f64>().is_ok() || cell == "-";
            }
        }

        let mut text = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let mut line = String::new();
            for (i, cell) in row.iter().enumerate().take(columns) {
                if i > 0 {
                    line.push_str("  ");
                }
                let pad = widths[i].saturating_sub(cell.chars().count());
                if numeric[i] {
                    line.extend(std::iter::repeat_n(' ', pad));
                    line.push_str(cell);
                } else {
                    line.push_str(cell);
                    line.extend(std::iter::repeat_n(' ', pad));
                }
            }
            text.push_str(line.trim_end());
            text.push('\n');
        }
        text
    }
}

/// Writes `text` to standard output. A closed pipe is not an error: the reader has what it
/// wanted.
///
/// # Errors
///
/// Any other write error.
pub(crate) fn print(text: &str) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(err) if err.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        result => Ok(result?),
    }
}

/// Prints one JSON document on one line.
pub(crate) fn print_json(value: &Value) -> anyhow::Result<()> {
    print(&format!("{value}\n"))
}

/// A text cell for an optional number; `-` when absent.
pub(crate) fn opt_cell(value: Option<impl ToString>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| v.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_and_numbers_align_right() {
        let mut table = Table::new(vec!["TOPIC", "PARTITIONS"]);
        table.row(vec!["a".into(), "3".into()]);
        table.row(vec!["longer-name".into(), "12".into()]);
        assert_eq!(
            table.render(),
            "TOPIC        PARTITIONS\n\
             a                     3\n\
             longer-name          12\n"
        );
    }
}
