//! How `shmchan tail` prints records: hex dumps, or the fields of a layout in columns.

use std::fmt::Write as _;
use std::io::{self, Write};

use crate::layout::{Field, Layout};

/// Prints records as hex, or as the fields of a layout in columns that only widen.
pub(crate) struct Printer {
    layout: Option<Layout>,
    widths: Vec<usize>,
    header_done: bool,
}

impl Printer {
    pub(crate) fn new(layout: Option<Layout>) -> Printer {
        Printer {
            layout,
            widths: Vec::new(),
            header_done: false,
        }
    }

    pub(crate) fn print(
        &mut self,
        out: &mut impl Write,
        batch: &[(u64, Vec<u8>)],
    ) -> io::Result<()> {
        if batch.is_empty() {
            return Ok(());
        }
        let Some(layout) = &self.layout else {
            for (seq, record) in batch {
                write_hex(out, *seq, record)?;
            }
            return Ok(());
        };
        let visible: Vec<&Field> = layout.fields.iter().filter(|f| !f.hidden()).collect();
        let header: Vec<String> = std::iter::once("SEQ".to_owned())
            .chain(
                visible
                    .iter()
                    .map(|f| f.name.clone().unwrap_or_else(|| f.spelled.clone())),
            )
            .collect();
        let rows: Vec<Vec<String>> = batch
            .iter()
            .map(|(seq, record)| {
                std::iter::once(seq.to_string())
                    .chain(visible.iter().map(|f| f.format(record)))
                    .collect()
            })
            .collect();
        self.widths.resize(header.len(), 0);
        for row in rows.iter().chain(std::iter::once(&header)) {
            for (w, cell) in self.widths.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        if !self.header_done {
            self.header_done = true;
            write_row(out, &header, &self.widths)?;
        }
        for row in &rows {
            write_row(out, row, &self.widths)?;
        }
        Ok(())
    }
}

fn write_row(out: &mut impl Write, row: &[String], widths: &[usize]) -> io::Result<()> {
    let mut line = String::new();
    for (i, (cell, w)) in row.iter().zip(widths).enumerate() {
        if i > 0 {
            line.push_str("  ");
        }
        let _ = write!(line, "{cell:>w$}");
    }
    writeln!(out, "{}", line.trim_end())
}

/// `SEQ  0011223344556677 8899aabbccddeeff ...`, 32 bytes a line, continuation lines
/// marked with the byte offset.
fn write_hex(out: &mut impl Write, seq: u64, record: &[u8]) -> io::Result<()> {
    for (i, line) in record.chunks(32).enumerate() {
        let mut s = if i == 0 {
            format!("{seq:>10} ")
        } else {
            format!("{:>10} ", format!("+{}", i * 32))
        };
        for word in line.chunks(8) {
            s.push(' ');
            for b in word {
                let _ = write!(s, "{b:02x}");
            }
        }
        writeln!(out, "{s}")?;
    }
    Ok(())
}
