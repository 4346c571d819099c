//! Tables for people and JSON for programs: how every subcommand but
//! `consume` prints its answer.

use std::io::Write;

use serde_json::Value;

use super::{Failure, Format, Result};

/// Rows under a header, printed with aligned columns.
#[derive(Debug)]
pub struct Table {
    header: Vec<&'static str>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub fn new(header: &[&'static str]) -> Table {
        Table {
            header: header.to_vec(),
            rows: Vec::new(),
        }
    }

    pub fn row(&mut self, cells: Vec<String>) {
        debug_assert_eq!(cells.len(), self.header.len());
        self.rows.push(cells);
    }

    /// The table as text: columns padded to their widest cell and two
    /// spaces apart; the last column is not padded.
    pub fn render(&self) -> String {
        let mut widths: Vec<usize> = self.header.iter().map(|h| h.chars().count()).collect();
        for row in &self.rows {
            for (w, cell) in widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        let mut out = String::new();
        let header: Vec<String> = self.header.iter().map(|h| (*h).to_owned()).collect();
        for row in std::iter::once(&header).chain(&self.rows) {
            let last = row.len() - 1;
            for (i, cell) in row.iter().enumerate() {
                if i == last {
                    out.push_str(cell);
                } else {
                    let pad = widths[i] - cell.chars().count() + 2;
                    out.push_str(cell);
                    out.extend(std::iter::repeat_n(' ', pad));
                }
            }
            out.push('\n');
        }
        out
    }
}

/// Print `text` for a table, or `json` as one pretty document.
pub fn emit(format: Format, text: &str, json: &Value) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Table => out.write_all(text.as_bytes()),
        Format::Json => {
            // Serializing a Value cannot fail; writing to a closed pipe can.
            let doc = serde_json::to_string_pretty(json).expect("a Value serializes");
            writeln!(out, "{doc}")
        }
    };
    written
        .and_then(|()| out.flush())
        .map_err(|e| Failure::op(format!("writing to stdout: {e}")))
}

/// A list of broker ids as `1,2,3`.
pub fn ids(ids: &[i32]) -> String {
    ids.iter().map(i32::to_string).collect::<Vec<_>>().join(",")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align() {
        let mut t = Table::new(&["TOPIC", "PARTITIONS"]);
        t.row(vec!["orders".into(), "3".into()]);
        t.row(vec!["a".into(), "12".into()]);
        assert_eq!(t.render(), "TOPIC   PARTITIONS\norders  3\na       12\n");
    }
}
