//! `shmchan ls`: every segment in the directory, as a table or JSON.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde_json::{json, Value};
use shmchan::stats::{self, Observer, SegmentInfo, Stats};

use crate::exit::{Failure, Outcome, EXIT_OK};
use crate::format::{bytes, count, Table};
use crate::json::{merge, stats_json};
use crate::target::{describe, label_of};
use crate::words::{mode_text, receivers_text, sender_text, state_word};

/// What `ls` learned about one file.
struct Listed {
    label: String,
    path: PathBuf,
    /// From the lock probe; `None` if even that failed.
    stale: Option<bool>,
    /// The header and a snapshot, or why not.
    seen: Result<(SegmentInfo, Stats), String>,
}

fn inspect(path: &Path) -> Listed {
    let seen = Observer::open_path(path)
        .and_then(|o| Ok((o.info().clone(), o.stats()?)))
        .map_err(|e| describe(&e));
    let stale = match &seen {
        Ok((_, s)) => Some(s.stale),
        Err(_) => stats::is_stale(path).ok(),
    };
    Listed {
        label: label_of(path),
        path: path.to_owned(),
        stale,
        seen,
    }
}

pub(crate) fn ls(out: &mut impl Write, dir: &Path, json: bool) -> Outcome {
    let files = stats::list(dir)
        .map_err(|e| Failure::Message(format!("cannot list {}: {e}", dir.display())))?;
    let listed: Vec<Listed> = files.iter().map(|p| inspect(p)).collect();
    if json {
        let all: Vec<Value> = listed.iter().map(listed_json).collect();
        writeln!(out, "{}", Value::Array(all))?;
        return Ok(EXIT_OK);
    }
    if listed.is_empty() {
        writeln!(out, "no segments in {}", dir.display())?;
        return Ok(EXIT_OK);
    }
    let mut table = Table::new(&[
        "NAME",
        "TYPE",
        "MODE",
        "RECORD",
        "SLOTS",
        "SIZE",
        "SENDER",
        "RECEIVERS",
        "PUBLISHED",
        "STATE",
    ]);
    table.right(&[3, 4, 5, 8]);
    for l in &listed {
        match &l.seen {
            Ok((info, st)) => table.row(vec![
                l.label.clone(),
                format!("{}<{}>", info.family, info.type_name),
                mode_text(info),
                bytes(info.record_size as u64),
                info.capacity.to_string(),
                bytes(info.file_len),
                sender_text(st),
                receivers_text(st),
                count(st.published),
                state_word(Some(st.stale)).to_owned(),
            ]),
            Err(reason) => {
                let mut row = vec![l.label.clone()];
                row.extend(std::iter::repeat_n("-".to_owned(), 8));
                row.push(format!("{}, unreadable: {reason}", state_word(l.stale)));
                table.row(row);
            }
        }
    }
    table.print(out)?;
    Ok(EXIT_OK)
}

fn listed_json(l: &Listed) -> Value {
    let mut v = json!({
        "name": l.label,
        "path": l.path,
        "stale": l.stale,
    });
    match &l.seen {
        Ok((info, st)) => merge(&mut v, stats_json(info, st, None, None)),
        Err(reason) => merge(&mut v, json!({ "error": reason })),
    }
    v
}
