//! `shmchan rm` and `shmchan gc`: removing segments that no process has open.

use std::io::Write;
use std::path::Path;

use shmchan::stats::{self, Removal};

use crate::exit::{Failure, Outcome, EXIT_ERROR, EXIT_LIVE, EXIT_OK};
use crate::format::plural;
use crate::target::{describe, failure, label_of, target};

pub(crate) fn rm(out: &mut impl Write, dir: &Path, names: &[String], force: bool) -> Outcome {
    let mut code = EXIT_OK;
    for name in names {
        let t = match target(dir, name) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("shmchan: {e}");
                code = code.max(EXIT_ERROR);
                continue;
            }
        };
        let where_ = format!("segment '{}' ({})", t.label, t.path.display());
        match stats::remove(&t.path, force) {
            Ok(Removal::Removed) => writeln!(out, "removed {}", t.label)?,
            Ok(Removal::RemovedLive) => writeln!(
                out,
                "removed {} (forced: the processes that have it open keep using their mapping)",
                t.label
            )?,
            Ok(Removal::Live) => {
                eprintln!(
                    "shmchan: {where_}: a live process has it open; not removed (use --force)"
                );
                code = code.max(EXIT_LIVE);
            }
            Ok(Removal::NotFound) => {
                eprintln!("shmchan: {where_}: no such segment");
                code = code.max(EXIT_ERROR);
            }
            Ok(Removal::NotASegment) => {
                eprintln!("shmchan: {where_}: not a shmchan segment; not removed");
                code = code.max(EXIT_ERROR);
            }
            Ok(other) => {
                eprintln!("shmchan: {where_}: {other:?}");
                code = code.max(EXIT_ERROR);
            }
            Err(e) => {
                eprintln!("shmchan: {}", failure(&t, &e));
                code = code.max(EXIT_ERROR);
            }
        }
    }
    Ok(code)
}

pub(crate) fn gc(out: &mut impl Write, dir: &Path, dry_run: bool) -> Outcome {
    let files = stats::list(dir)
        .map_err(|e| Failure::Message(format!("cannot list {}: {e}", dir.display())))?;
    let (mut removed, mut kept, mut code) = (0usize, 0usize, EXIT_OK);
    for path in &files {
        let label = label_of(path);
        let outcome = if dry_run {
            stats::is_stale(path).map(|stale| {
                if stale {
                    Removal::Removed
                } else {
                    Removal::Live
                }
            })
        } else {
            stats::remove(path, false)
        };
        match outcome {
            Ok(Removal::Removed) => {
                removed += 1;
                let verb = if dry_run { "would remove" } else { "removed" };
                writeln!(out, "{verb} {label} (no process has it open)")?;
            }
            Ok(Removal::Live) => kept += 1,
            Ok(Removal::NotFound) => {}
            Ok(_) => writeln!(out, "skipped {label}: not a shmchan segment")?,
            Err(e) => {
                eprintln!(
                    "shmchan: segment '{label}' ({}): {}",
                    path.display(),
                    describe(&e)
                );
                code = EXIT_ERROR;
            }
        }
    }
    let verb = if dry_run { "would remove" } else { "removed" };
    writeln!(
        out,
        "{verb} {removed} stale segment{}, kept {kept} in use, in {}",
        plural(removed),
        dir.display()
    )?;
    Ok(code)
}
