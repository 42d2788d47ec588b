//! `shmchan tail`: print a segment's records as a read-only observer.

use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use shmchan::stats::{Observer, TailRead};

use crate::exit::{Failure, Outcome, EXIT_OK};
use crate::layout::Layout;
use crate::printer::Printer;
use crate::target::{failure, target};

pub(crate) fn tail(
    out: &mut impl Write,
    dir: &Path,
    name: &str,
    lines: u64,
    follow: bool,
    layout: Option<&str>,
) -> Outcome {
    let t = target(dir, name)?;
    let observer = Observer::open_path(&t.path).map_err(|e| failure(&t, &e))?;
    let size = observer.info().record_size;
    let layout = layout
        .map(|spec| {
            Layout::parse(spec, size).map_err(|e| {
                Failure::Message(format!(
                    "--layout {spec:?} does not fit segment '{}' ({}-byte records of type {}): {e}",
                    t.label,
                    size,
                    observer.info().type_name
                ))
            })
        })
        .transpose()?;
    let mut tail = observer.tail(lines).map_err(|e| failure(&t, &e))?;
    let mut printer = Printer::new(layout);
    let mut buf = vec![0u8; size];
    // Without --follow: up to the head of now. An empty slot below it (a producer that
    // died mid-write, or a corrupt segment) ends the wait after a second.
    let end = tail.head();
    let mut empty_since: Option<Instant> = None;
    let mut batch: Vec<(u64, Vec<u8>)> = Vec::new();
    loop {
        if !follow && tail.next_seq() >= end {
            break;
        }
        match tail.try_next(&mut buf) {
            TailRead::Record(seq) => {
                empty_since = None;
                batch.push((seq, buf.clone()));
                if batch.len() >= 256 {
                    printer.print(out, &batch)?;
                    batch.clear();
                }
            }
            TailRead::Lagged(n) => {
                printer.print(out, &batch)?;
                batch.clear();
                out.flush()?;
                eprintln!(
                    "shmchan: tail of '{}' was lapped by the producer: skipped {n} records",
                    t.label
                );
            }
            TailRead::Empty => {
                printer.print(out, &batch)?;
                batch.clear();
                out.flush()?;
                let since = *empty_since.get_or_insert_with(Instant::now);
                if !follow && since.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "shmchan: segment '{}': record {} below the head {end} was never completed",
                        t.label,
                        tail.next_seq()
                    );
                    break;
                }
                // A human reads this: poll gently.
                std::thread::sleep(Duration::from_millis(
                    if since.elapsed() < Duration::from_millis(10) {
                        0
                    } else {
                        2
                    },
                ));
            }
        }
    }
    printer.print(out, &batch)?;
    out.flush()?;
    Ok(EXIT_OK)
}
