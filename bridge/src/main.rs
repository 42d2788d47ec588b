//! `shmchan-bridge`: export a local segment over zenoh, or import one into a local
//! mirror. See the crate docs for what travels and what a far reader sees.

// The bridge holds no unsafe code (the workspace lints cannot forbid it per member).
#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use shmchan_bridge::{
    BridgeError, ExportConfig, Exporter, ImportConfig, ImportEnd, Importer, Network, SegmentRef,
};

/// Carry a shmchan segment across hosts over zenoh (TCP), every gap visible on the far
/// side as `Lagged(n)`.
#[derive(Debug, Parser)]
#[command(name = "shmchan-bridge", version)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Publish the local segment NAME on `KEY/data` (meta on `KEY/meta`).
    Export {
        #[command(flatten)]
        common: Common,
        /// Export a lossless source (Overflow::Block, or Unicast) although a stalled
        /// link then stops its producer.
        #[arg(long)]
        lossless: bool,
        /// At most this many records per frame (default: 64 KiB worth).
        #[arg(long)]
        max_batch: Option<usize>,
    },
    /// Mirror the segment exported on KEY into the local segment NAME.
    Import {
        #[command(flatten)]
        common: Common,
        /// End the mirror's stream (far readers get `Disconnected`) when the exporter
        /// has been gone this long.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        linger: Duration,
        /// How long to wait for the exporter's meta at start.
        #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
        meta_timeout: Duration,
        /// The mirror's capacity (default: the source's).
        #[arg(long)]
        capacity: Option<usize>,
        /// The mirror's receiver table size (default: the source's).
        #[arg(long)]
        max_receivers: Option<usize>,
        /// The fastest the source can publish (records a second): a sequence jump this
        /// rate cannot explain is a corrupt frame, skipped, not a gap.
        #[arg(long, default_value_t = shmchan_bridge::DEFAULT_MAX_RATE,
              value_parser = clap::value_parser!(u64).range(1..))]
        max_rate: u64,
        /// Refuse to create a mirror of more bytes of records than this (capacity times
        /// record size), whatever the exporter's meta asks for.
        #[arg(long, default_value_t = 4 << 30)]
        max_mirror_bytes: u64,
    },
}

#[derive(Debug, Args)]
struct Common {
    /// The local segment's name.
    name: String,
    /// The zenoh key prefix (no wildcards), e.g. `md/quotes`.
    #[arg(long)]
    key: String,
    /// The segment file, if not under /dev/shm (e.g. on hugetlbfs).
    #[arg(long)]
    path: Option<PathBuf>,
    /// Listen on this endpoint, e.g. `tcp/0.0.0.0:7447` (repeatable).
    #[arg(long)]
    listen: Vec<String>,
    /// Connect to this peer, e.g. `tcp/10.0.0.5:7447` (repeatable).
    #[arg(long)]
    connect: Vec<String>,
    /// Give up if no `--connect` peer answers within this time.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    connect_timeout: Duration,
    /// A zenoh configuration file (JSON5); the flags above override it.
    #[arg(long)]
    config: Option<PathBuf>,
    /// Turn zenoh's multicast scouting on (off by default: endpoints are explicit).
    #[arg(long)]
    scouting: bool,
}

impl Common {
    fn segment(&self) -> SegmentRef {
        match &self.path {
            Some(p) => SegmentRef::at(&self.name, p),
            None => SegmentRef::named(&self.name),
        }
    }

    fn network(&self) -> Network {
        Network {
            listen: self.listen.clone(),
            connect: self.connect.clone(),
            connect_timeout: self.connect_timeout,
            scouting: self.scouting,
            config_file: self.config.clone(),
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                eprintln!("  caused by: {s}");
                source = s.source();
            }
            ExitCode::FAILURE
        }
    }
}

fn interrupted() -> Arc<AtomicBool> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    if let Err(e) = ctrlc::set_handler(move || f.store(true, Ordering::Relaxed)) {
        eprintln!("warning: no Ctrl-C handler ({e}); stop with SIGKILL");
    }
    flag
}

fn run(cli: Cli) -> Result<(), BridgeError> {
    match cli.command {
        Command::Export {
            common,
            lossless,
            max_batch,
        } => {
            let mut config = ExportConfig::new(common.segment(), &common.key, common.network());
            config.lossless = lossless;
            config.max_batch = max_batch;
            let stop = interrupted();
            let exporter = Exporter::start(config)?;
            eprintln!(
                "exporting {:?} on {}/data (epoch {:016x}); Ctrl-C to stop",
                common.name,
                common.key,
                exporter.epoch()
            );
            while !stop.load(Ordering::Relaxed) && !exporter.is_finished() {
                std::thread::sleep(Duration::from_millis(100));
            }
            let s = exporter.stop()?;
            eprintln!(
                "exported {} records in {} frames, {} missed at the source",
                s.records, s.frames, s.lagged
            );
            Ok(())
        }
        Command::Import {
            common,
            linger,
            meta_timeout,
            capacity,
            max_receivers,
            max_rate,
            max_mirror_bytes,
        } => {
            let mut config = ImportConfig::new(common.segment(), &common.key, common.network());
            config.linger = linger;
            config.meta_timeout = meta_timeout;
            config.capacity = capacity;
            config.max_receivers = max_receivers;
            config.max_rate = max_rate;
            config.max_mirror_bytes = max_mirror_bytes;
            let stop = interrupted();
            let importer = Importer::start(config)?;
            let m = importer.meta();
            eprintln!(
                "importing {}/data into {:?}: {} records of {} bytes ({}), {} slots, {:?}, {:?}; Ctrl-C to stop",
                common.key, common.name, m.type_name, m.record_size, m.family, m.capacity, m.mode, m.overflow
            );
            let mut told = (0, 0);
            while !stop.load(Ordering::Relaxed) && !importer.is_finished() {
                std::thread::sleep(Duration::from_millis(100));
                // Frames skipped: said as they happen (at most ten times a second).
                let s = importer.stats();
                if s.corrupt > told.0 {
                    eprintln!(
                        "warning: {} corrupt frames skipped so far; the last: {}",
                        s.corrupt,
                        importer.last_corrupt().unwrap_or_default()
                    );
                }
                if s.producer_left > told.1 {
                    eprintln!("the source's producer left: the mirror's readers get Disconnected until one attaches");
                }
                told = (s.corrupt, s.producer_left);
            }
            let s = importer.stats();
            let end = if importer.is_finished() {
                importer.wait()?
            } else {
                importer.stop()?
            };
            eprintln!(
                "imported {} records, {} gaps ({} records missing), {} exporter epochs, \
                 {} frames skipped as repeated or late, {} as corrupt",
                s.records, s.gaps, s.missing, s.epochs, s.stale, s.corrupt
            );
            if end == ImportEnd::SourceGone {
                eprintln!("the exporter was gone for {linger:?}: the mirror's stream ended");
            }
            Ok(())
        }
    }
}
