//! `shmchan`: look inside live shmchan segments without stopping or slowing anyone.
//!
//! ```text
//! shmchan ls                      every segment in /dev/shm: mode, type, sender, receivers, stale or live
//! shmchan stat NAME [--json] [--watch]   the stats of one segment, refreshed in place with --watch
//! shmchan tail NAME [-n N] [-f] [--layout SPEC]   print records as a read-only observer
//! shmchan rm NAME... [--force]    remove segments no process has open
//! shmchan gc [--dry-run]          remove every segment no process has open
//! ```
//!
//! The `shmchan-cli` crate of the workspace: `cargo install --path shmchan-cli`, or
//! `cargo run --release -p shmchan-cli -- ls`. Everything it shows comes from the
//! library's [`shmchan::stats`] API.

mod cli;
mod exit;
mod format;
mod json;
mod layout;
mod ls;
mod printer;
mod rates;
mod remove;
mod stat;
mod tail;
mod target;
mod words;

use std::io;
use std::process::ExitCode;

use clap::Parser;

use crate::cli::{Cli, Command};
use crate::exit::{Failure, EXIT_ERROR, EXIT_OK};
use crate::ls::ls;
use crate::remove::{gc, rm};
use crate::stat::stat;
use crate::tail::tail;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut out = io::stdout().lock();
    let result = match &cli.command {
        Command::Ls { json } => ls(&mut out, &cli.dir, *json),
        Command::Stat {
            name,
            json,
            watch,
            interval,
            count,
        } => stat(&mut out, &cli.dir, name, *json, *watch, *interval, *count),
        Command::Tail {
            name,
            lines,
            follow,
            layout,
        } => tail(&mut out, &cli.dir, name, *lines, *follow, layout.as_deref()),
        Command::Rm { names, force } => rm(&mut out, &cli.dir, names, *force),
        Command::Gc { dry_run } => gc(&mut out, &cli.dir, *dry_run),
    };
    match result {
        Ok(code) => ExitCode::from(code),
        // `shmchan tail -f x | head`: the reader left; not an error.
        Err(Failure::Output(e)) if e.kind() == io::ErrorKind::BrokenPipe => ExitCode::from(EXIT_OK),
        Err(e) => {
            eprintln!("shmchan: {e}");
            ExitCode::from(EXIT_ERROR)
        }
    }
}
