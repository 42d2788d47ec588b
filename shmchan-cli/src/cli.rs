//! The command line: the arguments of every subcommand, as clap parses them.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use shmchan::stats;

const EXIT_CODES: &str = "\
Exit status: 0 success; 1 error (no such segment, not a segment, corrupt, permission \
denied); 2 usage error; 3 `rm` refused a segment a live process has open (use --force).";

/// Inspect shmchan shared-memory segments: who is connected, who is behind, is anything
/// dropping. Reads the segments without taking part in them: never slows a producer,
/// never makes a dead segment look alive.
#[derive(Debug, Parser)]
#[command(name = "shmchan", version, after_help = EXIT_CODES)]
pub(crate) struct Cli {
    /// Directory holding the segments (files named shmchan.NAME). A NAME containing
    /// '/' is taken as the path of a segment file instead.
    #[arg(long, global = true, value_name = "DIR", default_value = stats::DEFAULT_DIR)]
    pub(crate) dir: PathBuf,
    #[command(subcommand)]
    pub(crate) command: Command,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// List every segment: mode, record type, sender, receivers alive/dead, stale or live
    Ls {
        /// One JSON array instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Show a segment's stats: fingerprint, sender, each receiver's cursor and lag, records/s
    Stat {
        /// Segment name (or path of a segment file)
        name: String,
        /// JSON instead of text (one object per line with --watch)
        #[arg(long)]
        json: bool,
        /// Refresh in place every --interval until interrupted (or --count refreshes)
        #[arg(short, long)]
        watch: bool,
        /// Time between refreshes with --watch; without it, the window over which
        /// records/s is measured
        #[arg(short, long, value_name = "DURATION", default_value = "1s", value_parser = parse_duration)]
        interval: Duration,
        /// Stop after this many refreshes (with --watch)
        #[arg(short, long, value_name = "N")]
        count: Option<u64>,
    },
    /// Print records as a read-only observer: takes no receiver entry, never gates the producer
    Tail {
        /// Segment name (or path of a segment file)
        name: String,
        /// Start this many records before the newest
        #[arg(short = 'n', long = "lines", value_name = "N", default_value_t = 10)]
        lines: u64,
        /// Keep printing new records until interrupted
        #[arg(short, long)]
        follow: bool,
        /// Print fields instead of hex: comma-separated C-layout types, optionally
        /// named, e.g. `ts:u64,bid:f64,ask:f64,u32,u32,sym:[u8;8]`. Types: u8..u64,
        /// i8..i64, f32, f64, bool, [T;N]; a name starting with `_` hides the field; a
        /// final `..` ignores the rest of the record
        #[arg(long, value_name = "SPEC")]
        layout: Option<String>,
    },
    /// Remove segments; refuses one that a live process has open unless --force
    Rm {
        /// Segment names (or paths of segment files)
        #[arg(required = true)]
        names: Vec<String>,
        /// Remove even if processes have it open (they keep their mapping; the next
        /// process to open the name gets a new segment)
        #[arg(long)]
        force: bool,
    },
    /// Remove every segment that no process has open (all its participants died)
    Gc {
        /// Only say what would be removed
        #[arg(long)]
        dry_run: bool,
    },
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let d = humantime::parse_duration(s)
        .or_else(|_| s.parse::<f64>().map_err(|e| e.to_string()).and_then(secs))
        .map_err(|e| format!("{s:?} is not a duration (e.g. 500ms, 2s): {e}"))?;
    if d.is_zero() {
        return Err("the interval must be more than 0".into());
    }
    Ok(d)
}

fn secs(s: f64) -> Result<Duration, String> {
    Duration::try_from_secs_f64(s).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert!(parse_duration("250ms").is_ok());
        assert_eq!(parse_duration("0.5"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("0").is_err());
    }
}
